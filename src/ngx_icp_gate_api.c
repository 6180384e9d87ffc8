
/*
 * Copyright (C) icp_gate authors
 *
 * The filing API client: libcurl's multi_socket interface on the nginx
 * event loop, one multi handle per worker.  curl owns its sockets; the
 * nginx connections wrapped around them are freed, never closed, and a
 * socket curl closes is first taken out of epoll by the close callback.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <curl/curl.h>

#include "ngx_icp_gate_api.h"
#include "ngx_icp_gate_socket.h"
#include "ngx_icp_gate_throttle.h"
#include "ngx_icp_gate_metrics.h"


#define NGX_ICP_GATE_API_BODY_MAX  16384

/*
 * A request waits in the queue while icp_gate_api_concurrency transfers
 * run, so that a flood of new domains cannot take every connection of the
 * worker; the queue has room for NGX_ICP_GATE_API_QUEUE times as many, and
 * a request that waited longer than icp_gate_api_timeout is not sent.
 */

typedef struct {
    ngx_queue_t                 queue;      /* waiting, then running */
    CURL                       *easy;
    ngx_icp_gate_api_pt         handler;
    void                       *data;
    ngx_msec_t                  queued;
    ngx_str_t                   domain;
    u_char                     *body;       /* while running */
    size_t                      len;
    char                        error[CURL_ERROR_SIZE];
    u_char                      domain_data[NGX_ICP_GATE_DOMAIN_LEN];
} ngx_icp_gate_api_request_t;


static ngx_int_t ngx_icp_gate_api_start(ngx_icp_gate_api_request_t *req);
static void ngx_icp_gate_api_next(void);
static void ngx_icp_gate_api_refuse(ngx_str_t *domain);
static void ngx_icp_gate_api_free(ngx_icp_gate_api_request_t *req);
static char *ngx_icp_gate_api_fill(ngx_str_t *tpl, ngx_str_t *domain,
    ngx_uint_t escape);
static ngx_int_t ngx_icp_gate_api_verdict(ngx_icp_gate_api_request_t *req,
    CURLcode result, ngx_icp_gate_verdict_t *v);
static ngx_uint_t ngx_icp_gate_api_failure(CURLcode result);
static void ngx_icp_gate_api_collect(void);
static void ngx_icp_gate_api_action(curl_socket_t s, int mask);
static ngx_uint_t ngx_icp_gate_api_closed(ngx_connection_t *c);
static uintptr_t ngx_icp_gate_api_identity(ngx_socket_t s);

static size_t ngx_icp_gate_api_write(char *ptr, size_t size, size_t nmemb,
    void *userdata);
static int ngx_icp_gate_api_socket(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp);
static int ngx_icp_gate_api_close(void *clientp, curl_socket_t s);
static int ngx_icp_gate_api_timer_set(CURLM *multi, long timeout_ms,
    void *userp);

static void ngx_icp_gate_api_timeout(ngx_event_t *ev);
static void ngx_icp_gate_api_read(ngx_event_t *rev);
static void ngx_icp_gate_api_write_ready(ngx_event_t *wev);


static ngx_icp_gate_api_conf_t  *ngx_icp_gate_api_conf;
static CURLM                    *ngx_icp_gate_api_multi;
static struct curl_slist        *ngx_icp_gate_api_headers;
static ngx_event_t               ngx_icp_gate_api_timer;
static ngx_queue_t               ngx_icp_gate_api_requests;
static ngx_queue_t               ngx_icp_gate_api_waiting;
static ngx_queue_t               ngx_icp_gate_api_conns;
static ngx_uint_t                ngx_icp_gate_api_running;
static ngx_uint_t                ngx_icp_gate_api_queued;

/* refusals of a full queue since the last line that said so */
static ngx_icp_gate_throttle_t   ngx_icp_gate_api_refused;


ngx_int_t
ngx_icp_gate_api_init(ngx_cycle_t *cycle, ngx_icp_gate_api_conf_t *acf)
{
    u_char             *line;
    ngx_uint_t          i, typed;
    ngx_keyval_t       *h;
    struct curl_slist  *list;

    ngx_icp_gate_api_conf = acf;
    typed = 0;

    ngx_queue_init(&ngx_icp_gate_api_requests);
    ngx_queue_init(&ngx_icp_gate_api_waiting);
    ngx_queue_init(&ngx_icp_gate_api_conns);
    ngx_icp_gate_api_queued = 0;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "icp_gate: curl_global_init() failed");
        return NGX_ERROR;
    }

    ngx_icp_gate_api_headers = curl_slist_append(NULL,
                                                 "Accept: application/json");
    if (ngx_icp_gate_api_headers == NULL) {
        return NGX_ERROR;
    }

    if (acf->headers) {
        h = acf->headers->elts;

        for (i = 0; i < acf->headers->nelts; i++) {
            if (h[i].key.len == 12
                && ngx_strncasecmp(h[i].key.data, (u_char *) "Content-Type",
                                   12) == 0)
            {
                typed = 1;
            }

            line = ngx_pnalloc(cycle->pool, h[i].key.len + h[i].value.len + 3);
            if (line == NULL) {
                return NGX_ERROR;
            }

            *ngx_sprintf(line, "%V: %V", &h[i].key, &h[i].value) = '\0';

            list = curl_slist_append(ngx_icp_gate_api_headers, (char *) line);
            if (list == NULL) {
                return NGX_ERROR;
            }

            ngx_icp_gate_api_headers = list;
        }
    }

    /* curl would call a body a form; the bodies of filing sources are JSON */

    if (acf->method == NGX_ICP_GATE_API_POST && !typed) {
        list = curl_slist_append(ngx_icp_gate_api_headers,
                                 "Content-Type: application/json");
        if (list == NULL) {
            return NGX_ERROR;
        }

        ngx_icp_gate_api_headers = list;
    }

    ngx_icp_gate_api_multi = curl_multi_init();
    if (ngx_icp_gate_api_multi == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "icp_gate: curl_multi_init() failed");
        return NGX_ERROR;
    }

    curl_multi_setopt(ngx_icp_gate_api_multi, CURLMOPT_SOCKETFUNCTION,
                      ngx_icp_gate_api_socket);
    curl_multi_setopt(ngx_icp_gate_api_multi, CURLMOPT_TIMERFUNCTION,
                      ngx_icp_gate_api_timer_set);
    curl_multi_setopt(ngx_icp_gate_api_multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      (long) acf->concurrency);

    ngx_icp_gate_timer_init(&ngx_icp_gate_api_timer, ngx_icp_gate_api_timeout,
                            cycle->log);

    return NGX_OK;
}


void
ngx_icp_gate_api_done(void)
{
    ngx_queue_t                 *q;
    ngx_connection_t            *c;
    ngx_icp_gate_api_request_t  *req;

    if (ngx_icp_gate_api_multi == NULL) {
        return;
    }

    if (ngx_icp_gate_api_timer.timer_set) {
        ngx_del_timer(&ngx_icp_gate_api_timer);
    }

    while (!ngx_queue_empty(&ngx_icp_gate_api_requests)) {
        q = ngx_queue_head(&ngx_icp_gate_api_requests);
        req = ngx_queue_data(q, ngx_icp_gate_api_request_t, queue);

        ngx_queue_remove(q);

        curl_multi_remove_handle(ngx_icp_gate_api_multi, req->easy);
        ngx_icp_gate_api_free(req);
    }

    while (!ngx_queue_empty(&ngx_icp_gate_api_waiting)) {
        q = ngx_queue_head(&ngx_icp_gate_api_waiting);
        ngx_queue_remove(q);
        ngx_icp_gate_api_free(ngx_queue_data(q, ngx_icp_gate_api_request_t,
                                             queue));
    }

    ngx_icp_gate_api_running = 0;
    ngx_icp_gate_api_queued = 0;

    curl_multi_cleanup(ngx_icp_gate_api_multi);
    ngx_icp_gate_api_multi = NULL;

    while (!ngx_queue_empty(&ngx_icp_gate_api_conns)) {
        q = ngx_queue_head(&ngx_icp_gate_api_conns);
        c = ngx_queue_data(q, ngx_connection_t, queue);

        ngx_queue_remove(q);
        ngx_icp_gate_socket_release(c, ngx_icp_gate_api_closed(c));
    }

    curl_slist_free_all(ngx_icp_gate_api_headers);
    ngx_icp_gate_api_headers = NULL;

    curl_global_cleanup();
}


/*
 * NGX_OK: the handler runs once, later; NGX_BUSY (the queue is full) or
 * NGX_ERROR: it never runs
 */

ngx_int_t
ngx_icp_gate_api_fetch(ngx_str_t *domain, ngx_icp_gate_api_pt handler,
    void *data)
{
    ngx_uint_t                   concurrency;
    ngx_icp_gate_api_request_t  *req;

    concurrency = ngx_icp_gate_api_conf->concurrency;

    if (ngx_icp_gate_api_running >= concurrency
        && ngx_icp_gate_api_queued >= NGX_ICP_GATE_API_QUEUE * concurrency)
    {
        ngx_icp_gate_api_refuse(domain);
        return NGX_BUSY;
    }

    req = ngx_alloc(sizeof(ngx_icp_gate_api_request_t), ngx_cycle->log);
    if (req == NULL) {
        return NGX_ERROR;
    }

    req->easy = NULL;
    req->handler = handler;
    req->data = data;
    req->queued = ngx_current_msec;
    req->body = NULL;
    req->len = 0;
    req->error[0] = '\0';
    req->domain.data = req->domain_data;
    req->domain.len = ngx_min(domain->len, NGX_ICP_GATE_DOMAIN_LEN);
    ngx_memcpy(req->domain_data, domain->data, req->domain.len);

    if (ngx_icp_gate_api_running < concurrency) {
        if (ngx_icp_gate_api_start(req) != NGX_OK) {
            ngx_icp_gate_api_free(req);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    ngx_queue_insert_tail(&ngx_icp_gate_api_waiting, &req->queue);
    ngx_icp_gate_api_queued++;
    ngx_icp_gate_gauge(api_queued, 1);

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: filing API request for \"%V\" queued, "
                   "%ui waiting", &req->domain, ngx_icp_gate_api_queued);

    return NGX_OK;
}


static ngx_int_t
ngx_icp_gate_api_start(ngx_icp_gate_api_request_t *req)
{
    char  *url, *body;
    CURL  *easy;

    req->body = ngx_alloc(NGX_ICP_GATE_API_BODY_MAX, ngx_cycle->log);
    if (req->body == NULL) {
        return NGX_ERROR;
    }

    url = ngx_icp_gate_api_fill(&ngx_icp_gate_api_conf->url, &req->domain, 1);
    if (url == NULL) {
        return NGX_ERROR;
    }

    body = NULL;

    if (ngx_icp_gate_api_conf->method == NGX_ICP_GATE_API_POST) {
        body = ngx_icp_gate_api_fill(&ngx_icp_gate_api_conf->body,
                                     &req->domain, 0);
        if (body == NULL) {
            ngx_free(url);
            return NGX_ERROR;
        }
    }

    easy = curl_easy_init();
    if (easy == NULL) {
        ngx_free(url);
        ngx_free(body);
        return NGX_ERROR;
    }

    curl_easy_setopt(easy, CURLOPT_URL, url);

    if (body) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) strlen(body));
        curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body);
        ngx_free(body);
    }

    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, ngx_icp_gate_api_headers);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "icp_gate");
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                     (long) ngx_icp_gate_api_conf->timeout);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    /* never join a resolver thread: that would block the worker */
    curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, ngx_icp_gate_api_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->error);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION,
                     ngx_icp_gate_api_close);

    ngx_free(url);

    if (curl_multi_add_handle(ngx_icp_gate_api_multi, easy) != CURLM_OK) {
        curl_easy_cleanup(easy);
        return NGX_ERROR;
    }

    req->easy = easy;

    ngx_queue_insert_tail(&ngx_icp_gate_api_requests, &req->queue);
    ngx_icp_gate_api_running++;
    ngx_icp_gate_gauge(api_running, 1);

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: filing API transfer for \"%V\" started, "
                   "%ui running", &req->domain, ngx_icp_gate_api_running);

    return NGX_OK;
}


/*
 * A transfer ended: the requests that waited go next, but not those that
 * waited longer than a transfer may take, whose waiters gave up long ago
 */

static void
ngx_icp_gate_api_next(void)
{
    ngx_queue_t                 *q;
    ngx_icp_gate_api_request_t  *req;

    while (ngx_icp_gate_api_running
           < (ngx_uint_t) ngx_icp_gate_api_conf->concurrency
           && !ngx_queue_empty(&ngx_icp_gate_api_waiting))
    {
        q = ngx_queue_head(&ngx_icp_gate_api_waiting);
        ngx_queue_remove(q);
        ngx_icp_gate_api_queued--;
        ngx_icp_gate_gauge(api_queued, -1);

        req = ngx_queue_data(q, ngx_icp_gate_api_request_t, queue);

        /* one never sent is this worker's overload, not the API's failure */

        if (ngx_current_msec - req->queued >= ngx_icp_gate_api_conf->timeout)
        {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "icp_gate: filing API request for \"%V\" not "
                          "sent after %M ms in the queue", &req->domain,
                          ngx_current_msec - req->queued);

            ngx_icp_gate_count(api_failures[NGX_ICP_GATE_API_FAIL_QUEUE]);

            req->handler(req->data, NGX_BUSY, NULL);

        } else if (ngx_icp_gate_api_start(req) == NGX_OK) {
            continue;

        } else {
            req->handler(req->data, NGX_DECLINED, NULL);
        }

        ngx_icp_gate_api_free(req);
    }
}


/* one line a second at most, however many lookups a flood refuses */

static void
ngx_icp_gate_api_refuse(ngx_str_t *domain)
{
    ngx_uint_t  n;

    ngx_icp_gate_count(api_failures[NGX_ICP_GATE_API_FAIL_QUEUE]);

    n = ngx_icp_gate_throttle(&ngx_icp_gate_api_refused);

    if (n) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "icp_gate: filing API queue full (%ui running, %ui "
                      "waiting): %ui lookups refused since the last such "
                      "line, the last one for \"%V\"",
                      ngx_icp_gate_api_running, ngx_icp_gate_api_queued, n,
                      domain);
    }
}


static void
ngx_icp_gate_api_free(ngx_icp_gate_api_request_t *req)
{
    if (req->easy) {
        curl_easy_cleanup(req->easy);
    }

    if (req->body) {
        ngx_free(req->body);
    }

    ngx_free(req);
}


/*
 * A template with the domain for each "{domain}": escaped for a URL's
 * query (the URL), or as it is (a body: a domain that passed the host
 * checks has letters, digits, "-" and "." only, which no format escapes)
 */

static char *
ngx_icp_gate_api_fill(ngx_str_t *tpl, ngx_str_t *domain, ngx_uint_t escape)
{
    u_char  *url, *p, *s, *last, *brace;
    size_t   len, dlen;

    dlen = domain->len;

    if (escape) {
        dlen += 2 * ngx_escape_uri(NULL, domain->data, domain->len,
                                   NGX_ESCAPE_ARGS);
    }

    len = tpl->len + 1;
    last = tpl->data + tpl->len;

    for (s = tpl->data;
         (brace = ngx_strlcasestrn(s, last, (u_char *) "{domain}", 8 - 1));
         s = brace + 8)
    {
        len += dlen;
    }

    url = ngx_alloc(len, ngx_cycle->log);
    if (url == NULL) {
        return NULL;
    }

    p = url;
    s = tpl->data;

    for ( ;; ) {
        brace = ngx_strlcasestrn(s, last, (u_char *) "{domain}", 8 - 1);

        if (brace == NULL) {
            p = ngx_cpymem(p, s, last - s);
            break;
        }

        p = ngx_cpymem(p, s, brace - s);

        if (escape) {
            p = (u_char *) ngx_escape_uri(p, domain->data, domain->len,
                                          NGX_ESCAPE_ARGS);

        } else {
            p = ngx_cpymem(p, domain->data, domain->len);
        }

        s = brace + 8;
    }

    *p = '\0';

    return (char *) url;
}


static ngx_int_t
ngx_icp_gate_api_verdict(ngx_icp_gate_api_request_t *req, CURLcode result,
    ngx_icp_gate_verdict_t *v)
{
    long                     code;
    u_char                   text[NGX_ICP_GATE_API_MAP_WHY];
    ngx_str_t                why;
    curl_off_t               us, connected;
    ngx_icp_gate_api_map_t  *map;

    map = &ngx_icp_gate_api_conf->map;

    if (curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME_T, &us) == CURLE_OK)
    {
        ngx_icp_gate_metrics_observe(&ngx_icp_gate_metrics->counters
                                     .api_seconds,
                                     ngx_icp_gate_api_bounds, (uint64_t) us);
    }

    code = 0;
    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &code);

    if (result != CURLE_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: filing API request for \"%V\" failed: %s",
                      &req->domain,
                      req->error[0] ? req->error : curl_easy_strerror(result));

        ngx_icp_gate_count(api_failures[ngx_icp_gate_api_failure(result)]);

        /*
         * the API's failure, for the fleet to share, only when it answered
         * or stopped answering once connected: not this node's name,
         * route or certificates
         */

        connected = 0;
        curl_easy_getinfo(req->easy, CURLINFO_CONNECT_TIME_T, &connected);

        return (code || (result == CURLE_OPERATION_TIMEDOUT && connected))
               ? NGX_ERROR : NGX_DECLINED;
    }

    why.len = 0;
    why.data = text;

    if (ngx_icp_gate_api_map_is_unfiled(map, code)) {
        ngx_memzero(v, sizeof(ngx_icp_gate_verdict_t));
        v->status = NGX_ICP_GATE_STATUS_UNFILED;
        v->region = map->default_region;

    } else if (code != 200) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: filing API answered \"%V\" with status %l",
                      &req->domain, code);

        ngx_icp_gate_count(api_failures[NGX_ICP_GATE_API_FAIL_STATUS]);

        /* this node's credentials refused: another node's may not be */

        return (code == 401 || code == 403 || code == 407)
               ? NGX_DECLINED : NGX_ERROR;

    } else if (ngx_icp_gate_api_map_answer(map, &req->domain, req->body,
                                           req->len, v, &why)
               != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: filing API answered \"%V\" %V",
                      &req->domain, &why);

        ngx_icp_gate_count(api_failures[NGX_ICP_GATE_API_FAIL_BODY]);
        return NGX_ERROR;
    }

    v->source = NGX_ICP_GATE_SOURCE_API;
    v->checked_at = ngx_time();

    return NGX_OK;
}


static ngx_uint_t
ngx_icp_gate_api_failure(CURLcode result)
{
    switch (result) {

    case CURLE_OPERATION_TIMEDOUT:
        return NGX_ICP_GATE_API_FAIL_TIMEOUT;

    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
        return NGX_ICP_GATE_API_FAIL_CONNECT;

    default:
        return NGX_ICP_GATE_API_FAIL_TRANSFER;
    }
}


static void
ngx_icp_gate_api_collect(void)
{
    int                          left;
    CURL                        *easy;
    CURLMsg                     *msg;
    CURLcode                     result;
    ngx_int_t                    rc;
    ngx_icp_gate_verdict_t       v;
    ngx_icp_gate_api_request_t  *req;

    while ((msg = curl_multi_info_read(ngx_icp_gate_api_multi, &left))) {

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        easy = msg->easy_handle;
        result = msg->data.result;

        req = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &req);

        rc = ngx_icp_gate_api_verdict(req, result, &v);

        ngx_log_debug3(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: filing API transfer for \"%V\" ended: "
                       "%s, %s", &req->domain, curl_easy_strerror(result),
                       rc == NGX_OK ? "a verdict" : "no verdict");

        curl_multi_remove_handle(ngx_icp_gate_api_multi, easy);
        ngx_queue_remove(&req->queue);
        ngx_icp_gate_api_running--;
        ngx_icp_gate_gauge(api_running, -1);

        req->handler(req->data, rc, &v);

        ngx_icp_gate_api_free(req);

        ngx_icp_gate_api_next();
    }
}


static void
ngx_icp_gate_api_action(curl_socket_t s, int mask)
{
    int  running;

    curl_multi_socket_action(ngx_icp_gate_api_multi, s, mask, &running);

    ngx_icp_gate_api_collect();
}


/*
 * curl closes a socket that never connected without the close callback:
 * then its number may name another socket already
 */

static ngx_uint_t
ngx_icp_gate_api_closed(ngx_connection_t *c)
{
    return c->close
           || ngx_icp_gate_api_identity(c->fd) != (uintptr_t) c->data;
}


/* which socket a descriptor names: its inode, 0 when it names none */

static uintptr_t
ngx_icp_gate_api_identity(ngx_socket_t s)
{
    struct stat  st;

    if (fstat(s, &st) == -1) {
        return 0;
    }

    return (uintptr_t) st.st_ino;
}


static size_t
ngx_icp_gate_api_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    ngx_icp_gate_api_request_t  *req = userdata;

    long    status;
    size_t  n;

    n = size * nmemb;

    /* only a 200 has a body to read: a long 404 page still means unfiled */

    if (curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status)
        == CURLE_OK && status != 200)
    {
        return n;
    }

    if (n > NGX_ICP_GATE_API_BODY_MAX - req->len) {
        /* no honest answer is this long: fail the transfer */
        return 0;
    }

    ngx_memcpy(req->body + req->len, ptr, n);
    req->len += n;

    return n;
}


static int
ngx_icp_gate_api_socket(CURL *easy, curl_socket_t s, int what, void *userp,
    void *socketp)
{
    ngx_connection_t  *c = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (c) {
            ngx_queue_remove(&c->queue);
            ngx_icp_gate_socket_release(c, ngx_icp_gate_api_closed(c));
        }

        return 0;
    }

    if (c == NULL) {
        c = ngx_icp_gate_socket_wrap(s, ngx_icp_gate_api_read,
                                     ngx_icp_gate_api_write_ready,
                                     (void *) ngx_icp_gate_api_identity(s));
        if (c == NULL) {
            /*
             * -1 would mark the multi handle dead for good; without events
             * this transfer ends at its timeout instead
             */
            return 0;
        }

        ngx_queue_insert_tail(&ngx_icp_gate_api_conns, &c->queue);
        curl_multi_assign(ngx_icp_gate_api_multi, s, c);
    }

    if (c->close) {
        /* the descriptor was closed and its number handed out again */
        c->close = 0;
        c->data = (void *) ngx_icp_gate_api_identity(s);
    }

    ngx_icp_gate_socket_want(c->read, what & CURL_POLL_IN);
    ngx_icp_gate_socket_want(c->write, what & CURL_POLL_OUT);

    return 0;
}


static int
ngx_icp_gate_api_close(void *clientp, curl_socket_t s)
{
    ngx_queue_t       *q;
    ngx_connection_t  *c;

    /*
     * curl may close a socket before it reports CURL_POLL_REMOVE: take it
     * out of epoll while the descriptor is still ours to name
     */

    for (q = ngx_queue_head(&ngx_icp_gate_api_conns);
         q != ngx_queue_sentinel(&ngx_icp_gate_api_conns);
         q = ngx_queue_next(q))
    {
        c = ngx_queue_data(q, ngx_connection_t, queue);

        if (c->fd == s && !c->close) {
            ngx_icp_gate_socket_forget(c, ngx_icp_gate_api_closed(c));
            c->close = 1;
            break;
        }
    }

    return close(s);
}


static int
ngx_icp_gate_api_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
    /* re-armed from scratch: nginx would keep a timer less than 300ms off */

    if (ngx_icp_gate_api_timer.timer_set) {
        ngx_del_timer(&ngx_icp_gate_api_timer);
    }

    if (timeout_ms >= 0) {
        ngx_add_timer(&ngx_icp_gate_api_timer, (ngx_msec_t) timeout_ms);
    }

    return 0;
}


static void
ngx_icp_gate_api_timeout(ngx_event_t *ev)
{
    ngx_icp_gate_api_action(CURL_SOCKET_TIMEOUT, 0);
}


static void
ngx_icp_gate_api_read(ngx_event_t *rev)
{
    ngx_connection_t  *c = rev->data;

    ngx_icp_gate_api_action(c->fd, CURL_CSELECT_IN);
}


static void
ngx_icp_gate_api_write_ready(ngx_event_t *wev)
{
    ngx_connection_t  *c = wev->data;

    ngx_icp_gate_api_action(c->fd, CURL_CSELECT_OUT);
}
