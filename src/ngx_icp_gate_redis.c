
/*
 * Copyright (C) icp_gate authors
 *
 * Two hiredis async connections per worker, driven by the nginx event loop:
 * one for the lookups' reads, one for the verdicts' writes, so that a
 * write never waits ahead of a read in a queue.  hiredis 0.14 has no
 * timeouts and owns its sockets: the deadlines here are ours, and the
 * nginx connection wrapped around a socket is only freed, never closed.
 *
 * Every command (or MULTI ... EXEC group) has a record in its connection's
 * queue, oldest first, as Redis answers them.  A read not answered within
 * the timeout fails at its deadline; its record stays, marked, until the
 * late reply comes, which is then dropped.  A connection whose oldest
 * command waited twice the timeout is closed and opened again.  Verdicts
 * that cannot be written wait in a bounded backlog, and go out once the
 * write connection answers.
 *
 * One worker of a node also listens for invalidations: Redis tells it of
 * every change to a verdict's hash (CLIENT TRACKING ... BCAST, redirected
 * to the same connection once it has subscribed to __redis__:invalidate,
 * which works with RESP2); subscribing each second once more to a channel
 * of its own, which Redis confirms, shows the channel is still there.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_icp_gate_redis.h"
#include "ngx_icp_gate_hiredis.h"
#include "ngx_icp_gate_throttle.h"
#include "ngx_icp_gate_socket.h"
#include "ngx_icp_gate_resolve.h"
#include "ngx_icp_gate_metrics.h"


#define NGX_ICP_GATE_REDIS_BACKOFF_MIN   100
#define NGX_ICP_GATE_REDIS_BACKOFF_MAX   5000
#define NGX_ICP_GATE_REDIS_PREFIX_MAX    128
#define NGX_ICP_GATE_REDIS_KEY_LEN                                          \
    (NGX_ICP_GATE_REDIS_PREFIX_MAX + sizeof("domain:")                        \
     + NGX_ICP_GATE_DOMAIN_LEN)

/* the value of a node's lock: its host name and the worker's pid */
#define NGX_ICP_GATE_REDIS_OWNER_LEN  (NGX_MAXHOSTNAMELEN + NGX_INT64_LEN + 12)

/*
 * Reads in flight on the read connection, late ones included: a healthy
 * Redis answers this many HGETALLs in a few milliseconds, so only a slow
 * one fills it, and then a read behind them would miss its deadline anyway
 */
#define NGX_ICP_GATE_REDIS_READS_MAX     256

/* verdicts being written at once; the rest wait in the backlog */
#define NGX_ICP_GATE_REDIS_WRITES_MAX    16

/* verdicts waiting for Redis, per worker; the oldest go first when full */
#define NGX_ICP_GATE_REDIS_BACKLOG_MAX   1024

/*
 * The invalidation channel: a beat each second; lost when a beat is not
 * heard back this much past twice the timeout; asked again
 * this long after a Redis that does not track keys said so
 */
#define NGX_ICP_GATE_REDIS_BEAT_EVERY    1000
#define NGX_ICP_GATE_REDIS_BEAT_GRACE    2000
#define NGX_ICP_GATE_REDIS_UNTRACKABLE   60000

#define NGX_ICP_GATE_REDIS_CHANNEL       "__redis__:invalidate"

/*
 * one line about timeouts at most this often (ms), the first of an episode
 * after a moment, so that it counts the commands that were late together
 */
#define NGX_ICP_GATE_REDIS_LOG_EVERY     5000
#define NGX_ICP_GATE_REDIS_LOG_FIRST     1000

#define NGX_ICP_GATE_REDIS_SETUP         0
#define NGX_ICP_GATE_REDIS_READ          1
#define NGX_ICP_GATE_REDIS_WRITE         2

#define NGX_ICP_GATE_REDIS_BEAT_LEN                                         \
    (NGX_ICP_GATE_REDIS_PREFIX_MAX + sizeof("beat:")                          \
     + NGX_ICP_GATE_REDIS_OWNER_LEN)


/* no connection, or one after a failure that does not answer yet */
#define ngx_icp_gate_redis_down(c)                                            \
    ((c)->ctx == NULL || (!(c)->ready && (c)->backoff))


typedef struct {
    ngx_queue_t                 queue;      /* in the backlog */
    time_t                      expires;    /* the Redis entry's, Unix time */
    ngx_icp_gate_verdict_t      verdict;
    size_t                      len;
    unsigned                    told:1;     /* the owner knows: not in Redis */
    u_char                      domain[NGX_ICP_GATE_DOMAIN_LEN];
} ngx_icp_gate_redis_write_t;


typedef struct {
    ngx_queue_t                 queue;      /* its connection's, oldest first */
    ngx_msec_t                  sent;
    uint64_t                    sent_us;    /* for the histogram */
    ngx_uint_t                  kind;
    ngx_icp_gate_redis_pt       handler;    /* a read's; NULL once it is late */
    void                       *data;
    ngx_icp_gate_redis_write_t *write;      /* a write's */
    unsigned                    late:1;     /* past its deadline, counted */
    unsigned                    role:1;     /* a ROLE: must say master */
} ngx_icp_gate_redis_cmd_t;


typedef struct {
    redisAsyncContext          *ctx;
    ngx_icp_gate_resolve_t     *resolving;  /* its host name, before */
    char                       *role;       /* for logs */
    ngx_queue_t                 cmds;
    ngx_event_t                 timer;      /* the next deadline */
    ngx_event_t                 retry;
    ngx_msec_t                  backoff;
    ngx_msec_t                  answered;   /* when Redis last answered */
    ngx_uint_t                  pending;    /* commands sent, not answered */
    ngx_uint_t                  inflight;   /* reads or writes among them */
    ngx_uint_t                  setups;     /* AUTH, SELECT, PING unanswered */

    /* commands a lost connection took with it: hiredis fails them first */
    ngx_uint_t                  lost;
    in_port_t                   port;       /* of the host resolved */
    unsigned                    ready:1;    /* its setup was answered */
    unsigned                    waiting:1;  /* for the sentinels' answer */
} ngx_icp_gate_redis_conn_t;


/* a read given up at its deadline, its handler still to run */
typedef struct {
    ngx_icp_gate_redis_pt       handler;
    void                       *data;
} ngx_icp_gate_redis_late_t;


typedef struct {
    ngx_uint_t                  timed_out;
    ngx_uint_t                  refused;    /* reads over the cap */
    ngx_uint_t                  inflight;   /* when the last was refused */
    ngx_uint_t                  reopened;   /* connections closed for late */
    ngx_uint_t                  forgotten;  /* verdicts the backlog let go */
} ngx_icp_gate_redis_stats_t;


static ngx_int_t ngx_icp_gate_redis_param(ngx_str_t *arg, const char *name,
    ngx_str_t *value);
static void ngx_icp_gate_redis_conn_init(ngx_icp_gate_redis_conn_t *c,
    char *role, ngx_log_t *log);
static void ngx_icp_gate_redis_connect(ngx_icp_gate_redis_conn_t *c);
static void ngx_icp_gate_redis_resolved(void *data, ngx_int_t rc,
    ngx_str_t *addr);
static void ngx_icp_gate_redis_connect_to(ngx_icp_gate_redis_conn_t *c,
    char *host, in_port_t port);
static void ngx_icp_gate_redis_master_is(ngx_str_t *host, in_port_t port);
static void ngx_icp_gate_redis_master_lost(void);
static ngx_icp_gate_redis_cmd_t *ngx_icp_gate_redis_send_setup(
    ngx_icp_gate_redis_conn_t *c, redisCallbackFn *fn, ngx_uint_t argc,
    const char **argv, size_t *argvlen);
static ngx_int_t ngx_icp_gate_redis_setup(ngx_icp_gate_redis_conn_t *c,
    char *command, ngx_str_t *arg);
static void ngx_icp_gate_redis_drop(ngx_icp_gate_redis_conn_t *c);
static void ngx_icp_gate_redis_forget(ngx_icp_gate_redis_conn_t *c);
static void ngx_icp_gate_redis_gone(ngx_icp_gate_redis_conn_t *c);
static void ngx_icp_gate_redis_schedule(ngx_icp_gate_redis_conn_t *c);
static ngx_int_t ngx_icp_gate_redis_send(ngx_icp_gate_redis_conn_t *c,
    redisCallbackFn *fn, ngx_icp_gate_redis_cmd_t *cmd, ngx_uint_t argc,
    const char **argv, size_t *argvlen);
static ngx_icp_gate_redis_cmd_t *ngx_icp_gate_redis_cmd(ngx_uint_t kind);
static void ngx_icp_gate_redis_cmd_done(ngx_icp_gate_redis_conn_t *c,
    ngx_icp_gate_redis_cmd_t *cmd, redisReply *reply);
static void ngx_icp_gate_redis_answered(ngx_icp_gate_redis_conn_t *c,
    redisReply *reply);
static ngx_int_t ngx_icp_gate_redis_write(ngx_icp_gate_redis_conn_t *c,
    ngx_icp_gate_redis_write_t *w, time_t ttl);
static void ngx_icp_gate_redis_flush(void);
static void ngx_icp_gate_redis_keep(ngx_icp_gate_redis_write_t *w);
static void ngx_icp_gate_redis_tell(ngx_icp_gate_redis_write_t *w);
static void ngx_icp_gate_redis_note(void);
static ngx_int_t ngx_icp_gate_redis_hgetall(ngx_icp_gate_redis_conn_t *c,
    ngx_str_t *domain, ngx_icp_gate_redis_pt handler, void *data);
static ngx_int_t ngx_icp_gate_redis_read(ngx_icp_gate_redis_conn_t *c,
    const char *what,
    redisCallbackFn *reply, ngx_icp_gate_redis_pt handler, void *data,
    ngx_uint_t argc, const char **argv, size_t *argvlen);
static size_t ngx_icp_gate_redis_key(u_char *buf, const char *kind,
    ngx_str_t *domain);
static size_t ngx_icp_gate_redis_owner(u_char *buf);
static ngx_int_t ngx_icp_gate_redis_eval(const char *script, size_t len,
    ngx_str_t *domain, ngx_msec_t ttl, ngx_icp_gate_redis_pt handler,
    void *data);
static ngx_int_t ngx_icp_gate_redis_parse_hash(redisReply *reply,
    ngx_icp_gate_verdict_t *v);

static void ngx_icp_gate_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_icp_gate_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_icp_gate_redis_setup_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_icp_gate_redis_pt ngx_icp_gate_redis_read_done(
    redisAsyncContext *ac, redisReply *reply, ngx_icp_gate_redis_cmd_t *cmd,
    void **data);
static void ngx_icp_gate_redis_get_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_icp_gate_redis_part_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_icp_gate_redis_lock_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_icp_gate_redis_put_reply(redisAsyncContext *ac, void *r,
    void *privdata);

static void ngx_icp_gate_redis_track_start(ngx_icp_gate_redis_conn_t *c);
static ngx_icp_gate_redis_conn_t *ngx_icp_gate_redis_track_answered(
    redisAsyncContext *ac, redisReply *reply, ngx_icp_gate_redis_cmd_t *cmd);
static void ngx_icp_gate_redis_untrackable_now(char *why, char *detail);
static void ngx_icp_gate_redis_track_id_reply(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_icp_gate_redis_track_on_reply(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_icp_gate_redis_track_message(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_icp_gate_redis_track_keys(redisReply *keys);
static void ngx_icp_gate_redis_track_lost(void);
static void ngx_icp_gate_redis_beat(ngx_event_t *ev);
static ngx_int_t ngx_icp_gate_redis_subscribe(redisAsyncContext *ac,
    ngx_uint_t all);

static void ngx_icp_gate_redis_deadline(ngx_event_t *ev);
static void ngx_icp_gate_redis_retry(ngx_event_t *ev);
static void ngx_icp_gate_redis_report(ngx_event_t *ev);



static ngx_icp_gate_redis_conf_t   *ngx_icp_gate_redis_conf;
static ngx_icp_gate_redis_conn_t    ngx_icp_gate_redis_rd;
static ngx_icp_gate_redis_conn_t    ngx_icp_gate_redis_wr;
static ngx_uint_t                   ngx_icp_gate_redis_exiting;

/* the master the sentinels named, with Sentinel */
static u_char         ngx_icp_gate_redis_master[NGX_MAXHOSTNAMELEN + 1];
static ngx_str_t                    ngx_icp_gate_redis_master_host;
static in_port_t                    ngx_icp_gate_redis_master_port;

/* the invalidation channel, in the worker that listens */
static ngx_icp_gate_redis_conn_t    ngx_icp_gate_redis_tr;
static ngx_event_t                  ngx_icp_gate_redis_beat_ev;
static ngx_msec_t                   ngx_icp_gate_redis_tr_since;
static ngx_msec_t                   ngx_icp_gate_redis_beat_sent;
static ngx_uint_t                   ngx_icp_gate_redis_tracking;
static ngx_uint_t                   ngx_icp_gate_redis_subscribing;
static ngx_uint_t                   ngx_icp_gate_redis_untrackable;
static ngx_str_t                    ngx_icp_gate_redis_beat_channel;
static u_char        ngx_icp_gate_redis_beat_name[NGX_ICP_GATE_REDIS_BEAT_LEN];

static ngx_queue_t                  ngx_icp_gate_redis_backlog;
static ngx_uint_t                   ngx_icp_gate_redis_backlog_n;

static ngx_icp_gate_redis_stats_t   ngx_icp_gate_redis_stats;
static ngx_event_t                  ngx_icp_gate_redis_report_ev;
static ngx_msec_t                   ngx_icp_gate_redis_reported;
static ngx_uint_t                   ngx_icp_gate_redis_reported_once;


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
    rcf->tracking = 1;

    /* with Sentinel, no address: the sentinels tell it */

    if (ngx_strncmp(value[1].data, "sentinel=", 9) == 0
        || ngx_strncmp(value[1].data, "master=", 7) == 0)
    {
        i = 1;
        goto parameters;
    }

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

        /* a name must resolve when nginx starts, as proxy_pass's does */

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

        /*
         * a host name is kept, and resolved again, without blocking, for
         * each connection (ngx_icp_gate_redis_connect): the address of a
         * Redis that moves is followed
         */

        p = ngx_pnalloc(cf->pool, ngx_max(u.host.len, NGX_SOCKADDR_STRLEN)
                                  + 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_icp_gate_resolve_unbracket(&u.host);

        if (ngx_icp_gate_resolve_needed(&u.host)) {
            len = ngx_cpymem(p, u.host.data, u.host.len) - p;
            rcf->resolve = 1;

        } else {
            len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                                NGX_SOCKADDR_STRLEN, 0);
        }

        p[len] = '\0';

        rcf->host.data = p;
        rcf->host.len = len;
        rcf->port = u.port;
    }

    i = 2;

parameters:

    for ( /* void */ ; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "sentinel=", 9) == 0) {
            if (rcf->host.len || rcf->path.len) {
                goto invalid;
            }

            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            if (ngx_icp_gate_sentinel_parse(cf, &s, &rcf->sentinel)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        n = ngx_icp_gate_redis_param(&value[i], "master=",
                                     &rcf->sentinel.master);

        if (n == NGX_DECLINED) {
            n = ngx_icp_gate_redis_param(&value[i], "sentinel_password=",
                                         &rcf->sentinel.password);
        }

        if (n == NGX_DECLINED) {
            n = ngx_icp_gate_redis_param(&value[i], "password=",
                                         &rcf->password);
        }

        if (n == NGX_ERROR) {
            goto invalid;
        }

        if (n == NGX_OK) {
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rcf->db = n;
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

        if (ngx_strcmp(value[i].data, "tracking=on") == 0) {
            rcf->tracking = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "tracking=off") == 0) {
            rcf->tracking = 0;
            continue;
        }

        goto invalid;
    }

    if (rcf->sentinel.naddrs == 0 && rcf->sentinel.master.len == 0) {
        return NGX_CONF_OK;
    }

    if (rcf->sentinel.naddrs == 0 || rcf->sentinel.master.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"icp_gate_redis\" needs both sentinel= and "
                           "master= to find Redis through Sentinel");
        return NGX_CONF_ERROR;
    }

    rcf->name = rcf->sentinel.master;
    rcf->sentinel.timeout = rcf->timeout;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"icp_gate_redis\"",
                       &value[i]);

    return NGX_CONF_ERROR;
}


/*
 * "name=VALUE": NGX_OK with value, NGX_ERROR when VALUE is empty,
 * NGX_DECLINED when arg is another parameter
 */

static ngx_int_t
ngx_icp_gate_redis_param(ngx_str_t *arg, const char *name, ngx_str_t *value)
{
    size_t  len;

    len = ngx_strlen(name);

    if (arg->len < len || ngx_strncmp(arg->data, name, len) != 0) {
        return NGX_DECLINED;
    }

    if (arg->len == len) {
        return NGX_ERROR;
    }

    value->data = arg->data + len;
    value->len = arg->len - len;

    return NGX_OK;
}


ngx_int_t
ngx_icp_gate_redis_init(ngx_cycle_t *cycle, ngx_icp_gate_redis_conf_t *rcf)
{
    u_char  *p;

    if (rcf->prefix.len > NGX_ICP_GATE_REDIS_PREFIX_MAX) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "icp_gate: redis prefix is longer than %d bytes",
                      NGX_ICP_GATE_REDIS_PREFIX_MAX);
        return NGX_ERROR;
    }

    ngx_icp_gate_redis_conf = rcf;
    ngx_icp_gate_redis_exiting = 0;

    ngx_queue_init(&ngx_icp_gate_redis_backlog);
    ngx_icp_gate_redis_backlog_n = 0;

    ngx_memzero(&ngx_icp_gate_redis_stats, sizeof(ngx_icp_gate_redis_stats_t));
    ngx_icp_gate_redis_reported_once = 0;

    /* no timer may keep an exiting worker alive */

    ngx_icp_gate_timer_init(&ngx_icp_gate_redis_report_ev,
                            ngx_icp_gate_redis_report,
                            cycle->log);

    ngx_icp_gate_redis_master_host.len = 0;

    if (rcf->sentinel.naddrs) {
        ngx_icp_gate_sentinel_init(&rcf->sentinel,
                                   ngx_icp_gate_redis_master_is);
    }

    ngx_icp_gate_redis_conn_init(&ngx_icp_gate_redis_rd, "reads", cycle->log);
    ngx_icp_gate_redis_conn_init(&ngx_icp_gate_redis_wr, "writes",
                                 cycle->log);

    ngx_icp_gate_redis_connect(&ngx_icp_gate_redis_rd);
    ngx_icp_gate_redis_connect(&ngx_icp_gate_redis_wr);

    ngx_icp_gate_redis_tracking = 0;
    ngx_icp_gate_redis_untrackable = 0;
    ngx_icp_gate_redis_beat_sent = 0;

    if (rcf->tracking && rcf->tracked) {
        ngx_icp_gate_redis_conn_init(&ngx_icp_gate_redis_tr, "invalidations",
                                     cycle->log);

        /* the node's own channel, to hear its beats back */

        p = ngx_cpymem(ngx_icp_gate_redis_beat_name, rcf->prefix.data,
                       rcf->prefix.len);
        p = ngx_cpymem(p, "beat:", sizeof("beat:") - 1);
        p += ngx_icp_gate_redis_owner(p);

        ngx_icp_gate_redis_beat_channel.data = ngx_icp_gate_redis_beat_name;
        ngx_icp_gate_redis_beat_channel.len = p - ngx_icp_gate_redis_beat_name;

        ngx_icp_gate_timer_init(&ngx_icp_gate_redis_beat_ev,
                                ngx_icp_gate_redis_beat,
                                cycle->log);

        ngx_icp_gate_redis_connect(&ngx_icp_gate_redis_tr);
        ngx_add_timer(&ngx_icp_gate_redis_beat_ev,
                      NGX_ICP_GATE_REDIS_BEAT_EVERY);
    }

    return NGX_OK;
}


void
ngx_icp_gate_redis_done(void)
{
    ngx_queue_t                 *q;
    ngx_icp_gate_redis_write_t  *w;

    ngx_icp_gate_redis_exiting = 1;

    if (ngx_icp_gate_redis_rd.retry.timer_set) {
        ngx_del_timer(&ngx_icp_gate_redis_rd.retry);
    }

    if (ngx_icp_gate_redis_wr.retry.timer_set) {
        ngx_del_timer(&ngx_icp_gate_redis_wr.retry);
    }

    if (ngx_icp_gate_redis_report_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_redis_report_ev);
    }

    if (ngx_icp_gate_redis_beat_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_redis_beat_ev);
    }

    if (ngx_icp_gate_redis_conf->sentinel.naddrs) {
        ngx_icp_gate_sentinel_done();
    }

    ngx_icp_gate_redis_forget(&ngx_icp_gate_redis_rd);
    ngx_icp_gate_redis_forget(&ngx_icp_gate_redis_wr);
    ngx_icp_gate_redis_forget(&ngx_icp_gate_redis_tr);

    ngx_icp_gate_redis_drop(&ngx_icp_gate_redis_rd);
    ngx_icp_gate_redis_drop(&ngx_icp_gate_redis_wr);

    if (ngx_icp_gate_redis_conf->tracked) {
        if (ngx_icp_gate_redis_tr.retry.timer_set) {
            ngx_del_timer(&ngx_icp_gate_redis_tr.retry);
        }

        ngx_icp_gate_redis_drop(&ngx_icp_gate_redis_tr);
    }

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


/* a command with a reply whose deadline is watched */

static ngx_int_t
ngx_icp_gate_redis_read(ngx_icp_gate_redis_conn_t *c, const char *what,
    redisCallbackFn *reply, ngx_icp_gate_redis_pt handler, void *data,
    ngx_uint_t argc, const char **argv, size_t *argvlen)
{
    ngx_icp_gate_redis_cmd_t  *cmd;

    /* down: a read would wait behind setup until its deadline */

    if (ngx_icp_gate_redis_down(c)) {
        return NGX_ERROR;
    }

    if (c->inflight >= NGX_ICP_GATE_REDIS_READS_MAX) {
        ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: redis %s not sent, %ui reads in flight",
                       what, c->inflight);

        ngx_icp_gate_redis_stats.refused++;
        ngx_icp_gate_redis_stats.inflight = c->inflight;
        ngx_icp_gate_redis_note();

        return NGX_ERROR;
    }

    cmd = ngx_icp_gate_redis_cmd(NGX_ICP_GATE_REDIS_READ);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->handler = handler;
    cmd->data = data;

    if (ngx_icp_gate_redis_send(c, reply, cmd, argc, argv, argvlen)
        != NGX_OK)
    {
        ngx_free(cmd);
        return NGX_ERROR;
    }

    return NGX_OK;
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
    ngx_icp_gate_redis_flush();

    return rc;
}


static void
ngx_icp_gate_redis_conn_init(ngx_icp_gate_redis_conn_t *c, char *role,
    ngx_log_t *log)
{
    ngx_memzero(c, sizeof(ngx_icp_gate_redis_conn_t));

    c->role = role;
    ngx_queue_init(&c->cmds);

    ngx_icp_gate_timer_init(&c->timer, ngx_icp_gate_redis_deadline, log);

    ngx_icp_gate_timer_init(&c->retry, ngx_icp_gate_redis_retry, log);
}


static void
ngx_icp_gate_redis_connect(ngx_icp_gate_redis_conn_t *c)
{
    ngx_str_t                  *host;
    ngx_flag_t                  resolve;
    ngx_icp_gate_redis_conf_t  *rcf;

    rcf = ngx_icp_gate_redis_conf;

    if (rcf->sentinel.naddrs) {

        if (ngx_icp_gate_redis_master_host.len == 0) {
            c->waiting = 1;
            ngx_icp_gate_sentinel_ask();
            return;
        }

        host = &ngx_icp_gate_redis_master_host;
        c->port = ngx_icp_gate_redis_master_port;
        resolve = ngx_icp_gate_resolve_needed(host);

    } else {
        host = &rcf->host;
        c->port = rcf->port;
        resolve = rcf->resolve;
    }

    c->waiting = 0;

    if (!resolve) {
        ngx_icp_gate_redis_connect_to(c, (char *) host->data, c->port);
        return;
    }

    if (c->resolving) {
        return;
    }

    c->resolving = ngx_icp_gate_resolve(host, rcf->timeout,
                                        ngx_icp_gate_redis_resolved, c);

    if (c->resolving == NULL) {
        ngx_icp_gate_redis_schedule(c);
    }
}


static void
ngx_icp_gate_redis_resolved(void *data, ngx_int_t rc, ngx_str_t *addr)
{
    ngx_icp_gate_redis_conn_t  *c = data;

    u_char  host[NGX_SOCKADDR_STRLEN + 1];

    c->resolving = NULL;

    if (ngx_icp_gate_redis_exiting) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_icp_gate_redis_schedule(c);
        return;
    }

    ngx_memcpy(host, addr->data, addr->len);
    host[addr->len] = '\0';

    ngx_icp_gate_redis_connect_to(c, (char *) host, c->port);
}


/* host: an address, NUL-terminated; unused with a unix socket */

static void
ngx_icp_gate_redis_connect_to(ngx_icp_gate_redis_conn_t *c, char *host,
    in_port_t port)
{
    ngx_str_t                   number;
    redisAsyncContext          *ac;
    ngx_icp_gate_redis_conf_t  *rcf;
    u_char                      db[NGX_INT_T_LEN];

    rcf = ngx_icp_gate_redis_conf;

    if (rcf->path.len) {
        ac = redisAsyncConnectUnix((char *) rcf->path.data);

    } else {
        ac = redisAsyncConnect(host, port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V: out of memory", &rcf->name);
        ngx_icp_gate_redis_schedule(c);
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V connect failed: %s",
                      &rcf->name, ac->errstr);
        redisAsyncFree(ac);
        ngx_icp_gate_redis_schedule(c);
        ngx_icp_gate_redis_master_lost();
        return;
    }

    if (ngx_icp_gate_hiredis_attach(ac) != NGX_OK) {
        redisAsyncFree(ac);
        ngx_icp_gate_redis_schedule(c);
        return;
    }

    ac->data = c;

    c->ctx = ac;
    c->ready = 0;
    c->lost = 0;
    c->answered = ngx_current_msec;

    redisAsyncSetConnectCallback(ac, ngx_icp_gate_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_icp_gate_redis_on_disconnect);

    /*
     * hiredis sends these once connected, ahead of every other command,
     * and the connect is bounded by their deadline; a PING when there is
     * nothing to set up, so that a live Redis answers and resets the
     * backoff even on a connection nothing has used yet
     */

    number.data = db;
    number.len = ngx_sprintf(db, "%ui", rcf->db) - db;

    if ((rcf->password.len
         && ngx_icp_gate_redis_setup(c, "AUTH", &rcf->password) != NGX_OK)
        || (rcf->db
            && ngx_icp_gate_redis_setup(c, "SELECT", &number) != NGX_OK)
        || (rcf->sentinel.naddrs
            && ngx_icp_gate_redis_setup(c, "ROLE", NULL) != NGX_OK)
        || (rcf->password.len == 0 && rcf->db == 0 && !rcf->sentinel.naddrs
            && ngx_icp_gate_redis_setup(c, "PING", NULL) != NGX_OK))
    {
        /* a connection that skipped AUTH or SELECT must not be used */
        ngx_icp_gate_redis_drop(c);
        return;
    }

    if (c == &ngx_icp_gate_redis_tr) {
        ngx_icp_gate_redis_track_start(c);
    }
}


static ngx_int_t
ngx_icp_gate_redis_setup(ngx_icp_gate_redis_conn_t *c, char *command,
    ngx_str_t *arg)
{
    size_t                     argvlen[2];
    const char                *argv[2];
    ngx_icp_gate_redis_cmd_t  *cmd;

    argv[0] = command;
    argvlen[0] = ngx_strlen(command);

    if (arg) {
        argv[1] = (char *) arg->data;
        argvlen[1] = arg->len;
    }

    cmd = ngx_icp_gate_redis_send_setup(c, ngx_icp_gate_redis_setup_reply,
                                        arg ? 2 : 1, argv, argvlen);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->role = (ngx_strcmp(command, "ROLE") == 0);
    c->setups++;

    return NGX_OK;
}


/*
 * A command of a connection's setup, with its reply's handler: one late
 * by the timeout has the connection opened again
 */

static ngx_icp_gate_redis_cmd_t *
ngx_icp_gate_redis_send_setup(ngx_icp_gate_redis_conn_t *c,
    redisCallbackFn *fn, ngx_uint_t argc, const char **argv, size_t *argvlen)
{
    ngx_icp_gate_redis_cmd_t  *cmd;

    cmd = ngx_icp_gate_redis_cmd(NGX_ICP_GATE_REDIS_SETUP);
    if (cmd == NULL) {
        return NULL;
    }

    if (ngx_icp_gate_redis_send(c, fn, cmd, argc, argv, argvlen) != NGX_OK) {
        ngx_free(cmd);
        return NULL;
    }

    return cmd;
}


/* every pending callback runs, with no reply, before or after this returns */

static void
ngx_icp_gate_redis_drop(ngx_icp_gate_redis_conn_t *c)
{
    redisAsyncContext  *ac;

    ac = c->ctx;

    ngx_icp_gate_redis_gone(c);

    if (ac) {
        redisAsyncFree(ac);
    }

    ngx_icp_gate_redis_schedule(c);
}


/* a resolution under way is no longer waited for: the worker exits */

static void
ngx_icp_gate_redis_forget(ngx_icp_gate_redis_conn_t *c)
{
    if (c->resolving) {
        ngx_icp_gate_resolve_cancel(c->resolving);
        c->resolving = NULL;
    }
}


/* the connection is no more; its commands' callbacks may still run */

static void
ngx_icp_gate_redis_gone(ngx_icp_gate_redis_conn_t *c)
{
    ngx_queue_t                 *q;
    ngx_icp_gate_redis_write_t  *w;

    if (c->ready) {
        ngx_icp_gate_gauge(redis_ready, -1);
    }

    /* a worker's exit drops its connections: no reconnect follows */

    if (c->ctx && !ngx_icp_gate_redis_exiting) {
        ngx_icp_gate_count(redis_reconnects);
    }

    c->ctx = NULL;
    c->ready = 0;
    c->setups = 0;

    if (c->timer.timer_set) {
        ngx_del_timer(&c->timer);
    }

    if (c == &ngx_icp_gate_redis_tr) {
        ngx_icp_gate_redis_track_lost();
        return;
    }

    if (c != &ngx_icp_gate_redis_wr) {
        return;
    }

    /* what waits for this connection will not get to Redis soon */

    for (q = ngx_queue_head(&ngx_icp_gate_redis_backlog);
         q != ngx_queue_sentinel(&ngx_icp_gate_redis_backlog);
         q = ngx_queue_next(q))
    {
        w = ngx_queue_data(q, ngx_icp_gate_redis_write_t, queue);
        ngx_icp_gate_redis_tell(w);
    }
}


static void
ngx_icp_gate_redis_schedule(ngx_icp_gate_redis_conn_t *c)
{
    if (ngx_icp_gate_redis_exiting || ngx_exiting || ngx_quit
        || ngx_terminate || c->retry.timer_set)
    {
        return;
    }

    c->backoff = c->backoff ? ngx_min(c->backoff * 2,
                                      NGX_ICP_GATE_REDIS_BACKOFF_MAX)
                            : NGX_ICP_GATE_REDIS_BACKOFF_MIN;

    ngx_add_timer(&c->retry, (c == &ngx_icp_gate_redis_tr
                              && ngx_icp_gate_redis_untrackable)
                             ? NGX_ICP_GATE_REDIS_UNTRACKABLE : c->backoff);
}


/* cmd: the record of the command's reply, NULL for a part of a group */

static ngx_int_t
ngx_icp_gate_redis_send(ngx_icp_gate_redis_conn_t *c, redisCallbackFn *fn,
    ngx_icp_gate_redis_cmd_t *cmd, ngx_uint_t argc, const char **argv,
    size_t *argvlen)
{
    if (redisAsyncCommandArgv(c->ctx, fn, cmd, (int) argc, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    c->pending++;

    ngx_log_debug3(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: redis %*s sent, %ui pending",
                   argvlen[0], argv[0], c->pending);

    if (cmd == NULL) {
        return NGX_OK;
    }

    cmd->sent = ngx_current_msec;
    cmd->sent_us = ngx_icp_gate_metrics_now();
    ngx_queue_insert_tail(&c->cmds, &cmd->queue);

    if (cmd->kind != NGX_ICP_GATE_REDIS_SETUP) {
        c->inflight++;
    }

    /* the commands go out in order: an armed timer is due sooner */

    if (!c->timer.timer_set) {
        ngx_add_timer(&c->timer, ngx_icp_gate_redis_conf->timeout);
    }

    return NGX_OK;
}


static ngx_icp_gate_redis_cmd_t *
ngx_icp_gate_redis_cmd(ngx_uint_t kind)
{
    ngx_icp_gate_redis_cmd_t  *cmd;

    cmd = ngx_calloc(sizeof(ngx_icp_gate_redis_cmd_t), ngx_cycle->log);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->kind = kind;

    return cmd;
}


/* reply: NULL when the connection went with it */

static void
ngx_icp_gate_redis_cmd_done(ngx_icp_gate_redis_conn_t *c,
    ngx_icp_gate_redis_cmd_t *cmd, redisReply *reply)
{
    /* a late one was counted as a timeout */

    if (reply && !cmd->late) {
        ngx_icp_gate_metrics_observe(&ngx_icp_gate_metrics->counters
                                     .redis_seconds,
                                     ngx_icp_gate_redis_bounds,
                                     ngx_icp_gate_metrics_now()
                                     - cmd->sent_us);
    }

    ngx_queue_remove(&cmd->queue);

    if (cmd->kind != NGX_ICP_GATE_REDIS_SETUP && c->inflight) {
        c->inflight--;
    }

    if (ngx_queue_empty(&c->cmds) && c->timer.timer_set) {
        ngx_del_timer(&c->timer);
    }

    ngx_free(cmd);
}


static void
ngx_icp_gate_redis_answered(ngx_icp_gate_redis_conn_t *c, redisReply *reply)
{
    if (c->pending) {
        c->pending--;
    }

    if (reply == NULL) {
        c->lost++;
        return;
    }

    c->answered = ngx_current_msec;

    /*
     * a Redis that answers, not one that only accepts, resets the backoff;
     * the invalidation channel's, only once it has subscribed
     */

    if (reply->type != REDIS_REPLY_ERROR && c != &ngx_icp_gate_redis_tr) {
        c->backoff = 0;
    }
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
ngx_icp_gate_redis_flush(void)
{
    time_t                       ttl;
    ngx_queue_t                 *q;
    ngx_icp_gate_redis_conn_t   *c;
    ngx_icp_gate_redis_write_t  *w;

    c = &ngx_icp_gate_redis_wr;

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


/* a line now and then about a Redis that is late, not one per command */

static void
ngx_icp_gate_redis_note(void)
{
    ngx_msec_int_t  wait;

    if (ngx_icp_gate_redis_report_ev.timer_set) {
        return;
    }

    wait = ngx_icp_gate_redis_reported_once
           ? (ngx_msec_int_t) (ngx_icp_gate_redis_reported
                               + NGX_ICP_GATE_REDIS_LOG_EVERY
                               - ngx_current_msec)
           : 0;

    wait = ngx_max(wait, NGX_ICP_GATE_REDIS_LOG_FIRST);

    ngx_add_timer(&ngx_icp_gate_redis_report_ev, (ngx_msec_t) wait);
}


static void
ngx_icp_gate_redis_report(ngx_event_t *ev)
{
    u_char                      *p, *last;
    ngx_icp_gate_redis_stats_t  *st;
    u_char                       buf[NGX_MAX_ERROR_STR];

    st = &ngx_icp_gate_redis_stats;

    if (st->timed_out + st->refused + st->reopened + st->forgotten == 0) {
        return;
    }

    p = buf;
    last = buf + sizeof(buf);

    if (st->refused) {
        p = ngx_slprintf(p, last, ", %ui reads not sent with %ui in flight",
                         st->refused, st->inflight);
    }

    if (st->reopened) {
        p = ngx_slprintf(p, last, ", %ui connections closed as too late "
                         "and opened again", st->reopened);
    }

    if (st->forgotten) {
        p = ngx_slprintf(p, last, ", %ui verdicts never written (backlog "
                         "of %d full)", st->forgotten,
                         NGX_ICP_GATE_REDIS_BACKLOG_MAX);
    }

    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "icp_gate: redis %V: %ui command%s timed out in the last "
                  "%ds%*s", &ngx_icp_gate_redis_conf->name, st->timed_out,
                  st->timed_out == 1 ? "" : "s",
                  NGX_ICP_GATE_REDIS_LOG_EVERY / 1000, (size_t) (p - buf),
                  buf);

    ngx_memzero(st, sizeof(ngx_icp_gate_redis_stats_t));

    ngx_icp_gate_redis_reported = ngx_current_msec;
    ngx_icp_gate_redis_reported_once = 1;
}


/* a lock's value: which worker of which node holds it */

static size_t
ngx_icp_gate_redis_owner(u_char *buf)
{
    static uint32_t  token;

    /* two nodes may share a host name and a pid: containers */

    if (token == 0) {
        token = (uint32_t) ngx_random() | 1;
    }

    return ngx_snprintf(buf, NGX_ICP_GATE_REDIS_OWNER_LEN, "%V:%P:%08xD",
                        &ngx_cycle->hostname, ngx_pid, token)
           - buf;
}


/* kind: "domain:" for a verdict's hash, "lock:" for the fleet's lock */

static size_t
ngx_icp_gate_redis_key(u_char *buf, const char *kind, ngx_str_t *domain)
{
    u_char  *p;

    p = ngx_cpymem(buf, ngx_icp_gate_redis_conf->prefix.data,
                   ngx_icp_gate_redis_conf->prefix.len);
    p = ngx_cpymem(p, kind, ngx_strlen(kind));
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
ngx_icp_gate_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_icp_gate_redis_conn_t  *c;
    ngx_icp_gate_redis_conf_t  *rcf;

    c = ac->data;
    rcf = ngx_icp_gate_redis_conf;

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V connect failed: %s",
                      &rcf->name, ac->errstr);

        /* hiredis frees the context itself once this returns */

        if (ac == c->ctx) {
            ngx_icp_gate_redis_gone(c);
            ngx_icp_gate_redis_schedule(c);
            ngx_icp_gate_redis_master_lost();
        }

        return;
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "icp_gate: redis %V connected for %s", &rcf->name, c->role);
}


static void
ngx_icp_gate_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_uint_t                  level;
    ngx_icp_gate_redis_conn_t  *c;

    c = ac->data;

    if (ac != c->ctx) {
        return;
    }

    /* a Redis "timeout" closes idle connections: no error then */

    level = c->lost ? NGX_LOG_ERR : NGX_LOG_INFO;

    ngx_log_error(level, ngx_cycle->log, 0,
                  "icp_gate: redis %V connection lost: %s",
                  &ngx_icp_gate_redis_conf->name,
                  ac->errstr[0] ? ac->errstr : "closed");

    c->lost = 0;

    /*
     * Redis took the tracking, then closed the channel rather than let it
     * subscribe: a user without the right to (ACL), or a proxy
     */

    if (c == &ngx_icp_gate_redis_tr && ngx_icp_gate_redis_subscribing) {
        ngx_icp_gate_redis_untrackable_now("closed the invalidation channel "
                                           "as it subscribed",
                                           "may this user SUBSCRIBE?");
    }

    ngx_icp_gate_redis_gone(c);
    ngx_icp_gate_redis_schedule(c);
    ngx_icp_gate_redis_master_lost();
}


static void
ngx_icp_gate_redis_setup_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    ngx_icp_gate_redis_cmd_t  *cmd = privdata;

    ngx_uint_t                  role;
    ngx_msec_t                  backoff;
    redisReply                 *reply = r;
    ngx_icp_gate_redis_conn_t  *c;

    static ngx_uint_t           role_refused;

    c = ac->data;
    role = cmd->role;
    backoff = c->backoff;

    ngx_icp_gate_redis_answered(c, reply);
    ngx_icp_gate_redis_cmd_done(c, cmd, reply);

    if (reply == NULL || ac != c->ctx) {
        return;
    }

    /* ROLE is an @admin command: a user without it trusts the sentinels */

    if (role && reply->type == REDIS_REPLY_ERROR) {
        if (!role_refused) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "icp_gate: redis %V refused ROLE (%s): the master "
                          "the sentinels name is not checked",
                          &ngx_icp_gate_redis_conf->name, reply->str);
            role_refused = 1;
        }

        goto counted;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V refused setup: %s",
                      &ngx_icp_gate_redis_conf->name, reply->str);

        ngx_icp_gate_redis_drop(c);
        ngx_icp_gate_redis_master_lost();
        return;
    }

    /* what the sentinels named may be a master no more */

    if (role
        && (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0
            || reply->element[0]->type != REDIS_REPLY_STRING
            || ngx_strcmp(reply->element[0]->str, "master") != 0))
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "icp_gate: redis %V:%d is not the master of \"%V\"; "
                      "asking the sentinels again",
                      &ngx_icp_gate_redis_master_host,
                      (int) ngx_icp_gate_redis_master_port,
                      &ngx_icp_gate_redis_conf->name);

        /*
         * tried again with the backoff growing: sentinels that keep
         * naming a replica must not make a loop
         */

        c->backoff = backoff;

        ngx_icp_gate_redis_drop(c);
        ngx_icp_gate_redis_master_lost();
        return;
    }

counted:

    if (c->setups && --c->setups == 0) {
        c->ready = 1;
        ngx_icp_gate_gauge(redis_ready, 1);

        if (c == &ngx_icp_gate_redis_wr) {
            ngx_icp_gate_redis_flush();
        }
    }
}


/*
 * A read's reply counted and its record gone: its handler, NULL when the
 * read is late or the worker exits (hiredis fails what is pending as the
 * connections close)
 */

static ngx_icp_gate_redis_pt
ngx_icp_gate_redis_read_done(redisAsyncContext *ac, redisReply *reply,
    ngx_icp_gate_redis_cmd_t *cmd, void **data)
{
    ngx_icp_gate_redis_pt       handler;
    ngx_icp_gate_redis_conn_t  *c;

    c = ac->data;

    ngx_icp_gate_redis_answered(c, reply);

    handler = cmd->handler;
    *data = cmd->data;

    ngx_icp_gate_redis_cmd_done(c, cmd, reply);

    /* the worker exits: the lookups must start nothing now */

    return ngx_icp_gate_redis_exiting ? NULL : handler;
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
        ngx_icp_gate_redis_flush();
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


/*
 * The sentinels named the master.  A new one: every connection goes to it
 * now, without a backoff.  The same: only the connections that waited for
 * the answer go; the others keep their backoff, or a master that is down
 * would be asked about and tried again in a loop.
 */

static void
ngx_icp_gate_redis_master_is(ngx_str_t *host, in_port_t port)
{
    ngx_uint_t                  i, moved;
    ngx_icp_gate_redis_conn_t  *c, *conns[3];

    moved = (ngx_icp_gate_redis_master_host.len != host->len
             || ngx_icp_gate_redis_master_port != port
             || ngx_strncmp(ngx_icp_gate_redis_master, host->data,
                            host->len) != 0);

    if (moved) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "icp_gate: redis master \"%V\" is at %V:%d",
                      &ngx_icp_gate_redis_conf->name, host, (int) port);

        ngx_memcpy(ngx_icp_gate_redis_master, host->data, host->len);
        ngx_icp_gate_redis_master[host->len] = '\0';
        ngx_icp_gate_redis_master_host.data = ngx_icp_gate_redis_master;
        ngx_icp_gate_redis_master_host.len = host->len;
        ngx_icp_gate_redis_master_port = port;
    }

    conns[0] = &ngx_icp_gate_redis_rd;
    conns[1] = &ngx_icp_gate_redis_wr;
    conns[2] = &ngx_icp_gate_redis_tr;

    for (i = 0; i < 3; i++) {
        c = conns[i];

        /* the invalidation channel: another worker's, or an exiting one's */

        if (c->role == NULL || (!moved && !c->waiting)
            || (c == &ngx_icp_gate_redis_tr && ngx_exiting))
        {
            continue;
        }

        if (c->ctx) {
            ngx_icp_gate_redis_drop(c);
        }

        if (c->retry.timer_set) {
            ngx_del_timer(&c->retry);
        }

        c->backoff = 0;

        if (c->resolving) {
            ngx_icp_gate_resolve_cancel(c->resolving);
            c->resolving = NULL;
        }

        ngx_icp_gate_redis_connect(c);
    }
}


/* a connection to the master failed: with Sentinel, where is it now? */

static void
ngx_icp_gate_redis_master_lost(void)
{
    if (ngx_icp_gate_redis_conf->sentinel.naddrs
        && !ngx_icp_gate_redis_exiting)
    {
        ngx_icp_gate_sentinel_ask();
    }
}


/*
 * The invalidation channel's setup, after AUTH and SELECT: the
 * connection's id, tracking of every verdict's hash redirected to that
 * id, and, once Redis took that, the subscription that receives them
 */

static void
ngx_icp_gate_redis_track_start(ngx_icp_gate_redis_conn_t *c)
{
    size_t       argvlen[2];
    const char  *argv[2];

    ngx_icp_gate_redis_tr_since = ngx_current_msec;
    ngx_icp_gate_redis_beat_sent = 0;

    ngx_icp_gate_hiredis_arg(argv, argvlen, 0, "CLIENT");
    ngx_icp_gate_hiredis_arg(argv, argvlen, 1, "ID");

    if (ngx_icp_gate_redis_send_setup(c, ngx_icp_gate_redis_track_id_reply,
                                      2, argv, argvlen)
        == NULL)
    {
        ngx_icp_gate_redis_drop(c);
    }
}


static void
ngx_icp_gate_redis_track_id_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    u_char                     *p;
    size_t                      argvlen[8];
    const char                 *argv[8];
    redisReply                 *reply = r;
    ngx_icp_gate_redis_conn_t  *c;
    ngx_icp_gate_redis_conf_t  *rcf;
    u_char                      id[NGX_INT64_LEN];
    u_char                      prefix[NGX_ICP_GATE_REDIS_KEY_LEN];

    rcf = ngx_icp_gate_redis_conf;

    c = ngx_icp_gate_redis_track_answered(ac, reply, privdata);
    if (c == NULL) {
        return;
    }

    if (reply->type != REDIS_REPLY_INTEGER) {
        ngx_icp_gate_redis_drop(c);
        return;
    }

    /* only the verdicts' hashes: a lock's changes are no news */

    ngx_icp_gate_hiredis_arg(argv, argvlen, 0, "CLIENT");
    ngx_icp_gate_hiredis_arg(argv, argvlen, 1, "TRACKING");
    ngx_icp_gate_hiredis_arg(argv, argvlen, 2, "ON");
    ngx_icp_gate_hiredis_arg(argv, argvlen, 3, "REDIRECT");
    argv[4] = (char *) id;
    argvlen[4] = ngx_sprintf(id, "%L", (int64_t) reply->integer) - id;
    ngx_icp_gate_hiredis_arg(argv, argvlen, 5, "BCAST");
    ngx_icp_gate_hiredis_arg(argv, argvlen, 6, "PREFIX");

    p = ngx_cpymem(prefix, rcf->prefix.data, rcf->prefix.len);
    p = ngx_cpymem(p, "domain:", sizeof("domain:") - 1);

    argv[7] = (char *) prefix;
    argvlen[7] = p - prefix;

    if (ngx_icp_gate_redis_send_setup(c, ngx_icp_gate_redis_track_on_reply,
                                      8, argv, argvlen)
        == NULL)
    {
        ngx_icp_gate_redis_drop(c);
    }
}


static void
ngx_icp_gate_redis_track_on_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                 *reply = r;
    ngx_icp_gate_redis_conn_t  *c;

    c = ngx_icp_gate_redis_track_answered(ac, reply, privdata);
    if (c == NULL) {
        return;
    }

    ngx_icp_gate_redis_subscribing = 1;

    if (ngx_icp_gate_redis_subscribe(ac, 1) != NGX_OK) {
        ngx_icp_gate_redis_drop(c);
    }
}


/*
 * To the invalidations and the node's own channel ("all"), or only to the
 * latter again: Redis confirms each time, which is the channel's beat.  No
 * record: the callback runs for every message to come.
 */

static ngx_int_t
ngx_icp_gate_redis_subscribe(redisAsyncContext *ac, ngx_uint_t all)
{
    size_t       argvlen[3];
    ngx_uint_t   argc;
    const char  *argv[3];

    argc = 0;

    argv[argc] = "SUBSCRIBE";
    argvlen[argc++] = sizeof("SUBSCRIBE") - 1;

    if (all) {
        argv[argc] = NGX_ICP_GATE_REDIS_CHANNEL;
        argvlen[argc++] = sizeof(NGX_ICP_GATE_REDIS_CHANNEL) - 1;
    }

    argv[argc] = (char *) ngx_icp_gate_redis_beat_channel.data;
    argvlen[argc++] = ngx_icp_gate_redis_beat_channel.len;

    if (redisAsyncCommandArgv(ac, ngx_icp_gate_redis_track_message, NULL,
                              (int) argc, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A reply of the channel's setup counted: its connection, or NULL when
 * there is nothing more to do, the connection gone or refused (a Redis
 * before 5 has no CLIENT ID, one before 6 no tracking; a user may lack
 * the right to either)
 */

static ngx_icp_gate_redis_conn_t *
ngx_icp_gate_redis_track_answered(redisAsyncContext *ac, redisReply *reply,
    ngx_icp_gate_redis_cmd_t *cmd)
{
    ngx_icp_gate_redis_conn_t  *c;

    c = ac->data;

    ngx_icp_gate_redis_answered(c, reply);
    ngx_icp_gate_redis_cmd_done(c, cmd, reply);

    if (reply == NULL || ac != c->ctx) {
        return NULL;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_icp_gate_redis_untrackable_now("does not track keys", reply->str);
        ngx_icp_gate_redis_drop(c);
        return NULL;
    }

    return c;
}


/*
 * The node keeps its copies icp_gate_local_ttl, as it would without the
 * channel, which is asked for again after a long while
 */

static void
ngx_icp_gate_redis_untrackable_now(char *why, char *detail)
{
    if (!ngx_icp_gate_redis_untrackable) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: redis %V %s (%s): changes reach this node "
                      "only as its copies expire; asking again every %ds",
                      &ngx_icp_gate_redis_conf->name, why, detail,
                      NGX_ICP_GATE_REDIS_UNTRACKABLE / 1000);
    }

    ngx_icp_gate_redis_untrackable = 1;
}


static void
ngx_icp_gate_redis_track_message(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                 *reply = r;
    redisReply                 *kind, *channel;
    ngx_icp_gate_redis_conn_t  *c;

    c = ac->data;

    /* the connection goes: its loss is told from ngx_icp_gate_redis_gone() */

    if (reply == NULL || ac != c->ctx || ngx_icp_gate_redis_exiting) {
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    kind = reply->element[0];
    channel = reply->element[1];

    c->answered = ngx_current_msec;

    if ((size_t) channel->len == ngx_icp_gate_redis_beat_channel.len
        && ngx_strncmp(channel->str, ngx_icp_gate_redis_beat_channel.data,
                       channel->len) == 0)
    {
        ngx_icp_gate_redis_beat_sent = 0;

        /* subscribed to both channels: every change is told from now on */

        if (ngx_strcmp(kind->str, "subscribe") == 0
            && !ngx_icp_gate_redis_tracking)
        {
            ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                          "icp_gate: redis %V tells this node of every "
                          "change", &ngx_icp_gate_redis_conf->name);

            c->backoff = 0;
            ngx_icp_gate_redis_tracking = 1;
            ngx_icp_gate_redis_subscribing = 0;
            ngx_icp_gate_redis_untrackable = 0;

            ngx_icp_gate_redis_conf->tracked(NGX_ICP_GATE_REDIS_TRACKED,
                                             NULL);
        }

        return;
    }

    if (ngx_strcmp(kind->str, "message") != 0 || !ngx_icp_gate_redis_tracking)
    {
        return;
    }

    ngx_icp_gate_redis_track_keys(reply->element[2]);
}


/* an invalidation: one key (Redis 6.0), several, or none for a flush */

static void
ngx_icp_gate_redis_track_keys(redisReply *keys)
{
    size_t                      i, n, skip;
    ngx_str_t                   domain;
    redisReply                 *key, **list;
    ngx_icp_gate_redis_conf_t  *rcf;

    rcf = ngx_icp_gate_redis_conf;

    if (keys->type == REDIS_REPLY_NIL) {
        ngx_log_debug0(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: redis flushed every verdict");

        rcf->tracked(NGX_ICP_GATE_REDIS_CHANGED, NULL);
        return;
    }

    if (keys->type == REDIS_REPLY_ARRAY) {
        list = keys->element;
        n = keys->elements;

    } else {
        list = &keys;
        n = 1;
    }

    skip = rcf->prefix.len + sizeof("domain:") - 1;

    for (i = 0; i < n; i++) {
        key = list[i];

        if (key->type != REDIS_REPLY_STRING
            || (size_t) key->len <= skip
            || (size_t) key->len - skip > NGX_ICP_GATE_DOMAIN_LEN)
        {
            continue;
        }

        domain.data = (u_char *) key->str + skip;
        domain.len = key->len - skip;

        ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: redis says \"%V\" changed", &domain);

        rcf->tracked(NGX_ICP_GATE_REDIS_CHANGED, &domain);
    }
}


static void
ngx_icp_gate_redis_track_lost(void)
{
    ngx_icp_gate_redis_subscribing = 0;

    if (!ngx_icp_gate_redis_tracking) {
        return;
    }

    ngx_icp_gate_redis_tracking = 0;

    if (ngx_icp_gate_redis_exiting || ngx_exiting) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "icp_gate: redis %V invalidation channel lost: every "
                  "copy of this node counts as stale until it is back",
                  &ngx_icp_gate_redis_conf->name);

    ngx_icp_gate_redis_conf->tracked(NGX_ICP_GATE_REDIS_UNTRACKED, NULL);
}


/*
 * Each second: the channel is set up in time and hears its beats back, or
 * is opened again; and while it is away and Redis answers reads, the node
 * is told again that changes may go untold.
 */

static void
ngx_icp_gate_redis_beat(ngx_event_t *ev)
{
    char                       *stuck;
    ngx_msec_t                  limit;
    ngx_icp_gate_redis_conn_t  *c, *rd;

    c = &ngx_icp_gate_redis_tr;
    rd = &ngx_icp_gate_redis_rd;

    if (ngx_icp_gate_redis_exiting) {
        return;
    }

    /* a worker a reload replaced: the new one listens in its place */

    if (ngx_exiting) {
        ngx_icp_gate_redis_drop(c);
        return;
    }

    limit = 2 * ngx_icp_gate_redis_conf->timeout
            + NGX_ICP_GATE_REDIS_BEAT_GRACE;

    stuck = NULL;

    if (c->ctx && !ngx_icp_gate_redis_tracking
        && ngx_current_msec - ngx_icp_gate_redis_tr_since > limit)
    {
        stuck = "not set up";

    } else if (c->ctx && ngx_icp_gate_redis_beat_sent
               && ngx_current_msec - ngx_icp_gate_redis_beat_sent > limit)
    {
        stuck = "silent";
    }

    if (stuck) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "icp_gate: redis %V invalidation channel %s for "
                      "%Mms, opening it again",
                      &ngx_icp_gate_redis_conf->name, stuck, limit);

        ngx_icp_gate_redis_drop(c);

    } else if (c->ctx && ngx_icp_gate_redis_tracking
               && ngx_icp_gate_redis_beat_sent == 0
               && ngx_icp_gate_redis_subscribe(c->ctx, 0) == NGX_OK)
    {
        ngx_icp_gate_redis_beat_sent = ngx_current_msec;
    }

    if (!ngx_icp_gate_redis_tracking && !ngx_icp_gate_redis_untrackable
        && rd->ready
        && ngx_current_msec - rd->answered
           < NGX_ICP_GATE_REDIS_BEAT_EVERY + ngx_icp_gate_redis_conf->timeout)
    {
        ngx_icp_gate_redis_conf->tracked(NGX_ICP_GATE_REDIS_UNTRACKED, NULL);
    }

    ngx_add_timer(ev, NGX_ICP_GATE_REDIS_BEAT_EVERY);
}


/*
 * The commands' deadlines: a read past it fails now, and the lookup goes
 * on without it.  A connection whose setup is late is closed and opened
 * again, and so is the read connection whose oldest command waited twice
 * the timeout: a dead peer, or a Redis so far behind that what it still
 * owes us is better thrown away than waited for.  Nobody waits for a
 * write: the write connection goes only when Redis said nothing on it for
 * twice the timeout, so that a slow Redis still takes the verdicts.
 */

static void
ngx_icp_gate_redis_deadline(ngx_event_t *ev)
{
    ngx_msec_t                  timeout, next, since;
    ngx_uint_t                  i, n, late, drop;
    ngx_queue_t                *q;
    ngx_icp_gate_redis_cmd_t   *cmd;
    ngx_icp_gate_redis_conn_t  *c;
    ngx_icp_gate_redis_late_t   failed[NGX_ICP_GATE_REDIS_READS_MAX];

    c = (ngx_icp_gate_redis_conn_t *)
            ((u_char *) ev - offsetof(ngx_icp_gate_redis_conn_t, timer));

    /*
     * the invalidation channel waits for nothing: a slow setup is given
     * the beat's time (ngx_icp_gate_redis_beat), and is not counted
     */

    if (ngx_queue_empty(&c->cmds) || c == &ngx_icp_gate_redis_tr) {
        return;
    }

    timeout = ngx_icp_gate_redis_conf->timeout;

    q = ngx_queue_head(&c->cmds);
    cmd = ngx_queue_data(q, ngx_icp_gate_redis_cmd_t, queue);

    since = cmd->sent;

    if (c == &ngx_icp_gate_redis_wr
        && (ngx_msec_int_t) (c->answered - since) > 0)
    {
        since = c->answered;
    }

    drop = (ngx_current_msec - since >= 2 * timeout);
    next = 2 * timeout - (ngx_current_msec - since);

    n = 0;
    late = 0;

    for ( /* void */ ; q != ngx_queue_sentinel(&c->cmds);
         q = ngx_queue_next(q))
    {
        cmd = ngx_queue_data(q, ngx_icp_gate_redis_cmd_t, queue);

        if (cmd->late) {
            continue;
        }

        if (ngx_current_msec - cmd->sent < timeout) {
            /* in the order sent: the rest are due later */
            next = ngx_min(next, timeout - (ngx_current_msec - cmd->sent));
            break;
        }

        cmd->late = 1;
        late++;

        if (cmd->kind == NGX_ICP_GATE_REDIS_SETUP) {
            drop = 1;

        } else if (cmd->kind == NGX_ICP_GATE_REDIS_READ
                   && cmd->handler != NULL     /* an unlock waits for none */
                   && n < NGX_ICP_GATE_REDIS_READS_MAX)
        {
            failed[n].handler = cmd->handler;
            failed[n].data = cmd->data;
            n++;

            cmd->handler = NULL;
        }
    }

    ngx_log_debug4(NGX_LOG_DEBUG_CORE, ev->log, 0,
                   "icp_gate: redis %s: %ui commands late, %ui of them "
                   "reads given up%s", c->role, late, n,
                   drop ? ", reopening" : "");

    ngx_icp_gate_redis_stats.timed_out += late;
    ngx_icp_gate_count_n(redis_timeouts, late);

    if (drop) {
        ngx_icp_gate_redis_stats.reopened++;

        /* the commands not late yet fail now, in their callbacks */

        ngx_icp_gate_redis_drop(c);
        ngx_icp_gate_redis_master_lost();

    } else {
        ngx_add_timer(&c->timer, next);
    }

    if (late || drop) {
        ngx_icp_gate_redis_note();
    }

    /* last: a lookup that goes on may send to Redis again */

    for (i = 0; i < n; i++) {
        failed[i].handler(failed[i].data, NGX_ERROR, NULL);
    }
}


static void
ngx_icp_gate_redis_retry(ngx_event_t *ev)
{
    ngx_icp_gate_redis_conn_t  *c;

    c = (ngx_icp_gate_redis_conn_t *)
            ((u_char *) ev - offsetof(ngx_icp_gate_redis_conn_t, retry));

    if (c->ctx == NULL && c->resolving == NULL
        && !ngx_icp_gate_redis_exiting)
    {
        ngx_icp_gate_redis_connect(c);
    }
}
