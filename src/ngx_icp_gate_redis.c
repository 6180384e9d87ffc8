
/*
 * Copyright (C) icp_gate authors
 *
 * One hiredis async connection per worker, driven by the nginx event loop.
 * hiredis 0.14 has no timeouts and owns its socket: the timers here are
 * ours, and the nginx connection wrapped around the socket is only freed,
 * never closed.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_icp_gate_redis.h"
#include "ngx_icp_gate_socket.h"


#define NGX_ICP_GATE_REDIS_BACKOFF_MIN   100
#define NGX_ICP_GATE_REDIS_BACKOFF_MAX   5000
#define NGX_ICP_GATE_REDIS_PREFIX_MAX    128
#define NGX_ICP_GATE_REDIS_KEY_LEN                                          \
    (NGX_ICP_GATE_REDIS_PREFIX_MAX + sizeof("domain:")                        \
     + NGX_ICP_GATE_DOMAIN_LEN)


typedef struct {
    ngx_icp_gate_redis_pt       handler;
    void                       *data;
} ngx_icp_gate_redis_cmd_t;


static void ngx_icp_gate_redis_connect(void);
static ngx_int_t ngx_icp_gate_redis_setup(redisAsyncContext *ac,
    char *command, ngx_str_t *arg);
static void ngx_icp_gate_redis_drop(void);
static void ngx_icp_gate_redis_schedule(void);
static ngx_int_t ngx_icp_gate_redis_send(redisAsyncContext *ac,
    redisCallbackFn *fn, void *privdata, ngx_uint_t argc, const char **argv,
    size_t *argvlen);
static void ngx_icp_gate_redis_answered(redisReply *reply);
static size_t ngx_icp_gate_redis_key(u_char *buf, ngx_str_t *domain);
static ngx_int_t ngx_icp_gate_redis_parse_hash(redisReply *reply,
    ngx_icp_gate_verdict_t *v);

static void ngx_icp_gate_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_icp_gate_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_icp_gate_redis_setup_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_icp_gate_redis_get_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_icp_gate_redis_put_reply(redisAsyncContext *ac, void *r,
    void *privdata);

static void ngx_icp_gate_redis_timeout(ngx_event_t *ev);
static void ngx_icp_gate_redis_retry(ngx_event_t *ev);
static void ngx_icp_gate_redis_read(ngx_event_t *rev);
static void ngx_icp_gate_redis_write(ngx_event_t *wev);

static void ngx_icp_gate_redis_add_read(void *privdata);
static void ngx_icp_gate_redis_del_read(void *privdata);
static void ngx_icp_gate_redis_add_write(void *privdata);
static void ngx_icp_gate_redis_del_write(void *privdata);
static void ngx_icp_gate_redis_cleanup(void *privdata);


static ngx_icp_gate_redis_conf_t  *ngx_icp_gate_redis_conf;
static redisAsyncContext          *ngx_icp_gate_redis_ctx;
static ngx_event_t                 ngx_icp_gate_redis_timer;
static ngx_event_t                 ngx_icp_gate_redis_retry_ev;
static ngx_msec_t                  ngx_icp_gate_redis_backoff;
static ngx_uint_t                  ngx_icp_gate_redis_pending;

/* commands a lost connection took with it: hiredis fails them first */
static ngx_uint_t                  ngx_icp_gate_redis_lost;
static ngx_uint_t                  ngx_icp_gate_redis_connected;
static ngx_uint_t                  ngx_icp_gate_redis_exiting;


char *
ngx_icp_gate_redis_parse(ngx_conf_t *cf, ngx_icp_gate_redis_conf_t *rcf)
{
    u_char     *p;
    size_t      len;
    ngx_int_t   n;
    ngx_str_t  *value, s;
    ngx_url_t   u;
    ngx_uint_t  i;

    value = cf->args->elts;

    rcf->name = value[1];
    rcf->timeout = 1000;

    if (ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        len = value[1].len - 5;

        if (len == 0) {
            return "has an empty unix socket path";
        }

        rcf->path.data = ngx_pnalloc(cf->pool, len + 1);
        if (rcf->path.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(rcf->path.data, value[1].data + 5, len);
        rcf->path.data[len] = '\0';
        rcf->path.len = len;

    } else {
        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = value[1];
        u.default_port = 6379;

        /* resolved here, once: hiredis would block the worker on a name */

        if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
            if (u.err) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "%s in \"icp_gate_redis\" address \"%V\"",
                                   u.err, &u.url);
            }

            return NGX_CONF_ERROR;
        }

        if (u.naddrs == 0) {
            return "names no address";
        }

        p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                            NGX_SOCKADDR_STRLEN, 0);
        p[len] = '\0';

        rcf->host.data = p;
        rcf->host.len = len;
        rcf->port = u.port;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rcf->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rcf->password.data = value[i].data + 9;
            rcf->password.len = value[i].len - 9;

            if (rcf->password.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            rcf->timeout = n;
            continue;
        }

        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"icp_gate_redis\"",
                       &value[i]);

    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_icp_gate_redis_init(ngx_cycle_t *cycle, ngx_icp_gate_redis_conf_t *rcf)
{
    if (rcf->prefix.len > NGX_ICP_GATE_REDIS_PREFIX_MAX) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "icp_gate: redis prefix is longer than %d bytes",
                      NGX_ICP_GATE_REDIS_PREFIX_MAX);
        return NGX_ERROR;
    }

    ngx_icp_gate_redis_conf = rcf;
    ngx_icp_gate_redis_exiting = 0;
    ngx_icp_gate_redis_backoff = 0;

    /* neither timer may keep an exiting worker alive */

    ngx_icp_gate_redis_timer.handler = ngx_icp_gate_redis_timeout;
    ngx_icp_gate_redis_timer.data = ngx_icp_gate_timer_ident;
    ngx_icp_gate_redis_timer.log = cycle->log;
    ngx_icp_gate_redis_timer.cancelable = 1;

    ngx_icp_gate_redis_retry_ev.handler = ngx_icp_gate_redis_retry;
    ngx_icp_gate_redis_retry_ev.data = ngx_icp_gate_timer_ident;
    ngx_icp_gate_redis_retry_ev.log = cycle->log;
    ngx_icp_gate_redis_retry_ev.cancelable = 1;

    ngx_icp_gate_redis_connect();

    return NGX_OK;
}


void
ngx_icp_gate_redis_done(void)
{
    ngx_icp_gate_redis_exiting = 1;

    if (ngx_icp_gate_redis_retry_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_redis_retry_ev);
    }

    ngx_icp_gate_redis_drop();
}


ngx_int_t
ngx_icp_gate_redis_get(ngx_str_t *domain, ngx_icp_gate_redis_pt handler,
    void *data)
{
    size_t                     argvlen[2];
    const char                *argv[2];
    ngx_icp_gate_redis_cmd_t  *cmd;
    u_char                     key[NGX_ICP_GATE_REDIS_KEY_LEN];

    if (ngx_icp_gate_redis_ctx == NULL) {
        return NGX_ERROR;
    }

    cmd = ngx_alloc(sizeof(ngx_icp_gate_redis_cmd_t), ngx_cycle->log);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->handler = handler;
    cmd->data = data;

    argv[0] = "HGETALL";
    argvlen[0] = sizeof("HGETALL") - 1;
    argv[1] = (char *) key;
    argvlen[1] = ngx_icp_gate_redis_key(key, domain);

    if (ngx_icp_gate_redis_send(ngx_icp_gate_redis_ctx,
                                ngx_icp_gate_redis_get_reply, cmd,
                                2, argv, argvlen)
        != NGX_OK)
    {
        ngx_free(cmd);
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_icp_gate_redis_put(ngx_str_t *domain, ngx_icp_gate_verdict_t *v,
    time_t ttl)
{
    size_t               argvlen[12];
    ngx_str_t           *name;
    ngx_uint_t           argc;
    const char          *argv[12];
    redisAsyncContext   *ac;
    u_char               key[NGX_ICP_GATE_REDIS_KEY_LEN];
    u_char               checked[NGX_TIME_T_LEN], expire[NGX_TIME_T_LEN];

    ac = ngx_icp_gate_redis_ctx;

    if (ac == NULL) {
        return;
    }

    argv[1] = (char *) key;
    argvlen[1] = ngx_icp_gate_redis_key(key, domain);

    /* replace the whole hash and its expiry at once */

    argv[0] = "MULTI";
    argvlen[0] = sizeof("MULTI") - 1;

    if (ngx_icp_gate_redis_send(ac, ngx_icp_gate_redis_put_reply, NULL,
                                1, argv, argvlen)
        != NGX_OK)
    {
        return;
    }

    argv[0] = "DEL";
    argvlen[0] = sizeof("DEL") - 1;

    (void) ngx_icp_gate_redis_send(ac, ngx_icp_gate_redis_put_reply, NULL,
                                   2, argv, argvlen);

    name = &ngx_icp_gate_status_names[v->status];

    argv[0] = "HSET";
    argvlen[0] = sizeof("HSET") - 1;
    argv[2] = "status";
    argvlen[2] = sizeof("status") - 1;
    argv[3] = (char *) name->data;
    argvlen[3] = name->len;
    argv[4] = "source";
    argvlen[4] = sizeof("source") - 1;
    argv[5] = "api";
    argvlen[5] = sizeof("api") - 1;
    argv[6] = "checked_at";
    argvlen[6] = sizeof("checked_at") - 1;
    argv[7] = (char *) checked;
    argvlen[7] = ngx_sprintf(checked, "%T", v->checked_at) - checked;

    argc = 8;

    if (v->icp_len) {
        argv[argc] = "icp";
        argvlen[argc++] = sizeof("icp") - 1;
        argv[argc] = (char *) v->icp;
        argvlen[argc++] = v->icp_len;
    }

    if (v->region != NGX_ICP_GATE_REGION_NONE) {
        name = &ngx_icp_gate_region_names[v->region];

        argv[argc] = "region";
        argvlen[argc++] = sizeof("region") - 1;
        argv[argc] = (char *) name->data;
        argvlen[argc++] = name->len;
    }

    (void) ngx_icp_gate_redis_send(ac, ngx_icp_gate_redis_put_reply, NULL,
                                   argc, argv, argvlen);

    argv[0] = "EXPIRE";
    argvlen[0] = sizeof("EXPIRE") - 1;
    argv[2] = (char *) expire;
    argvlen[2] = ngx_sprintf(expire, "%T", ttl) - expire;

    (void) ngx_icp_gate_redis_send(ac, ngx_icp_gate_redis_put_reply, NULL,
                                   3, argv, argvlen);

    argv[0] = "EXEC";
    argvlen[0] = sizeof("EXEC") - 1;

    (void) ngx_icp_gate_redis_send(ac, ngx_icp_gate_redis_put_reply, NULL,
                                   1, argv, argvlen);
}


static void
ngx_icp_gate_redis_connect(void)
{
    ngx_str_t                   number;
    ngx_connection_t           *c;
    redisAsyncContext          *ac;
    ngx_icp_gate_redis_conf_t  *rcf;
    u_char                      db[NGX_INT_T_LEN];

    rcf = ngx_icp_gate_redis_conf;

    if (rcf->path.len) {
        ac = redisAsyncConnectUnix((char *) rcf->path.data);

    } else {
        ac = redisAsyncConnect((char *) rcf->host.data, rcf->port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V: out of memory", &rcf->name);
        ngx_icp_gate_redis_schedule();
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V connect failed: %s",
                      &rcf->name, ac->errstr);
        redisAsyncFree(ac);
        ngx_icp_gate_redis_schedule();
        return;
    }

    c = ngx_icp_gate_socket_wrap(ac->c.fd, ngx_icp_gate_redis_read,
                                 ngx_icp_gate_redis_write, ac);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_icp_gate_redis_schedule();
        return;
    }

    /* before the connect callback: hiredis 0.14 adds a write event there */

    ac->ev.data = c;
    ac->ev.addRead = ngx_icp_gate_redis_add_read;
    ac->ev.delRead = ngx_icp_gate_redis_del_read;
    ac->ev.addWrite = ngx_icp_gate_redis_add_write;
    ac->ev.delWrite = ngx_icp_gate_redis_del_write;
    ac->ev.cleanup = ngx_icp_gate_redis_cleanup;

    ngx_icp_gate_redis_ctx = ac;
    ngx_icp_gate_redis_connected = 0;
    ngx_icp_gate_redis_lost = 0;

    redisAsyncSetConnectCallback(ac, ngx_icp_gate_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_icp_gate_redis_on_disconnect);

    ngx_add_timer(&ngx_icp_gate_redis_timer, rcf->timeout);

    /*
     * hiredis sends these once connected, ahead of every other command;
     * a PING when there is nothing to set up, so that a live Redis answers
     * and resets the backoff even on a connection no lookup has used yet
     */

    number.data = db;
    number.len = ngx_sprintf(db, "%ui", rcf->db) - db;

    if ((rcf->password.len
         && ngx_icp_gate_redis_setup(ac, "AUTH", &rcf->password) != NGX_OK)
        || (rcf->db
            && ngx_icp_gate_redis_setup(ac, "SELECT", &number) != NGX_OK)
        || (rcf->password.len == 0 && rcf->db == 0
            && ngx_icp_gate_redis_setup(ac, "PING", NULL) != NGX_OK))
    {
        /* a connection that skipped AUTH or SELECT must not be used */
        ngx_icp_gate_redis_drop();
    }
}


static ngx_int_t
ngx_icp_gate_redis_setup(redisAsyncContext *ac, char *command, ngx_str_t *arg)
{
    size_t       argvlen[2];
    const char  *argv[2];

    argv[0] = command;
    argvlen[0] = ngx_strlen(command);

    if (arg) {
        argv[1] = (char *) arg->data;
        argvlen[1] = arg->len;
    }

    return ngx_icp_gate_redis_send(ac, ngx_icp_gate_redis_setup_reply, NULL,
                                   arg ? 2 : 1, argv, argvlen);
}


static void
ngx_icp_gate_redis_drop(void)
{
    redisAsyncContext  *ac;

    ac = ngx_icp_gate_redis_ctx;

    ngx_icp_gate_redis_ctx = NULL;
    ngx_icp_gate_redis_connected = 0;

    if (ngx_icp_gate_redis_timer.timer_set) {
        ngx_del_timer(&ngx_icp_gate_redis_timer);
    }

    if (ac) {
        /* every pending callback runs now, with no reply */
        redisAsyncFree(ac);
    }

    ngx_icp_gate_redis_schedule();
}


static void
ngx_icp_gate_redis_schedule(void)
{
    if (ngx_icp_gate_redis_exiting || ngx_exiting || ngx_quit
        || ngx_terminate || ngx_icp_gate_redis_retry_ev.timer_set)
    {
        return;
    }

    ngx_icp_gate_redis_backoff = ngx_icp_gate_redis_backoff
        ? ngx_min(ngx_icp_gate_redis_backoff * 2,
                  NGX_ICP_GATE_REDIS_BACKOFF_MAX)
        : NGX_ICP_GATE_REDIS_BACKOFF_MIN;

    ngx_add_timer(&ngx_icp_gate_redis_retry_ev, ngx_icp_gate_redis_backoff);
}


static ngx_int_t
ngx_icp_gate_redis_send(redisAsyncContext *ac, redisCallbackFn *fn,
    void *privdata, ngx_uint_t argc, const char **argv, size_t *argvlen)
{
    if (redisAsyncCommandArgv(ac, fn, privdata, (int) argc, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    ngx_icp_gate_redis_pending++;

    ngx_log_debug3(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: redis %*s sent, %ui pending",
                   argvlen[0], argv[0], ngx_icp_gate_redis_pending);

    if (!ngx_icp_gate_redis_timer.timer_set) {
        ngx_add_timer(&ngx_icp_gate_redis_timer,
                      ngx_icp_gate_redis_conf->timeout);
    }

    return NGX_OK;
}


static void
ngx_icp_gate_redis_answered(redisReply *reply)
{
    if (ngx_icp_gate_redis_pending) {
        ngx_icp_gate_redis_pending--;
    }

    if (reply == NULL) {
        ngx_icp_gate_redis_lost++;
    }

    /* a Redis that answers, not one that only accepts, resets the backoff */

    if (reply && reply->type != REDIS_REPLY_ERROR) {
        ngx_icp_gate_redis_backoff = 0;
    }

    if (ngx_icp_gate_redis_ctx == NULL) {
        return;
    }

    /* replies come in order: one means all before it came too */

    if (ngx_icp_gate_redis_pending) {
        ngx_add_timer(&ngx_icp_gate_redis_timer,
                      ngx_icp_gate_redis_conf->timeout);

    } else if (ngx_icp_gate_redis_connected
               && ngx_icp_gate_redis_timer.timer_set)
    {
        ngx_del_timer(&ngx_icp_gate_redis_timer);
    }
}


static size_t
ngx_icp_gate_redis_key(u_char *buf, ngx_str_t *domain)
{
    u_char  *p;

    p = ngx_cpymem(buf, ngx_icp_gate_redis_conf->prefix.data,
                   ngx_icp_gate_redis_conf->prefix.len);
    p = ngx_cpymem(p, "domain:", sizeof("domain:") - 1);
    p = ngx_cpymem(p, domain->data, domain->len);

    return p - buf;
}


static ngx_int_t
ngx_icp_gate_redis_parse_hash(redisReply *reply, ngx_icp_gate_verdict_t *v)
{
    size_t       i;
    time_t       t;
    redisReply  *f, *val;

    ngx_memzero(v, sizeof(ngx_icp_gate_verdict_t));

    for (i = 0; i + 1 < reply->elements; i += 2) {
        f = reply->element[i];
        val = reply->element[i + 1];

        if (f->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING) {
            continue;
        }

        if (f->len == 6 && ngx_strncmp(f->str, "status", 6) == 0) {
            v->status = ngx_icp_gate_verdict_name(ngx_icp_gate_status_names,
                                                  (u_char *) val->str,
                                                  val->len);

        } else if (f->len == 6 && ngx_strncmp(f->str, "region", 6) == 0) {
            v->region = ngx_icp_gate_verdict_name(ngx_icp_gate_region_names,
                                                  (u_char *) val->str,
                                                  val->len);

        } else if (f->len == 3 && ngx_strncmp(f->str, "icp", 3) == 0) {
            ngx_icp_gate_verdict_set_icp(v, (u_char *) val->str, val->len);

        } else if (f->len == 10
                   && ngx_strncmp(f->str, "checked_at", 10) == 0)
        {
            t = ngx_atotm((u_char *) val->str, val->len);
            v->checked_at = (t == NGX_ERROR) ? 0 : t;
        }
    }

    if (v->status == NGX_ICP_GATE_STATUS_NONE) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static void
ngx_icp_gate_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_icp_gate_redis_conf_t  *rcf;

    rcf = ngx_icp_gate_redis_conf;

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V connect failed: %s",
                      &rcf->name, ac->errstr);

        /* hiredis frees the context itself once this returns */

        if (ac == ngx_icp_gate_redis_ctx) {
            ngx_icp_gate_redis_ctx = NULL;

            if (ngx_icp_gate_redis_timer.timer_set) {
                ngx_del_timer(&ngx_icp_gate_redis_timer);
            }

            ngx_icp_gate_redis_schedule();
        }

        return;
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "icp_gate: redis %V connected", &rcf->name);

    ngx_icp_gate_redis_connected = 1;

    if (ngx_icp_gate_redis_pending == 0
        && ngx_icp_gate_redis_timer.timer_set)
    {
        ngx_del_timer(&ngx_icp_gate_redis_timer);
    }
}


static void
ngx_icp_gate_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_uint_t  level;

    if (ac != ngx_icp_gate_redis_ctx) {
        return;
    }

    /* a Redis "timeout" closes idle connections: no error then */

    level = ngx_icp_gate_redis_lost ? NGX_LOG_ERR : NGX_LOG_INFO;

    ngx_log_error(level, ngx_cycle->log, 0,
                  "icp_gate: redis %V connection lost: %s",
                  &ngx_icp_gate_redis_conf->name,
                  ac->errstr[0] ? ac->errstr : "closed");

    ngx_icp_gate_redis_ctx = NULL;
    ngx_icp_gate_redis_connected = 0;
    ngx_icp_gate_redis_lost = 0;

    if (ngx_icp_gate_redis_timer.timer_set) {
        ngx_del_timer(&ngx_icp_gate_redis_timer);
    }

    ngx_icp_gate_redis_schedule();
}


static void
ngx_icp_gate_redis_setup_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply  *reply = r;

    ngx_icp_gate_redis_answered(reply);

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V refused setup: %s",
                      &ngx_icp_gate_redis_conf->name, reply->str);

        if (ac == ngx_icp_gate_redis_ctx) {
            ngx_icp_gate_redis_drop();
        }
    }
}


static void
ngx_icp_gate_redis_get_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_icp_gate_redis_cmd_t  *cmd = privdata;

    void                     *data;
    ngx_int_t                 rc;
    redisReply               *reply = r;
    ngx_icp_gate_redis_pt     handler;
    ngx_icp_gate_verdict_t    v;

    ngx_icp_gate_redis_answered(reply);

    handler = cmd->handler;
    data = cmd->data;
    ngx_free(cmd);

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: redis answered HGETALL: %s, %uz elements",
                   reply == NULL ? "no reply"
                   : reply->type == REDIS_REPLY_ARRAY ? "a hash"
                   : "not a hash", reply ? reply->elements : 0);

    if (reply == NULL) {
        rc = NGX_ERROR;

    } else if (reply->type == REDIS_REPLY_ARRAY) {
        rc = ngx_icp_gate_redis_parse_hash(reply, &v);

    } else {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V answered HGETALL with %s",
                      &ngx_icp_gate_redis_conf->name,
                      reply->type == REDIS_REPLY_ERROR ? reply->str
                                                       : "an unexpected type");
        rc = NGX_ERROR;
    }

    handler(data, rc, (rc == NGX_OK) ? &v : NULL);
}


static void
ngx_icp_gate_redis_put_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply  *reply = r;

    ngx_icp_gate_redis_answered(reply);

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V refused a write: %s",
                      &ngx_icp_gate_redis_conf->name, reply->str);
    }
}


static void
ngx_icp_gate_redis_timeout(ngx_event_t *ev)
{
    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "icp_gate: redis %V timed out",
                  &ngx_icp_gate_redis_conf->name);

    ngx_icp_gate_redis_drop();
}


static void
ngx_icp_gate_redis_retry(ngx_event_t *ev)
{
    if (ngx_icp_gate_redis_ctx == NULL && !ngx_icp_gate_redis_exiting) {
        ngx_icp_gate_redis_connect();
    }
}


static void
ngx_icp_gate_redis_read(ngx_event_t *rev)
{
    ngx_connection_t  *c = rev->data;

    redisAsyncHandleRead(c->data);
}


static void
ngx_icp_gate_redis_write(ngx_event_t *wev)
{
    ngx_connection_t  *c = wev->data;

    redisAsyncHandleWrite(c->data);
}


static void
ngx_icp_gate_redis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_icp_gate_socket_want(c->read, 1);
}


static void
ngx_icp_gate_redis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_icp_gate_socket_want(c->read, 0);
}


static void
ngx_icp_gate_redis_add_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_icp_gate_socket_want(c->write, 1);
}


static void
ngx_icp_gate_redis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_icp_gate_socket_want(c->write, 0);
}


/* hiredis closes the socket after this, while it is still open */

static void
ngx_icp_gate_redis_cleanup(void *privdata)
{
    ngx_icp_gate_socket_release(privdata, 0);
}
