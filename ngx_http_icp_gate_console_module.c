
/*
 * Copyright (C) icp_gate authors
 *
 * What an operator asks of a node over HTTP: icp_gate_metrics answers the
 * node's metrics, icp_gate_admin its view of a domain, and purges it.
 * Neither guards itself: the location they are in does, with allow, deny
 * or auth_basic, which run before any content handler.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_icp_gate_module.h"
#include "ngx_icp_gate_console.h"


/* longer hosts are no host at all: a DNS name has at most 253 bytes */
#define NGX_HTTP_ICP_GATE_CONSOLE_HOST_MAX  1024


typedef struct {
    ngx_http_request_t         *request;
    ngx_icp_gate_console_t     *console;
} ngx_http_icp_gate_console_ctx_t;


static char *ngx_http_icp_gate_console(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_icp_gate_metrics_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_icp_gate_admin_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_icp_gate_admin_ask(ngx_http_request_t *r,
    ngx_icp_gate_console_ask_t *ask);
static ngx_uint_t ngx_http_icp_gate_admin_purge_header(
    ngx_http_request_t *r);
static void ngx_http_icp_gate_admin_answer(void *data, ngx_uint_t status,
    ngx_buf_t *b);
static void ngx_http_icp_gate_admin_cleanup(void *data);
static ngx_int_t ngx_http_icp_gate_console_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ngx_buf_t *b);


static ngx_command_t  ngx_http_icp_gate_console_commands[] = {

    { ngx_string("icp_gate_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_icp_gate_console,
      0,
      0,
      ngx_http_icp_gate_metrics_handler },

    { ngx_string("icp_gate_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_icp_gate_console,
      0,
      0,
      ngx_http_icp_gate_admin_handler },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_icp_gate_console_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_icp_gate_console_module = {
    NGX_MODULE_V1,
    &ngx_http_icp_gate_console_module_ctx, /* module context */
    ngx_http_icp_gate_console_commands,    /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_icp_gate_prometheus_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");
static ngx_str_t  ngx_http_icp_gate_json_type =
    ngx_string("application/json");

/*
 * A purge must carry this header.  A page can make a browser POST a form
 * anywhere, cookies and all, but not with a header of its own: for that
 * the browser first asks the console with an OPTIONS preflight, which the
 * console refuses (405, no Access-Control-Allow-*), and never sends it
 */
static ngx_str_t  ngx_http_icp_gate_purge_header = ngx_string("X-ICP-Gate");
static ngx_str_t  ngx_http_icp_gate_purge_value = ngx_string("purge");
static u_char     ngx_http_icp_gate_purge_refused[] =
    "{\"error\":\"a purge needs the header X-ICP-Gate: purge\"}\n";


/* the location's content handler is the directive's post */

static char *
ngx_http_icp_gate_console(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    if (ngx_icp_gate_use(cf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = (ngx_http_handler_pt) cmd->post;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_icp_gate_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t   rc;
    ngx_str_t   format;
    ngx_buf_t  *b;
    ngx_uint_t  json;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    json = (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK
            && format.len == 4 && ngx_strncmp(format.data, "json", 4) == 0);

    b = ngx_icp_gate_console_metrics(r->pool, json);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_icp_gate_console_send(r, NGX_HTTP_OK,
                                          json
                                          ? &ngx_http_icp_gate_json_type
                                          : &ngx_http_icp_gate_prometheus_type,
                                          b);
}


/*
 * GET ?domain=HOST[&probe=api]: what the node holds of the domain;
 * POST ?domain=HOST&action=purge[&redis=1] with X-ICP-Gate: purge: the
 * node forgets it.  A purge is a POST, so that no prefetch or crawler that
 * reaches the page purges, with a header, so that no other site's page
 * can make an operator's browser send it.
 */

static ngx_int_t
ngx_http_icp_gate_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_buf_t                        *b;
    ngx_http_cleanup_t               *cln;
    ngx_icp_gate_console_ask_t        ask;
    ngx_http_icp_gate_console_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_icp_gate_admin_ask(r, &ask);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ask.purge && !ngx_http_icp_gate_admin_purge_header(r)) {
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "icp_gate: admin purge refused: no \"%V: %V\" header",
                      &ngx_http_icp_gate_purge_header,
                      &ngx_http_icp_gate_purge_value);

        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->pos = ngx_http_icp_gate_purge_refused;
        b->last = b->pos + sizeof(ngx_http_icp_gate_purge_refused) - 1;
        b->memory = 1;

        return ngx_http_icp_gate_console_send(r, NGX_HTTP_FORBIDDEN,
                                              &ngx_http_icp_gate_json_type,
                                              b);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_icp_gate_console_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;

    if (ngx_icp_gate_console_domain(&ask, r->pool, r->connection->log,
                                    ngx_http_icp_gate_admin_answer, ctx,
                                    &ctx->console)
        != NGX_AGAIN)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_icp_gate_admin_cleanup;
    cln->data = ctx;

    r->main->count++;

    return NGX_DONE;
}


static ngx_int_t
ngx_http_icp_gate_admin_ask(ngx_http_request_t *r,
    ngx_icp_gate_console_ask_t *ask)
{
    u_char     *dst, *src;
    ngx_str_t   arg;

    ngx_memzero(ask, sizeof(ngx_icp_gate_console_ask_t));

    if (ngx_http_arg(r, (u_char *) "domain", 6, &arg) != NGX_OK
        || arg.len == 0 || arg.len > NGX_HTTP_ICP_GATE_CONSOLE_HOST_MAX)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "icp_gate: admin request without a domain= of 1 to %d "
                      "bytes", NGX_HTTP_ICP_GATE_CONSOLE_HOST_MAX);
        return NGX_HTTP_BAD_REQUEST;
    }

    /* an IDN may come in UTF-8, percent-encoded */

    dst = ngx_pnalloc(r->pool, arg.len);
    if (dst == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ask->host.data = dst;
    src = arg.data;
    ngx_unescape_uri(&dst, &src, arg.len, NGX_UNESCAPE_URI);
    ask->host.len = dst - ask->host.data;

    if (ngx_http_arg(r, (u_char *) "action", 6, &arg) == NGX_OK) {

        if (arg.len != 5 || ngx_strncmp(arg.data, "purge", 5) != 0) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "icp_gate: admin action \"%V\" unknown, "
                          "expected \"purge\"", &arg);
            return NGX_HTTP_BAD_REQUEST;
        }

        if (r->method != NGX_HTTP_POST) {
            return NGX_HTTP_NOT_ALLOWED;
        }

        ask->purge = 1;
        ask->redis = (ngx_http_arg(r, (u_char *) "redis", 5, &arg) == NGX_OK
                      && arg.len == 1 && arg.data[0] == '1');
        return NGX_OK;
    }

    if (r->method == NGX_HTTP_POST) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "icp_gate: admin POST without action=purge");
        return NGX_HTTP_BAD_REQUEST;
    }

    ask->probe = (ngx_http_arg(r, (u_char *) "probe", 5, &arg) == NGX_OK
                  && arg.len == 3 && ngx_strncmp(arg.data, "api", 3) == 0);

    return NGX_OK;
}


/* a value of exactly "purge": a browser sends none cross-site */

static ngx_uint_t
ngx_http_icp_gate_admin_purge_header(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == ngx_http_icp_gate_purge_header.len
            && ngx_strncasecmp(h[i].key.data,
                               ngx_http_icp_gate_purge_header.data,
                               h[i].key.len)
               == 0
            && h[i].value.len == ngx_http_icp_gate_purge_value.len
            && ngx_strncmp(h[i].value.data,
                           ngx_http_icp_gate_purge_value.data,
                           h[i].value.len)
               == 0)
        {
            return 1;
        }
    }
}


static void
ngx_http_icp_gate_admin_answer(void *data, ngx_uint_t status, ngx_buf_t *b)
{
    ngx_http_icp_gate_console_ctx_t  *ctx = data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;
    ctx->console = NULL;

    rc = (b == NULL)
         ? NGX_HTTP_INTERNAL_SERVER_ERROR
         : ngx_http_icp_gate_console_send(r, status,
                                          &ngx_http_icp_gate_json_type, b);

    /* the request may be freed by now */

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the request is freed before the console answers: it answers nobody */

static void
ngx_http_icp_gate_admin_cleanup(void *data)
{
    ngx_http_icp_gate_console_ctx_t  *ctx = data;

    if (ctx->console) {
        ngx_icp_gate_console_cancel(ctx->console);
        ctx->console = NULL;
    }
}


static ngx_int_t
ngx_http_icp_gate_console_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_buf_t *b)
{
    ngx_int_t         rc;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    r->headers_out.status = status;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_length_n = b->last - b->pos;

    /* what a node thinks now is never to be kept by a cache */

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
