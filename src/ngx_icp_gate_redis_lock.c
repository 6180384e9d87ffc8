
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


static ngx_int_t ngx_icp_gate_redis_eval(const char *script, size_t len,
    ngx_str_t *domain, ngx_msec_t ttl, ngx_icp_gate_redis_pt handler,
    void *data);
static void ngx_icp_gate_redis_lock_reply(redisAsyncContext *ac, void *r,
    void *privdata);


/*
 * The fleet's look before asking the filing API about a domain, in one
 * step, so that no node takes the lock of a domain whose verdict is there
 * (and no verdict written between a look and a lock is missed).  The
 * handler hears NGX_OK with the verdict, NGX_DONE when this worker took
 * the lock, NGX_DECLINED when another node (or worker) holds it, and
 * NGX_ERROR when Redis did not answer in time: the lock may then be this
 * worker's.  A hash without a valid status counts as absent, as it does
 * for a lookup.
 */

ngx_int_t
ngx_icp_gate_redis_look_or_lock(ngx_str_t *domain, ngx_msec_t ttl,
    ngx_icp_gate_redis_pt handler, void *data)
{
    /* a lock already this worker's: taken by a look answered too late */

    static const char  script[] =
        "local s = redis.call('HGET', KEYS[1], 'status') "
        "if s == 'filed' or s == 'pending' or s == 'revoked' "
            "or s == 'unfiled' then "
            "return redis.call('HGETALL', KEYS[1]) "
        "end "
        "if redis.call('GET', KEYS[2]) == ARGV[1] "
            "or redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then "
            "return 1 "
        "end "
        "return 0";

    return ngx_icp_gate_redis_eval(script, sizeof(script) - 1, domain, ttl,
                                   handler, data);
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

    (void) ngx_icp_gate_redis_eval(script, sizeof(script) - 1, domain, 0,
                                   NULL, NULL);
}


/*
 * An operator's purge: the hash goes, and the fleet's lock with it, so
 * that the next lookup of any node asks the filing API.  The handler hears
 * NGX_DONE when there was a hash, NGX_DECLINED when there was none.
 */

ngx_int_t
ngx_icp_gate_redis_delete(ngx_str_t *domain, ngx_icp_gate_redis_pt handler,
    void *data)
{
    static const char  script[] =
        "local n = redis.call('DEL', KEYS[1]) "
        "redis.call('DEL', KEYS[2]) "
        "return n";

    return ngx_icp_gate_redis_eval(script, sizeof(script) - 1, domain, 0,
                                   handler, data);
}


/*
 * A script on a domain's two keys: KEYS[1] its hash, KEYS[2] its lock;
 * ARGV[1] this worker's name, ARGV[2] the lock's time when ttl is not 0
 */

static ngx_int_t
ngx_icp_gate_redis_eval(const char *script, size_t len, ngx_str_t *domain,
    ngx_msec_t ttl, ngx_icp_gate_redis_pt handler, void *data)
{
    u_char      *p;
    size_t       argvlen[7];
    ngx_uint_t   argc;
    const char  *argv[7];
    u_char       key[NGX_ICP_GATE_REDIS_KEY_LEN];
    u_char       lock[NGX_ICP_GATE_REDIS_KEY_LEN];
    u_char       owner[NGX_ICP_GATE_REDIS_OWNER_LEN];
    u_char       px[NGX_INT_T_LEN];

    ngx_icp_gate_hiredis_arg(argv, argvlen, 0, "EVAL");
    argv[1] = script;
    argvlen[1] = len;
    argv[2] = "2";
    argvlen[2] = 1;
    argv[3] = (char *) key;
    argvlen[3] = ngx_icp_gate_redis_key(key, "domain:", domain);
    argv[4] = (char *) lock;
    argvlen[4] = ngx_icp_gate_redis_key(lock, "lock:", domain);
    argv[5] = (char *) owner;
    argvlen[5] = ngx_icp_gate_redis_owner(owner);

    argc = 6;

    if (ttl) {
        p = ngx_sprintf(px, "%M", ttl);
        argv[argc] = (char *) px;
        argvlen[argc++] = p - px;
    }

    return ngx_icp_gate_redis_read(&ngx_icp_gate_redis_rd, "EVAL",
                                   ngx_icp_gate_redis_lock_reply,
                                   handler, data, argc, argv, argvlen);
}


static void
ngx_icp_gate_redis_lock_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    void                    *data;
    ngx_int_t                rc;
    ngx_uint_t               n;
    redisReply              *reply = r;
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

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        rc = NGX_ERROR;

    } else if (reply->type == REDIS_REPLY_ARRAY) {
        rc = ngx_icp_gate_redis_parse_hash(reply, &v);

        /* the script returns only a hash with a valid status */

        if (rc != NGX_OK) {
            rc = NGX_ERROR;
        }

    } else if (reply->type == REDIS_REPLY_INTEGER) {
        rc = reply->integer ? NGX_DONE : NGX_DECLINED;

    } else {
        rc = NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: redis answered the look or lock: %s",
                   rc == NGX_OK ? "the verdict"
                   : rc == NGX_DONE ? "the lock taken"
                   : rc == NGX_DECLINED ? "held elsewhere" : "an error");

    handler(data, rc, (rc == NGX_OK) ? &v : NULL);
}
