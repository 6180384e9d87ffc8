
/*
 * Copyright (C) icp_gate authors
 *
 * The verdicts in Redis: the hash a domain's verdict is kept in, its
 * reads, and its writes.  A read brings Redis's time with the hash, its
 * version.  A write compares and sets in one script, so that no answer of
 * the filing API replaces an operator's verdict, a newer answer or a
 * purge.  It goes on the write connection, so that it never waits ahead
 * of a read; verdicts that cannot be written wait in a bounded backlog,
 * one a domain, and go out once the write connection answers again.
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


static ngx_int_t ngx_icp_gate_redis_read_hash(ngx_icp_gate_redis_conn_t *c,
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
    return ngx_icp_gate_redis_read_hash(&ngx_icp_gate_redis_rd, domain,
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
    return ngx_icp_gate_redis_read_hash(&ngx_icp_gate_redis_wr, domain,
                                        handler, data);
}


/*
 * The hash with the time Redis read it, which orders this read against
 * every other read and write of the domain: two reads of one hash on two
 * connections may answer in any order, and an operator's HSET carries no
 * version of its own
 */

static ngx_int_t
ngx_icp_gate_redis_read_hash(ngx_icp_gate_redis_conn_t *c, ngx_str_t *domain,
    ngx_icp_gate_redis_pt handler, void *data)
{
    ngx_icp_gate_redis_argv_t  a;

    static const char  script[] =
        "local t = redis.call('TIME') "
        "return {t[1], t[2], redis.call('HGETALL', KEYS[1])}";

    ngx_icp_gate_redis_script(&a, script, sizeof(script) - 1, domain);

    return ngx_icp_gate_redis_read(c, "read", ngx_icp_gate_redis_get_reply,
                                   handler, data, a.argc, a.argv, a.argvlen);
}


/*
 * EVAL of a script on a domain's keys: KEYS[1] its hash, KEYS[2] its
 * fleet lock, KEYS[3] its purge mark; ARGV[1] this worker's name; the
 * caller adds the rest with ngx_icp_gate_redis_arg()
 */

void
ngx_icp_gate_redis_script(ngx_icp_gate_redis_argv_t *a, const char *script,
    size_t len, ngx_str_t *domain)
{
    ngx_icp_gate_hiredis_arg(a->argv, a->argvlen, 0, "EVAL");
    a->argv[1] = script;
    a->argvlen[1] = len;
    ngx_icp_gate_hiredis_arg(a->argv, a->argvlen, 2, "3");
    a->argv[3] = (char *) a->key;
    a->argvlen[3] = ngx_icp_gate_redis_key(a->key, "domain:", domain);
    a->argv[4] = (char *) a->lock;
    a->argvlen[4] = ngx_icp_gate_redis_key(a->lock, "lock:", domain);
    a->argv[5] = (char *) a->purged;
    a->argvlen[5] = ngx_icp_gate_redis_key(a->purged, "purged:", domain);
    a->argv[6] = (char *) a->owner;
    a->argvlen[6] = ngx_icp_gate_redis_owner(a->owner);

    a->argc = 7;
    a->next = a->numbers;
}


/* one more argument: data, or, data NULL, the number n */

void
ngx_icp_gate_redis_arg(ngx_icp_gate_redis_argv_t *a, const char *data,
    size_t len, uint64_t n)
{
    u_char  *p;

    if (a->argc == NGX_ICP_GATE_REDIS_ARGS) {
        return;
    }

    if (data == NULL) {
        p = a->next;
        a->next = ngx_slprintf(p, a->numbers + sizeof(a->numbers), "%uL", n);
        data = (char *) p;
        len = a->next - p;
    }

    a->argv[a->argc] = data;
    a->argvlen[a->argc++] = len;
}


/*
 * NGX_OK: the verdict is on its way to Redis, and the conf's "unwritten"
 * handler hears of it if it does not get there (or "refused" if Redis has
 * a newer one); NGX_DECLINED: Redis is known to be down, the verdict waits
 * in the backlog and the caller keeps it for its whole ttl
 */

ngx_int_t
ngx_icp_gate_redis_put(ngx_str_t *domain, ngx_icp_gate_verdict_t *v,
    time_t ttl)
{
    ngx_int_t                    rc;
    ngx_icp_gate_redis_conn_t   *c;
    ngx_icp_gate_redis_write_t  *w;

    c = &ngx_icp_gate_redis_wr;

    ngx_icp_gate_redis_wake(c);

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

    /*
     * out now, not at the next turn of the event loop: before the requests
     * that waited for the verdict are answered, so that whoever reads Redis
     * after an answer finds what it was
     */

    if (rc == NGX_OK) {
        ngx_icp_gate_redis_push(c);
    }

    return rc;
}


/*
 * Compares and sets, in one step: the filing API's answer replaces no
 * verdict of an operator or an import (any source but "api", none
 * included), no answer to a later question (rev), and nothing a purge
 * took away after its question was asked (the purge mark); then the hash
 * and its expiry at once.  The fleet's lock goes if it is still this
 * worker's, whatever the outcome: the nodes that wait look again and find
 * the verdict Redis has.  ARGV[2] is the question's time (0: unknown,
 * older than any), ARGV[3] the time to live, then the hash's fields.
 */

static ngx_int_t
ngx_icp_gate_redis_write(ngx_icp_gate_redis_conn_t *c,
    ngx_icp_gate_redis_write_t *w, time_t ttl)
{
    ngx_str_t                 *name, domain;
    ngx_icp_gate_verdict_t    *v;
    ngx_icp_gate_redis_cmd_t  *cmd;
    ngx_icp_gate_redis_argv_t  a;

    static const char  script[] =
        "if redis.call('GET', KEYS[2]) == ARGV[1] then "
            "redis.call('DEL', KEYS[2]) "
        "end "
        "local q = tonumber(ARGV[2]) "
        "local s = redis.call('HGET', KEYS[1], 'status') "
        "if s == 'filed' or s == 'pending' or s == 'revoked' "
            "or s == 'unfiled' then "
            "if redis.call('HGET', KEYS[1], 'source') ~= 'api' then "
                "return 0 "
            "end "
            "local r = tonumber(redis.call('HGET', KEYS[1], 'rev')) or 0 "
            "if r >= q then return 0 end "
        "else "
            "local p = tonumber(redis.call('GET', KEYS[3])) "
            "if p and p >= q then return 0 end "
        "end "
        "redis.call('DEL', KEYS[1]) "
        "redis.call('HSET', KEYS[1], unpack(ARGV, 4)) "
        "redis.call('EXPIRE', KEYS[1], ARGV[3]) "
        "return 1";

    cmd = ngx_icp_gate_redis_cmd(NGX_ICP_GATE_REDIS_WRITE);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->write = w;
    cmd->what = "write";

    v = &w->verdict;
    domain.data = w->domain;
    domain.len = w->len;

    ngx_icp_gate_redis_script(&a, script, sizeof(script) - 1, &domain);

    ngx_icp_gate_redis_arg(&a, NULL, 0, v->version);
    ngx_icp_gate_redis_arg(&a, NULL, 0, (uint64_t) ttl);

    name = &ngx_icp_gate_status_names[v->status];

    ngx_icp_gate_redis_arg(&a, "status", sizeof("status") - 1, 0);
    ngx_icp_gate_redis_arg(&a, (char *) name->data, name->len, 0);
    ngx_icp_gate_redis_arg(&a, "source", sizeof("source") - 1, 0);
    ngx_icp_gate_redis_arg(&a, "api", sizeof("api") - 1, 0);
    ngx_icp_gate_redis_arg(&a, "rev", sizeof("rev") - 1, 0);
    ngx_icp_gate_redis_arg(&a, NULL, 0, v->version);
    ngx_icp_gate_redis_arg(&a, "checked_at", sizeof("checked_at") - 1, 0);
    ngx_icp_gate_redis_arg(&a, NULL, 0, (uint64_t) v->checked_at);

    if (v->icp_len) {
        ngx_icp_gate_redis_arg(&a, "icp", sizeof("icp") - 1, 0);
        ngx_icp_gate_redis_arg(&a, (char *) v->icp, v->icp_len, 0);
    }

    if (v->region != NGX_ICP_GATE_REGION_NONE) {
        name = &ngx_icp_gate_region_names[v->region];

        ngx_icp_gate_redis_arg(&a, "region", sizeof("region") - 1, 0);
        ngx_icp_gate_redis_arg(&a, (char *) name->data, name->len, 0);
    }

    if (ngx_icp_gate_redis_send(c, ngx_icp_gate_redis_put_reply, cmd,
                                a.argc, a.argv, a.argvlen)
        != NGX_OK)
    {
        ngx_free(cmd);
        return NGX_ERROR;
    }

    return NGX_OK;
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


/*
 * Into the backlog, one verdict a domain: of two, the answer to the later
 * question stays (Redis would refuse the other anyway).  A full backlog
 * lets its oldest verdict go.
 */

static void
ngx_icp_gate_redis_keep(ngx_icp_gate_redis_write_t *w)
{
    ngx_queue_t                 *q;
    ngx_icp_gate_redis_write_t  *old;

    for (q = ngx_queue_head(&ngx_icp_gate_redis_backlog);
         q != ngx_queue_sentinel(&ngx_icp_gate_redis_backlog);
         q = ngx_queue_next(q))
    {
        old = ngx_queue_data(q, ngx_icp_gate_redis_write_t, queue);

        if (old->len != w->len
            || ngx_memcmp(old->domain, w->domain, w->len) != 0)
        {
            continue;
        }

        if (old->verdict.version > w->verdict.version) {
            ngx_free(w);
            return;
        }

        ngx_queue_remove(q);
        ngx_icp_gate_redis_backlog_n--;
        ngx_free(old);
        break;
    }

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


/*
 * A verdict's hash, as HGETALL lists it: NGX_DECLINED when it has no
 * valid status (absent, or a hash that is no verdict)
 */

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

    /* an operator's hash need not say so, nor can it be a file's */

    if (v->source == NGX_ICP_GATE_SOURCE_NONE
        || v->source == NGX_ICP_GATE_SOURCE_FILE)
    {
        v->source = NGX_ICP_GATE_SOURCE_OPERATOR;
    }

    return NGX_OK;
}


/*
 * A script's answer {seconds, microseconds, what}, Redis's TIME first:
 * the version of what it read, 0 when the answer is not of that shape
 * (*what is then NULL)
 */

uint64_t
ngx_icp_gate_redis_parse_timed(redisReply *reply, redisReply **what)
{
    ngx_int_t    sec, usec;
    redisReply  *s, *us;

    *what = NULL;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        return 0;
    }

    s = reply->element[0];
    us = reply->element[1];

    if (s->type != REDIS_REPLY_STRING || us->type != REDIS_REPLY_STRING) {
        return 0;
    }

    sec = ngx_atoi((u_char *) s->str, s->len);
    usec = ngx_atoi((u_char *) us->str, us->len);

    if (sec == NGX_ERROR || usec == NGX_ERROR || usec >= 1000000) {
        return 0;
    }

    *what = reply->element[2];

    return (uint64_t) sec * 1000000 + (uint64_t) usec;
}


static void
ngx_icp_gate_redis_get_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    void                    *data;
    uint64_t                 version;
    ngx_int_t                rc;
    redisReply              *reply = r, *hash;
    ngx_icp_gate_redis_pt    handler;
    ngx_icp_gate_verdict_t   v;

    handler = ngx_icp_gate_redis_read_done(ac, reply, privdata, &data);

    /* its deadline passed: the lookup went on without it */

    if (handler == NULL) {
        ngx_log_debug0(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: redis answered the read too late");
        return;
    }

    if (reply == NULL) {
        handler(data, NGX_ERROR, NULL);
        return;
    }

    version = ngx_icp_gate_redis_parse_timed(reply, &hash);

    if (version == 0 || hash->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V answered a read with %s",
                      &ngx_icp_gate_redis_conf->name,
                      reply->type == REDIS_REPLY_ERROR ? reply->str
                                                       : "an unexpected type");
        handler(data, NGX_ERROR, NULL);
        return;
    }

    rc = ngx_icp_gate_redis_parse_hash(hash, &v);
    v.version = version;

    ngx_log_debug3(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: redis answered the read: %s (%uz fields) "
                   "at %uL", rc == NGX_OK ? "a verdict" : "no verdict",
                   hash->elements / 2, version);

    handler(data, rc, &v);
}


static void
ngx_icp_gate_redis_put_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_icp_gate_redis_cmd_t  *cmd = privdata;

    ngx_str_t                    domain;
    redisReply                  *reply = r;
    ngx_icp_gate_redis_conn_t   *c;
    ngx_icp_gate_redis_write_t  *w;

    c = ac->data;
    w = cmd->write;

    ngx_icp_gate_redis_answered(c, reply);
    ngx_icp_gate_redis_cmd_done(c, cmd, reply);

    if (reply && reply->type == REDIS_REPLY_INTEGER) {

        /* Redis has a newer verdict than this one: the owner's copy goes */

        if (reply->integer == 0 && !ngx_icp_gate_redis_exiting
            && ngx_icp_gate_redis_conf->refused)
        {
            domain.data = w->domain;
            domain.len = w->len;

            ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                           "icp_gate: redis has a newer verdict than this "
                           "worker's of \"%V\"", &domain);

            ngx_icp_gate_redis_conf->refused(&domain, w->verdict.version);
        }

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

    /* refused: Redis said no, asking again would not help */

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V refused a write: %s",
                      &ngx_icp_gate_redis_conf->name, reply->str);

        /* a master turned replica: the sentinels know where the new one is */

        if (ngx_strstr(reply->str, "READONLY") != NULL) {
            ngx_icp_gate_redis_master_lost();
        }
    }

    ngx_icp_gate_redis_tell(w);
    ngx_free(w);
}
