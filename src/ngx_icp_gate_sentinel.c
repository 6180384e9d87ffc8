
/*
 * Copyright (C) icp_gate authors
 *
 * Each worker asks for itself: one question at a time, to one sentinel
 * after another, each bounded by the timeout; a round that no sentinel
 * answered is tried again after a backoff.  The connection of the
 * sentinel that answered stays, subscribed to +switch-master, so that a
 * failover reaches the worker as soon as Sentinel announces it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_icp_gate_sentinel.h"
#include "ngx_icp_gate_hiredis.h"
#include "ngx_icp_gate_resolve.h"
#include "ngx_icp_gate_socket.h"


#define NGX_ICP_GATE_SENTINEL_BACKOFF_MIN  100
#define NGX_ICP_GATE_SENTINEL_BACKOFF_MAX  5000

#define NGX_ICP_GATE_SENTINEL_SWITCH       "+switch-master"

/* what was wrong with a sentinel's reply, for the log */
#define NGX_ICP_GATE_SENTINEL_WHY_LEN      128


static void ngx_icp_gate_sentinel_next(void);
static void ngx_icp_gate_sentinel_resolved(void *data, ngx_int_t rc,
    ngx_str_t *addr);
static void ngx_icp_gate_sentinel_query(char *host, in_port_t port);
static void ngx_icp_gate_sentinel_give_up(void);
static void ngx_icp_gate_sentinel_later(ngx_msec_t *backoff);
static void ngx_icp_gate_sentinel_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_icp_gate_sentinel_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_icp_gate_sentinel_auth_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_icp_gate_sentinel_master_reply(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_icp_gate_sentinel_listen(redisAsyncContext *ac);
static void ngx_icp_gate_sentinel_switch(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_icp_gate_sentinel_unheard(redisAsyncContext *ac,
    u_char *why);
static void ngx_icp_gate_sentinel_malformed(ngx_icp_gate_sentinel_addr_t *a,
    u_char *why);
static ngx_int_t ngx_icp_gate_sentinel_host(u_char *p, size_t len);
static void ngx_icp_gate_sentinel_timer(ngx_event_t *ev);


static ngx_icp_gate_sentinel_conf_t  *ngx_icp_gate_sentinel_conf;
static ngx_icp_gate_sentinel_pt       ngx_icp_gate_sentinel_handler;

static redisAsyncContext     *ngx_icp_gate_sentinel_asked;   /* a question */
static redisAsyncContext     *ngx_icp_gate_sentinel_watch;   /* a listener */
static ngx_icp_gate_resolve_t  *ngx_icp_gate_sentinel_resolving;
static ngx_icp_gate_sentinel_addr_t  *ngx_icp_gate_sentinel_current;
static ngx_icp_gate_sentinel_addr_t  *ngx_icp_gate_sentinel_listened;

static ngx_event_t            ngx_icp_gate_sentinel_ev;
static ngx_uint_t             ngx_icp_gate_sentinel_next_one;
static ngx_uint_t             ngx_icp_gate_sentinel_tried;
static ngx_uint_t             ngx_icp_gate_sentinel_asking;
static ngx_uint_t             ngx_icp_gate_sentinel_exiting;
static ngx_msec_t             ngx_icp_gate_sentinel_backoff;
static ngx_msec_t             ngx_icp_gate_sentinel_asked_at;
static ngx_msec_t             ngx_icp_gate_sentinel_switched_at;
static ngx_uint_t             ngx_icp_gate_sentinel_switched;

/*
 * Malformed replies, logged once while they go on; a listener lost to one
 * is replaced after a backoff of its own, as the round that found it
 * succeeded and reset the round's
 */
static ngx_icp_gate_hiredis_episode_t  ngx_icp_gate_sentinel_bad;
static ngx_msec_t             ngx_icp_gate_sentinel_relisten;


/* list: "host:port,host:port"; the port defaults to 26379 */

char *
ngx_icp_gate_sentinel_parse(ngx_conf_t *cf, ngx_str_t *list,
    ngx_icp_gate_sentinel_conf_t *scf)
{
    u_char                        *p, *last, *comma;
    ngx_url_t                      u;
    ngx_icp_gate_sentinel_addr_t  *a;

    p = list->data;
    last = list->data + list->len;

    while (p < last) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        if (scf->naddrs == NGX_ICP_GATE_SENTINELS_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "more than %d sentinels in "
                               "\"icp_gate_redis\"",
                               NGX_ICP_GATE_SENTINELS_MAX);
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url.data = p;
        u.url.len = comma - p;
        u.default_port = 26379;
        u.no_resolve = 1;

        if (u.url.len == 0 || ngx_parse_url(cf->pool, &u) != NGX_OK
            || u.host.len == 0 || u.uri.len || u.host.len > NGX_MAXHOSTNAMELEN)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in sentinel \"%V\" of \"icp_gate_redis\"",
                               u.err ? u.err : "invalid address", &u.url);
            return NGX_CONF_ERROR;
        }

        a = &scf->addrs[scf->naddrs++];

        ngx_icp_gate_resolve_unbracket(&u.host);

        a->host.data = ngx_pnalloc(cf->pool, u.host.len + 1);
        if (a->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(a->host.data, u.host.data, u.host.len);
        a->host.data[u.host.len] = '\0';
        a->host.len = u.host.len;
        a->port = u.port;
        a->resolve = ngx_icp_gate_resolve_needed(&a->host);

        p = comma + 1;
    }

    if (scf->naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no sentinel in \"icp_gate_redis\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


void
ngx_icp_gate_sentinel_init(ngx_icp_gate_sentinel_conf_t *scf,
    ngx_icp_gate_sentinel_pt handler)
{
    ngx_icp_gate_sentinel_conf = scf;
    ngx_icp_gate_sentinel_handler = handler;

    ngx_icp_gate_sentinel_asked = NULL;
    ngx_icp_gate_sentinel_watch = NULL;
    ngx_icp_gate_sentinel_resolving = NULL;
    ngx_icp_gate_sentinel_asking = 0;
    ngx_icp_gate_sentinel_exiting = 0;
    ngx_icp_gate_sentinel_backoff = 0;
    ngx_icp_gate_sentinel_relisten = 0;
    ngx_icp_gate_sentinel_switched = 0;

    /* the workers of a node start with different sentinels */

    ngx_icp_gate_sentinel_next_one = ngx_pid % scf->naddrs;

    ngx_icp_gate_timer_init(&ngx_icp_gate_sentinel_ev,
                            ngx_icp_gate_sentinel_timer,
                            ngx_cycle->log);
}


/* where is the master?  One question at a time; the handler hears */

void
ngx_icp_gate_sentinel_ask(void)
{
    if (ngx_icp_gate_sentinel_asking || ngx_icp_gate_sentinel_exiting) {
        return;
    }

    /* a round that failed waits for its backoff */

    if (ngx_icp_gate_sentinel_ev.timer_set) {
        return;
    }

    ngx_icp_gate_sentinel_asking = 1;
    ngx_icp_gate_sentinel_tried = 0;
    ngx_icp_gate_sentinel_asked_at = ngx_current_msec;

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: asking the sentinels where \"%V\" is",
                   &ngx_icp_gate_sentinel_conf->master);

    ngx_icp_gate_sentinel_next();
}


void
ngx_icp_gate_sentinel_done(void)
{
    redisAsyncContext  *ac;

    ngx_icp_gate_sentinel_exiting = 1;

    if (ngx_icp_gate_sentinel_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_sentinel_ev);
    }

    if (ngx_icp_gate_sentinel_resolving) {
        ngx_icp_gate_resolve_cancel(ngx_icp_gate_sentinel_resolving);
        ngx_icp_gate_sentinel_resolving = NULL;
    }

    ac = ngx_icp_gate_sentinel_asked;
    ngx_icp_gate_sentinel_asked = NULL;

    if (ac) {
        redisAsyncFree(ac);
    }

    ac = ngx_icp_gate_sentinel_watch;
    ngx_icp_gate_sentinel_watch = NULL;

    if (ac) {
        redisAsyncFree(ac);
    }
}


/* the next sentinel of the round, or the round's end */

static void
ngx_icp_gate_sentinel_next(void)
{
    ngx_icp_gate_sentinel_addr_t  *a;
    ngx_icp_gate_sentinel_conf_t  *scf;

    scf = ngx_icp_gate_sentinel_conf;

    if (ngx_icp_gate_sentinel_exiting) {
        return;
    }

    if (ngx_icp_gate_sentinel_tried == scf->naddrs) {
        ngx_icp_gate_sentinel_give_up();
        return;
    }

    a = &scf->addrs[ngx_icp_gate_sentinel_next_one];

    ngx_icp_gate_sentinel_next_one = (ngx_icp_gate_sentinel_next_one + 1)
                                     % scf->naddrs;
    ngx_icp_gate_sentinel_tried++;
    ngx_icp_gate_sentinel_current = a;

    if (!a->resolve) {
        ngx_icp_gate_sentinel_query((char *) a->host.data, a->port);
        return;
    }

    ngx_icp_gate_sentinel_resolving =
        ngx_icp_gate_resolve(&a->host, scf->timeout,
                             ngx_icp_gate_sentinel_resolved, a);

    if (ngx_icp_gate_sentinel_resolving == NULL) {
        ngx_icp_gate_sentinel_next();
    }
}


static void
ngx_icp_gate_sentinel_resolved(void *data, ngx_int_t rc, ngx_str_t *addr)
{
    ngx_icp_gate_sentinel_addr_t  *a = data;

    u_char  host[NGX_SOCKADDR_STRLEN + 1];

    ngx_icp_gate_sentinel_resolving = NULL;

    if (rc != NGX_OK) {
        ngx_icp_gate_sentinel_next();
        return;
    }

    ngx_memcpy(host, addr->data, addr->len);
    host[addr->len] = '\0';

    ngx_icp_gate_sentinel_query((char *) host, a->port);
}


static void
ngx_icp_gate_sentinel_query(char *host, in_port_t port)
{
    size_t                         argvlen[3];
    const char                    *argv[3];
    redisAsyncContext             *ac;
    ngx_icp_gate_sentinel_conf_t  *scf;

    scf = ngx_icp_gate_sentinel_conf;

    ac = redisAsyncConnect(host, port);

    if (ac == NULL || ac->err) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: sentinel %s:%d: %s", host, (int) port,
                      ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }

        ngx_icp_gate_sentinel_next();
        return;
    }

    if (ngx_icp_gate_hiredis_attach(ac) != NGX_OK) {
        redisAsyncFree(ac);
        ngx_icp_gate_sentinel_next();
        return;
    }

    redisAsyncSetConnectCallback(ac, ngx_icp_gate_sentinel_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_icp_gate_sentinel_on_disconnect);

    /* the listener may wait hours for a failover: a dead peer is noticed */

    (void) redisEnableKeepAlive(&ac->c);

    ngx_icp_gate_sentinel_asked = ac;

    if (scf->password.len) {
        ngx_icp_gate_hiredis_arg(argv, argvlen, 0, "AUTH");
        argv[1] = (char *) scf->password.data;
        argvlen[1] = scf->password.len;

        (void) redisAsyncCommandArgv(ac, ngx_icp_gate_sentinel_auth_reply,
                                     NULL, 2, argv, argvlen);
    }

    ngx_icp_gate_hiredis_arg(argv, argvlen, 0, "SENTINEL");
    ngx_icp_gate_hiredis_arg(argv, argvlen, 1, "get-master-addr-by-name");
    argv[2] = (char *) scf->master.data;
    argvlen[2] = scf->master.len;

    (void) redisAsyncCommandArgv(ac, ngx_icp_gate_sentinel_master_reply, NULL,
                                 3, argv, argvlen);

    /* the connect, AUTH and the question, within the timeout */

    ngx_add_timer(&ngx_icp_gate_sentinel_ev, scf->timeout);
}


/* no sentinel answered this round: another, after a backoff */

static void
ngx_icp_gate_sentinel_give_up(void)
{
    ngx_icp_gate_sentinel_asking = 0;

    ngx_icp_gate_sentinel_later(&ngx_icp_gate_sentinel_backoff);

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "icp_gate: no sentinel said where redis master \"%V\" is; "
                  "asking again in %Mms",
                  &ngx_icp_gate_sentinel_conf->master,
                  ngx_icp_gate_sentinel_backoff);
}


/* a question after a backoff, grown by one step */

static void
ngx_icp_gate_sentinel_later(ngx_msec_t *backoff)
{
    *backoff = *backoff ? ngx_min(*backoff * 2,
                                  NGX_ICP_GATE_SENTINEL_BACKOFF_MAX)
                        : NGX_ICP_GATE_SENTINEL_BACKOFF_MIN;

    if (ngx_icp_gate_sentinel_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_sentinel_ev);
    }

    ngx_add_timer(&ngx_icp_gate_sentinel_ev, *backoff);
}


/* a question's deadline, or a round's backoff */

static void
ngx_icp_gate_sentinel_timer(ngx_event_t *ev)
{
    redisAsyncContext  *ac;

    if (!ngx_icp_gate_sentinel_asking) {
        ngx_icp_gate_sentinel_ask();
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "icp_gate: sentinel %V:%d did not answer in time",
                  &ngx_icp_gate_sentinel_current->host,
                  (int) ngx_icp_gate_sentinel_current->port);

    ac = ngx_icp_gate_sentinel_asked;
    ngx_icp_gate_sentinel_asked = NULL;

    if (ac) {
        /* its callbacks run now, and find it no longer asked */
        redisAsyncFree(ac);
    }

    if (ngx_icp_gate_sentinel_resolving) {
        ngx_icp_gate_resolve_cancel(ngx_icp_gate_sentinel_resolving);
        ngx_icp_gate_sentinel_resolving = NULL;
    }

    ngx_icp_gate_sentinel_next();
}


static void
ngx_icp_gate_sentinel_on_connect(const redisAsyncContext *ac, int status)
{
    if (status == REDIS_OK || ac != ngx_icp_gate_sentinel_asked) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "icp_gate: sentinel %V:%d: %s",
                  &ngx_icp_gate_sentinel_current->host,
                  (int) ngx_icp_gate_sentinel_current->port, ac->errstr);

    /* hiredis frees it once this returns */

    ngx_icp_gate_sentinel_asked = NULL;

    if (ngx_icp_gate_sentinel_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_sentinel_ev);
    }

    ngx_icp_gate_sentinel_next();
}


static void
ngx_icp_gate_sentinel_on_disconnect(const redisAsyncContext *ac, int status)
{
    u_char  *why;

    why = ngx_icp_gate_hiredis_malformed(ac);

    if (ac == ngx_icp_gate_sentinel_asked) {
        ngx_icp_gate_sentinel_asked = NULL;

        if (ngx_icp_gate_sentinel_ev.timer_set) {
            ngx_del_timer(&ngx_icp_gate_sentinel_ev);
        }

        if (why) {
            ngx_icp_gate_sentinel_malformed(ngx_icp_gate_sentinel_current,
                                            why);
        }

        ngx_icp_gate_sentinel_next();
        return;
    }

    if (ac != ngx_icp_gate_sentinel_watch) {
        return;
    }

    if (why) {
        ngx_icp_gate_sentinel_unheard(NULL, why);
        return;
    }

    /* without a listener a failover would go unheard: ask again */

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "icp_gate: lost the sentinel that tells of failovers "
                  "of \"%V\"", &ngx_icp_gate_sentinel_conf->master);

    ngx_icp_gate_sentinel_watch = NULL;
    ngx_icp_gate_sentinel_ask();
}


static void
ngx_icp_gate_sentinel_auth_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply  *reply = r;

    if (reply && reply->type == REDIS_REPLY_ERROR
        && ac == ngx_icp_gate_sentinel_asked)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: sentinel %V:%d refused AUTH: %s",
                      &ngx_icp_gate_sentinel_current->host,
                      (int) ngx_icp_gate_sentinel_current->port, reply->str);
    }
}


static void
ngx_icp_gate_sentinel_master_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    u_char                        *p;
    ngx_int_t                      port;
    ngx_str_t                      host;
    redisReply                    *reply = r;
    ngx_icp_gate_sentinel_conf_t  *scf;
    u_char                         text[NGX_MAXHOSTNAMELEN + 1];
    u_char                         why[NGX_ICP_GATE_SENTINEL_WHY_LEN];

    scf = ngx_icp_gate_sentinel_conf;

    if (reply == NULL || ac != ngx_icp_gate_sentinel_asked) {
        return;
    }

    if (ngx_icp_gate_sentinel_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_sentinel_ev);
    }

    port = NGX_ERROR;
    p = why;

    if (reply->type == REDIS_REPLY_NIL || reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: sentinel %V:%d knows no master \"%V\"%s%s",
                      &ngx_icp_gate_sentinel_current->host,
                      (int) ngx_icp_gate_sentinel_current->port,
                      &scf->master,
                      reply->type == REDIS_REPLY_ERROR ? ": " : "",
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "");

    } else if (reply->type != REDIS_REPLY_ARRAY) {
        p = ngx_sprintf(why, "an answer that is %s",
                        ngx_icp_gate_hiredis_type(reply->type));

    } else if (reply->elements != 2) {
        p = ngx_sprintf(why, "an answer of %uz element%s",
                        (size_t) reply->elements,
                        reply->elements == 1 ? "" : "s");

    } else if (reply->element[0]->type != REDIS_REPLY_STRING
               || ngx_icp_gate_sentinel_host((u_char *) reply->element[0]->str,
                                             reply->element[0]->len)
                  != NGX_OK)
    {
        p = ngx_sprintf(why, "an answer with an invalid host");

    } else {
        if (reply->element[1]->type == REDIS_REPLY_STRING) {
            port = ngx_atoi((u_char *) reply->element[1]->str,
                            reply->element[1]->len);
        }

        if (port < 1 || port > 65535) {
            port = NGX_ERROR;
            p = ngx_sprintf(why, "an answer with an invalid port");
        }
    }

    if (port == NGX_ERROR) {
        if (p != why) {
            *p = '\0';
            ngx_icp_gate_sentinel_malformed(ngx_icp_gate_sentinel_current,
                                            why);
        }

        ngx_icp_gate_sentinel_asked = NULL;
        redisAsyncFree(ac);

        ngx_icp_gate_sentinel_next();
        return;
    }

    ngx_memcpy(text, reply->element[0]->str, reply->element[0]->len);
    text[reply->element[0]->len] = '\0';

    host.data = text;
    host.len = reply->element[0]->len;

    ngx_icp_gate_sentinel_asking = 0;
    ngx_icp_gate_sentinel_backoff = 0;
    ngx_icp_gate_sentinel_asked = NULL;

    /*
     * the first sentinel to answer is listened to from then on, until it
     * is lost: a failover announced while another took its place would be
     * missed
     */

    if (ngx_icp_gate_sentinel_watch) {
        redisAsyncFree(ac);

    } else {
        ngx_icp_gate_sentinel_listened = ngx_icp_gate_sentinel_current;
        ngx_icp_gate_sentinel_listen(ac);
    }

    /* a failover announced since the question began is newer than this */

    if (ngx_icp_gate_sentinel_switched
        && (ngx_msec_int_t) (ngx_icp_gate_sentinel_switched_at
                             - ngx_icp_gate_sentinel_asked_at) >= 0)
    {
        return;
    }

    ngx_icp_gate_sentinel_handler(&host, (in_port_t) port);
}


static void
ngx_icp_gate_sentinel_listen(redisAsyncContext *ac)
{
    size_t       argvlen[2];
    const char  *argv[2];

    ngx_icp_gate_hiredis_arg(argv, argvlen, 0, "SUBSCRIBE");
    ngx_icp_gate_hiredis_arg(argv, argvlen, 1,
                             NGX_ICP_GATE_SENTINEL_SWITCH);

    if (redisAsyncCommandArgv(ac, ngx_icp_gate_sentinel_switch, NULL, 2,
                              argv, argvlen)
        == REDIS_OK)
    {
        ngx_icp_gate_sentinel_watch = ac;

    } else {
        redisAsyncFree(ac);
    }
}


/* "<name> <old ip> <old port> <new ip> <new port>" */

static void
ngx_icp_gate_sentinel_switch(redisAsyncContext *ac, void *r, void *privdata)
{
    u_char      *p, *last, *word[5];
    size_t       len[5];
    ngx_int_t    port;
    ngx_str_t    host;
    ngx_uint_t   n;
    redisReply  *reply = r;
    redisReply  *msg;
    u_char       text[NGX_MAXHOSTNAMELEN + 1];
    u_char       why[NGX_ICP_GATE_SENTINEL_WHY_LEN];

    /* the subscription's confirmation, or the listener going */

    if (reply == NULL || ac != ngx_icp_gate_sentinel_watch
        || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || ngx_strcmp(reply->element[0]->str, "message") != 0)
    {
        return;
    }

    msg = reply->element[2];

    if (msg->type != REDIS_REPLY_STRING) {
        p = ngx_sprintf(why, "a failover told as %s",
                        ngx_icp_gate_hiredis_type(msg->type));
        *p = '\0';

        ngx_icp_gate_sentinel_unheard(ac, why);
        return;
    }

    p = (u_char *) msg->str;
    last = p + msg->len;

    for (n = 0; n < 5 && p < last; n++) {
        word[n] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        len[n] = p - word[n];

        while (p < last && *p == ' ') {
            p++;
        }
    }

    /* a failover that cannot be read: the master is asked for again */

    if (n != 5 || p != last) {
        p = ngx_sprintf(why, "a failover told in %s than 5 words",
                        n < 5 ? "fewer" : "more");
        *p = '\0';

        ngx_icp_gate_sentinel_unheard(ac, why);
        return;
    }

    /* another master's */

    if (len[0] != ngx_icp_gate_sentinel_conf->master.len
        || ngx_strncmp(word[0], ngx_icp_gate_sentinel_conf->master.data,
                       len[0]) != 0)
    {
        return;
    }

    port = ngx_atoi(word[4], len[4]);

    if (port < 1 || port > 65535
        || ngx_icp_gate_sentinel_host(word[3], len[3]) != NGX_OK)
    {
        p = ngx_sprintf(why, "a failover to an invalid address");
        *p = '\0';

        ngx_icp_gate_sentinel_unheard(ac, why);
        return;
    }

    ngx_memcpy(text, word[3], len[3]);
    text[len[3]] = '\0';

    host.data = text;
    host.len = len[3];

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "icp_gate: sentinel says redis master \"%V\" is now "
                  "%V:%i", &ngx_icp_gate_sentinel_conf->master, &host, port);

    ngx_icp_gate_sentinel_switched = 1;
    ngx_icp_gate_sentinel_switched_at = ngx_current_msec;

    ngx_icp_gate_sentinel_handler(&host, (in_port_t) port);
}


/*
 * The listener closed (ac) or lost for a malformed reply: a failover it
 * told may have been missed, so the master is asked for again, after a
 * backoff that grows while such replies go on
 */

static void
ngx_icp_gate_sentinel_unheard(redisAsyncContext *ac, u_char *why)
{
    ngx_icp_gate_sentinel_watch = NULL;

    ngx_icp_gate_sentinel_malformed(ngx_icp_gate_sentinel_listened, why);

    if (ac) {
        redisAsyncFree(ac);
    }

    if (ngx_icp_gate_sentinel_exiting || ngx_icp_gate_sentinel_asking) {
        return;
    }

    ngx_icp_gate_sentinel_later(&ngx_icp_gate_sentinel_relisten);
}


/* logged once while such replies go on, a minute apart at most */

static void
ngx_icp_gate_sentinel_malformed(ngx_icp_gate_sentinel_addr_t *a, u_char *why)
{
    if (!ngx_icp_gate_hiredis_episode(&ngx_icp_gate_sentinel_bad)) {
        return;
    }

    ngx_icp_gate_sentinel_relisten = 0;

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "icp_gate: sentinel %V:%d sent a malformed reply (%s), "
                  "closed; not logged again while such replies go on",
                  &a->host, (int) a->port, why);
}


/* a host a sentinel named: an address or a name, nothing to log raw */

static ngx_int_t
ngx_icp_gate_sentinel_host(u_char *p, size_t len)
{
    u_char  *last;

    if (len == 0 || len > NGX_MAXHOSTNAMELEN) {
        return NGX_ERROR;
    }

    for (last = p + len; p < last; p++) {
        if (!(isalnum(*p) || *p == '.' || *p == '-' || *p == ':'
              || *p == '_' || *p == '%'))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
