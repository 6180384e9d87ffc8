
/*
 * Copyright (C) icp_gate authors
 *
 * The verdicts in Redis: the hash a domain's verdict is kept in, its
 * reads, and its writes.  A write goes on the write connection, so that
 * it never waits ahead of a read; verdicts that cannot be written wait in
 * a bounded backlog, and go out once the write connection answers again.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_icp_gate_redis_store.h"
#include "ngx_icp_gate_hiredis.h"


/* verdicts being written at once; the rest wait in the backlog */
#define NGX_ICP_GATE_REDIS_WRITES_MAX    16


typedef struct {
    ngx_queue_t                 queue;      /* in the backlog */
    time_t                      expires;    /* the Redis entry's, Unix time */
    ngx_icp_gate_verdict_t      verdict;
    size_t                      len;
    unsigned                    told:1;     /* the owner knows: not in Redis */
    u_char                      domain[NGX_ICP_GATE_DOMAIN_LEN];
} ngx_icp_gate_redis_write_t;


static ngx_int_t ngx_icp_gate_redis_hgetall(ngx_icp_gate_redis_conn_t *c,
    ngx_str_t *domain, ngx_icp_gate_redis_pt handler, void *data);
static ngx_int_t ngx_icp_gate_redis_write(ngx_icp_gate_redis_conn_t *c,
    ngx_icp_gate_redis_write_t *w, time_t ttl);
static void ngx_icp_gate_redis_flush(ngx_icp_gate_redis_conn_t *c);
static void ngx_icp_gate_redis_keep(ngx_icp_gate_redis_write_t *w);
static void ngx_icp_gate_redis_tell(ngx_icp_gate_redis_write_t *w);
static void ngx_icp_gate_redis_tell_all(ngx_icp_gate_redis_conn_t *c,
    ngx_uint_t closed);
static void ngx_icp_gate_redis_get_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_icp_gate_redis_part_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_icp_gate_redis_put_reply(redisAsyncContext *ac, void *r,
    void *privdata);


static ngx_queue_t                  ngx_icp_gate_redis_backlog;
static ngx_uint_t                   ngx_icp_gate_redis_backlog_n;


/* after ngx_icp_gate_redis_conns_init() */

void
ngx_icp_gate_redis_store_init(void)
{
    ngx_queue_init(&ngx_icp_gate_redis_backlog);
    ngx_icp_gate_redis_backlog_n = 0;

    ngx_icp_gate_redis_wr.ready_handler = ngx_icp_gate_redis_flush;
    ngx_icp_gate_redis_wr.gone_handler = ngx_icp_gate_redis_tell_all;
}


/* after ngx_icp_gate_redis_conns_done(): what was never written goes */

void
ngx_icp_gate_redis_store_done(void)
{
    ngx_queue_t                 *q;
    ngx_icp_gate_redis_write_t  *w;

    while (!ngx_queue_empty(&ngx_icp_gate_redis_backlog)) {
        q = ngx_queue_head(&ngx_icp_gate_redis_backlog);
        ngx_queue_remove(q);
        w = ngx_queue_data(q, ngx_icp_gate_redis_write_t, queue);
        ngx_free(w);
    }

    ngx_icp_gate_redis_backlog_n = 0;
}


/* NGX_ERROR at once when the read cannot be sent: the caller goes on */

ngx_int_t
ngx_icp_gate_redis_get(ngx_str_t *domain, ngx_icp_gate_redis_pt handler,
    void *data)
{
    return ngx_icp_gate_redis_hgetall(&ngx_icp_gate_redis_rd, domain,
                                      handler, data);
}


/*
 * The same, for a domain Redis said changed: on the write connection, so
 * that a lookup never waits behind the re-reads a burst of changes brings
 */

ngx_int_t
ngx_icp_gate_redis_reread(ngx_str_t *domain, ngx_icp_gate_redis_pt handler,
    void *data)
{
    return ngx_icp_gate_redis_hgetall(&ngx_icp_gate_redis_wr, domain,
                                      handler, data);
}


static ngx_int_t
ngx_icp_gate_redis_hgetall(ngx_icp_gate_redis_conn_t *c, ngx_str_t *domain,
    ngx_icp_gate_redis_pt handler, void *data)
{
    size_t       argvlen[2];
    const char  *argv[2];
    u_char       key[NGX_ICP_GATE_REDIS_KEY_LEN];

    ngx_icp_gate_hiredis_arg(argv, argvlen, 0, "HGETALL");
    argv[1] = (char *) key;
    argvlen[1] = ngx_icp_gate_redis_key(key, "domain:", domain);

    return ngx_icp_gate_redis_read(c, "HGETALL", ngx_icp_gate_redis_get_reply,
                                   handler, data, 2, argv, argvlen);
}


/*
 * NGX_OK: the verdict is on its way to Redis, and the conf's "unwritten"
 * handler hears of it if it does not get there; NGX_DECLINED: Redis is
 * known to be down, the verdict waits in the backlog and the caller keeps
 * it for its whole ttl
 */

ngx_int_t
ngx_icp_gate_redis_put(ngx_str_t *domain, ngx_icp_gate_verdict_t *v,
    time_t ttl)
{
    ngx_int_t                    rc;
    ngx_icp_gate_redis_conn_t   *c;
    ngx_icp_gate_redis_write_t  *w;

    c = &ngx_icp_gate_redis_wr;

    w = ngx_alloc(sizeof(ngx_icp_gate_redis_write_t), ngx_cycle->log);
    if (w == NULL) {
        return NGX_DECLINED;
    }

    w->expires = ngx_time() + ttl;
    w->verdict = *v;
    w->len = ngx_min(domain->len, NGX_ICP_GATE_DOMAIN_LEN);
    ngx_memcpy(w->domain, domain->data, w->len);

    w->told = ngx_icp_gate_redis_down(c);
    rc = w->told ? NGX_DECLINED : NGX_OK;

    ngx_icp_gate_redis_keep(w);
    ngx_icp_gate_redis_flush(c);

    return rc;
}


/* replaces the whole hash and its expiry at once */

static ngx_int_t
ngx_icp_gate_redis_write(ngx_icp_gate_redis_conn_t *c,
    ngx_icp_gate_redis_write_t *w, time_t ttl)
{
    size_t                     argvlen[12];
    ngx_str_t                 *name;
    ngx_uint_t                 argc;
    const char                *argv[12];
    ngx_icp_gate_verdict_t    *v;
    ngx_icp_gate_redis_cmd_t  *cmd;
    ngx_str_t                  domain;
    u_char                     key[NGX_ICP_GATE_REDIS_KEY_LEN];
    u_char                     lock[NGX_ICP_GATE_REDIS_KEY_LEN];
    u_char                     checked[NGX_TIME_T_LEN];
    u_char                     expire[NGX_TIME_T_LEN];

    cmd = ngx_icp_gate_redis_cmd(NGX_ICP_GATE_REDIS_WRITE);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->write = w;

    v = &w->verdict;
    domain.data = w->domain;
    domain.len = w->len;

    argv[1] = (char *) key;
    argvlen[1] = ngx_icp_gate_redis_key(key, "domain:", &domain);

    ngx_icp_gate_hiredis_arg(argv, argvlen, 0, "MULTI");

    if (ngx_icp_gate_redis_send(c, ngx_icp_gate_redis_part_reply, NULL,
                                1, argv, argvlen)
        != NGX_OK)
    {
        ngx_free(cmd);
        return NGX_ERROR;
    }

    /*
     * the fleet's lock on the domain goes with the old hash: the nodes that
     * waited find the verdict, and a lookup after an operator deletes the
     * hash does not wait for a lock nobody needs any more
     */

    ngx_icp_gate_hiredis_arg(argv, argvlen, 0, "DEL");
    argv[2] = (char *) lock;
    argvlen[2] = ngx_icp_gate_redis_key(lock, "lock:", &domain);

    if (ngx_icp_gate_redis_send(c, ngx_icp_gate_redis_part_reply, NULL,
                                3, argv, argvlen)
        != NGX_OK)
    {
        goto failed;
    }

    name = &ngx_icp_gate_status_names[v->status];

    ngx_icp_gate_hiredis_arg(argv, argvlen, 0, "HSET");
    ngx_icp_gate_hiredis_arg(argv, argvlen, 2, "status");
    argv[3] = (char *) name->data;
    argvlen[3] = name->len;
    ngx_icp_gate_hiredis_arg(argv, argvlen, 4, "source");
    ngx_icp_gate_hiredis_arg(argv, argvlen, 5, "api");
    ngx_icp_gate_hiredis_arg(argv, argvlen, 6, "checked_at");
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

    if (ngx_icp_gate_redis_send(c, ngx_icp_gate_redis_part_reply, NULL,
                                argc, argv, argvlen)
        != NGX_OK)
    {
        goto failed;
    }

    ngx_icp_gate_hiredis_arg(argv, argvlen, 0, "EXPIRE");
    argv[2] = (char *) expire;
    argvlen[2] = ngx_sprintf(expire, "%T", ttl) - expire;

    if (ngx_icp_gate_redis_send(c, ngx_icp_gate_redis_part_reply, NULL,
                                3, argv, argvlen)
        != NGX_OK)
    {
        goto failed;
    }

    ngx_icp_gate_hiredis_arg(argv, argvlen, 0, "EXEC");

    if (ngx_icp_gate_redis_send(c, ngx_icp_gate_redis_put_reply, cmd,
                                1, argv, argvlen)
        != NGX_OK)
    {
        goto failed;
    }

    return NGX_OK;

failed:

    /*
     * a command refused after MULTI would leave the connection inside the
     * transaction, where the next write's commands would join this one's
     */

    ngx_free(cmd);
    ngx_icp_gate_redis_drop(c);

    return NGX_ERROR;
}


/* sends what the backlog holds, as many at once as the write path takes */

static void
ngx_icp_gate_redis_flush(ngx_icp_gate_redis_conn_t *c)
{
    time_t                       ttl;
    ngx_queue_t                 *q;
    ngx_icp_gate_redis_write_t  *w;

    while (c->ctx && c->ready
           && c->inflight < NGX_ICP_GATE_REDIS_WRITES_MAX
           && !ngx_queue_empty(&ngx_icp_gate_redis_backlog))
    {
        q = ngx_queue_head(&ngx_icp_gate_redis_backlog);
        w = ngx_queue_data(q, ngx_icp_gate_redis_write_t, queue);

        /* what is left of its time to live, as if written when judged */

        ttl = w->expires - ngx_time();

        ngx_queue_remove(q);
        ngx_icp_gate_redis_backlog_n--;

        if (ttl <= 0) {
            ngx_free(w);
            continue;
        }

        if (ngx_icp_gate_redis_write(c, w, ttl) != NGX_OK) {
            ngx_queue_insert_head(&ngx_icp_gate_redis_backlog, q);
            ngx_icp_gate_redis_backlog_n++;
            return;
        }
    }
}


/* into the backlog; a full one lets its oldest verdict go */

static void
ngx_icp_gate_redis_keep(ngx_icp_gate_redis_write_t *w)
{
    ngx_queue_t                 *q;
    ngx_icp_gate_redis_write_t  *old;

    if (ngx_icp_gate_redis_backlog_n == NGX_ICP_GATE_REDIS_BACKLOG_MAX) {
        q = ngx_queue_head(&ngx_icp_gate_redis_backlog);
        ngx_queue_remove(q);
        ngx_icp_gate_redis_backlog_n--;

        old = ngx_queue_data(q, ngx_icp_gate_redis_write_t, queue);
        ngx_icp_gate_redis_tell(old);
        ngx_free(old);

        ngx_icp_gate_redis_stats.forgotten++;
        ngx_icp_gate_redis_note();
    }

    ngx_queue_insert_tail(&ngx_icp_gate_redis_backlog, &w->queue);
    ngx_icp_gate_redis_backlog_n++;
}


/* the owner keeps its copy as long as Redis would have */

static void
ngx_icp_gate_redis_tell(ngx_icp_gate_redis_write_t *w)
{
    time_t      ttl;
    ngx_str_t   domain;

    if (w->told || ngx_icp_gate_redis_exiting) {
        return;
    }

    w->told = 1;

    ttl = w->expires - ngx_time();

    if (ttl <= 0 || ngx_icp_gate_redis_conf->unwritten == NULL) {
        return;
    }

    domain.data = w->domain;
    domain.len = w->len;

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: redis has no copy of \"%V\" yet, kept %Ts "
                   "here", &domain, ttl);

    ngx_icp_gate_redis_conf->unwritten(&domain, &w->verdict, ttl);
}


/* the write connection is gone: what waits for it will not get there soon */

static void
ngx_icp_gate_redis_tell_all(ngx_icp_gate_redis_conn_t *c, ngx_uint_t closed)
{
    ngx_queue_t                 *q;
    ngx_icp_gate_redis_write_t  *w;

    for (q = ngx_queue_head(&ngx_icp_gate_redis_backlog);
         q != ngx_queue_sentinel(&ngx_icp_gate_redis_backlog);
         q = ngx_queue_next(q))
    {
        w = ngx_queue_data(q, ngx_icp_gate_redis_write_t, queue);
        ngx_icp_gate_redis_tell(w);
    }
}


ngx_int_t
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

        } else if (f->len == 6 && ngx_strncmp(f->str, "source", 6) == 0) {
            v->source = ngx_icp_gate_verdict_name(ngx_icp_gate_source_names,
                                                  (u_char *) val->str,
                                                  val->len);

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

    /* an operator's hash need not say so */

    if (v->source == NGX_ICP_GATE_SOURCE_NONE) {
        v->source = NGX_ICP_GATE_SOURCE_OPERATOR;
    }

    return NGX_OK;
}


static void
ngx_icp_gate_redis_get_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    void                    *data;
    ngx_int_t                rc;
    redisReply              *reply = r;
    ngx_icp_gate_redis_pt    handler;
    ngx_icp_gate_verdict_t   v;

    handler = ngx_icp_gate_redis_read_done(ac, reply, privdata, &data);

    ngx_log_debug3(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: redis answered HGETALL: %s, %uz elements%s",
                   reply == NULL ? "no reply"
                   : reply->type == REDIS_REPLY_ARRAY ? "a hash"
                   : "not a hash", reply ? reply->elements : 0,
                   handler ? "" : ", too late");

    /* its deadline passed: the lookup went on without it */

    if (handler == NULL) {
        return;
    }

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
ngx_icp_gate_redis_part_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply  *reply = r;

    ngx_icp_gate_redis_answered(ac->data, reply);

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V refused a write: %s",
                      &ngx_icp_gate_redis_conf->name, reply->str);

        /* a master turned replica: the sentinels know where the new one is */

        if (ngx_strncmp(reply->str, "READONLY", 8) == 0) {
            ngx_icp_gate_redis_master_lost();
        }
    }
}


static void
ngx_icp_gate_redis_put_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_icp_gate_redis_cmd_t  *cmd = privdata;

    redisReply                  *reply = r;
    ngx_icp_gate_redis_conn_t   *c;
    ngx_icp_gate_redis_write_t  *w;

    c = ac->data;
    w = cmd->write;

    ngx_icp_gate_redis_part_reply(ac, r, NULL);
    ngx_icp_gate_redis_cmd_done(c, cmd, reply);

    if (reply && reply->type == REDIS_REPLY_ARRAY) {
        ngx_free(w);
        ngx_icp_gate_redis_flush(c);
        return;
    }

    if (reply == NULL && !ngx_icp_gate_redis_exiting) {
        /* the connection went with it: again once Redis answers */

        ngx_icp_gate_redis_tell(w);
        ngx_icp_gate_redis_keep(w);
        return;
    }

    /* refused, or EXEC aborted: Redis said no, asking again would not help */

    ngx_icp_gate_redis_tell(w);
    ngx_free(w);
}
