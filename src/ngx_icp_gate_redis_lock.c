
/*
 * Copyright (C) icp_gate authors
 *
 * The fleet's lock on a domain, so that one node of the fleet asks the
 * filing API about it: small scripts on the domain's two keys, its hash
 * and its lock, sent on the read connection, where a lookup waits for
 * their answers.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_icp_gate_redis_store.h"
#include "ngx_icp_gate_hiredis.h"
#include "ngx_icp_gate_throttle.h"


static ngx_int_t ngx_icp_gate_redis_eval(const char *what,
    const char *script, size_t len, ngx_str_t *domain, ngx_msec_t ms,
    ngx_icp_gate_redis_pt handler, void *data);
static void ngx_icp_gate_redis_lock_reply(redisAsyncContext *ac, void *r,
    void *privdata);


/*
 * The fleet's look before asking the filing API about a domain, in one
 * step, so that no node takes the lock of a domain whose verdict is there
 * (and no verdict written between a look and a lock is missed).  The
 * handler hears NGX_OK with the verdict, NGX_DONE when this worker took
 * the lock, NGX_DECLINED when another node (or worker) holds it, NGX_ABORT
 * when the filing API failed for a node of the fleet less than its
 * icp_gate_error_ttl ago (ngx_icp_gate_redis_failed), and NGX_ERROR when
 * Redis did not answer in time: the lock may then be this worker's.  A hash without a valid status counts as absent, as it does
 * for a lookup.  With every answer but NGX_ERROR comes the time of the
 * look, the version of an answer the filing API gives after it.
 */

ngx_int_t
ngx_icp_gate_redis_look_or_lock(ngx_str_t *domain, ngx_msec_t ttl,
    ngx_icp_gate_redis_pt handler, void *data)
{
    /* a lock already this worker's: taken by a look answered too late */

    static const char  script[] =
        "local t = redis.call('TIME') "
        "local s = redis.call('HGET', KEYS[1], 'status') "
        "if s == 'filed' or s == 'pending' or s == 'revoked' "
            "or s == 'unfiled' then "
            "return {t[1], t[2], redis.call('HGETALL', KEYS[1])} "
        "end "
        "local l = redis.call('GET', KEYS[2]) "
        "if l == 'failed' then "
            "return {t[1], t[2], -1} "
        "end "
        "if l == ARGV[1] "
            "or redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then "
            "return {t[1], t[2], 1} "
        "end "
        "return {t[1], t[2], 0}";

    return ngx_icp_gate_redis_eval("look", script, sizeof(script) - 1,
                                   domain, ttl, handler, data);
}


/*
 * Given up by a worker whose API request failed, so that another node asks
 * at once; only while it is still this worker's: one that expired may be
 * another node's by now.  A verdict's write takes the lock away with it
 * (ngx_icp_gate_redis_write).
 */

void
ngx_icp_gate_redis_unlock(ngx_str_t *domain)
{
    static const char  script[] =
        "if redis.call('GET', KEYS[2]) == ARGV[1] then "
            "return redis.call('DEL', KEYS[2]) "
        "end "
        "return 0";

    (void) ngx_icp_gate_redis_eval("unlock", script, sizeof(script) - 1,
                                   domain, 0, NULL, NULL);
}


/*
 * The filing API failed for this worker: the lock's place says so for
 * "ttl" ms (icp_gate_error_ttl), so that the fleet's next looks fail at
 * once rather than take the lock, each node asking in turn.  Not over
 * another node's lock: it may be asking the API now.  A verdict written
 * to the hash still wins the next look, and a purge deletes the mark.
 */

void
ngx_icp_gate_redis_failed(ngx_str_t *domain, ngx_msec_t ttl)
{
    static const char  script[] =
        "local l = redis.call('GET', KEYS[2]) "
        "if l == false or l == ARGV[1] or l == 'failed' then "
            "return redis.call('SET', KEYS[2], 'failed', 'PX', ARGV[2]) "
        "end "
        "return 0";

    (void) ngx_icp_gate_redis_eval("failed", script, sizeof(script) - 1,
                                   domain, ttl, NULL, NULL);
}


/* the lock lives "ttl" ms more, while it is still this worker's */

void
ngx_icp_gate_redis_renew(ngx_str_t *domain, ngx_msec_t ttl)
{
    static const char  script[] =
        "if redis.call('GET', KEYS[2]) == ARGV[1] then "
            "return redis.call('PEXPIRE', KEYS[2], ARGV[2]) "
        "end "
        "return 0";

    (void) ngx_icp_gate_redis_eval("renew", script, sizeof(script) - 1,
                                   domain, ttl, NULL, NULL);
}


/*
 * An operator's purge: the hash goes, and the fleet's lock with it, so
 * that the next lookup of any node asks the filing API; and the purge's
 * time stays for "mark" ms (the longest a verdict lives), so that no
 * answer to a question asked before it, from any node, writes the hash
 * again.  The handler hears NGX_DONE when there was a hash, NGX_DECLINED
 * when there was none.
 */

ngx_int_t
ngx_icp_gate_redis_delete(ngx_str_t *domain, ngx_msec_t mark,
    ngx_icp_gate_redis_pt handler, void *data)
{
    static const char  script[] =
        "local t = redis.call('TIME') "
        "local n = redis.call('DEL', KEYS[1]) "
        "redis.call('DEL', KEYS[2]) "
        "redis.call('SET', KEYS[3], t[1] .. string.format('%06d', t[2]), "
                   "'PX', ARGV[2]) "
        "return n";

    return ngx_icp_gate_redis_eval("delete", script, sizeof(script) - 1,
                                   domain, mark, handler, data);
}


/* ARGV[2]: ms, a time the script needs, when not 0 */

static ngx_int_t
ngx_icp_gate_redis_eval(const char *what, const char *script, size_t len,
    ngx_str_t *domain, ngx_msec_t ms, ngx_icp_gate_redis_pt handler,
    void *data)
{
    ngx_icp_gate_redis_argv_t  a;

    ngx_icp_gate_redis_script(&a, script, len, domain);

    if (ms) {
        ngx_icp_gate_redis_arg(&a, NULL, 0, (uint64_t) ms);
    }

    return ngx_icp_gate_redis_read(&ngx_icp_gate_redis_rd, what,
                                   ngx_icp_gate_redis_lock_reply,
                                   handler, data, a.argc, a.argv, a.argvlen);
}


/* a look's {time, what}, or a count of keys deleted */

static void
ngx_icp_gate_redis_lock_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    void                    *data;
    uint64_t                 version;
    ngx_int_t                rc;
    ngx_uint_t               n;
    redisReply              *reply = r, *what;
    ngx_icp_gate_redis_pt    handler;
    ngx_icp_gate_verdict_t   v;

    static ngx_icp_gate_throttle_t  refused;

    handler = ngx_icp_gate_redis_read_done(ac, reply, privdata, &data);

    /* once a cold lookup: a Redis without scripts would flood the log */

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        n = ngx_icp_gate_throttle(&refused);

        if (n) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "icp_gate: redis %V refused %ui fleet lock "
                          "scripts since the last warning: %s",
                          &ngx_icp_gate_redis_conf->name, n, reply->str);
        }
    }

    /* an unlock, or a look whose deadline passed */

    if (handler == NULL) {
        return;
    }

    ngx_memzero(&v, sizeof(ngx_icp_gate_verdict_t));

    what = reply;
    version = 0;
    rc = NGX_ERROR;

    if (reply && reply->type == REDIS_REPLY_ARRAY) {
        version = ngx_icp_gate_redis_parse_timed(reply, &what);

        if (version == 0) {
            what = NULL;
        }
    }

    if (what == NULL || what->type == REDIS_REPLY_ERROR) {
        rc = NGX_ERROR;

    } else if (what->type == REDIS_REPLY_ARRAY) {
        rc = ngx_icp_gate_redis_parse_hash(what, &v);

        /* the script returns only a hash with a valid status */

        if (rc != NGX_OK) {
            rc = NGX_ERROR;
        }

    } else if (what->type == REDIS_REPLY_INTEGER) {
        rc = (what->integer < 0) ? NGX_ABORT
             : what->integer ? NGX_DONE : NGX_DECLINED;
    }

    v.version = version;

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: redis answered the look or lock: %s",
                   rc == NGX_OK ? "the verdict"
                   : rc == NGX_DONE ? "the lock taken"
                   : rc == NGX_DECLINED ? "held elsewhere"
                   : rc == NGX_ABORT ? "the API failing" : "an error");

    handler(data, rc, (rc == NGX_ERROR) ? NULL : &v);
}
