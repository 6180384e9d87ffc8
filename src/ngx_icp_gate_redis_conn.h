
/*
 * Copyright (C) icp_gate authors
 *
 * The Redis adapter's connections, shared by its parts (the verdict store,
 * the fleet's lock, the invalidation channel): a hiredis context each, its
 * setup, the records of its commands and their deadlines, reconnects with
 * backoff.  The parts above hand in what they need to hear through the
 * connection's handlers; nothing here knows what a verdict is.
 */


#ifndef _NGX_ICP_GATE_REDIS_CONN_H_INCLUDED_
#define _NGX_ICP_GATE_REDIS_CONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_icp_gate_redis.h"
#include "ngx_icp_gate_resolve.h"
#include "ngx_icp_gate_hiredis.h"


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

/*
 * verdicts waiting for Redis, per worker, in the store's backlog (the
 * oldest go first when full); a count of those let go is reported here
 */
#define NGX_ICP_GATE_REDIS_BACKLOG_MAX   1024

#define NGX_ICP_GATE_REDIS_SETUP         0
#define NGX_ICP_GATE_REDIS_READ          1
#define NGX_ICP_GATE_REDIS_WRITE         2


/* no connection, or one after a failure that does not answer yet */
#define ngx_icp_gate_redis_down(c)                                            \
    ((c)->ctx == NULL || (!(c)->ready && (c)->backoff))


typedef struct ngx_icp_gate_redis_conn_s  ngx_icp_gate_redis_conn_t;

/* closed: Redis (or the network) closed it, rather than this worker */
typedef void (*ngx_icp_gate_redis_conn_pt)(ngx_icp_gate_redis_conn_t *c,
    ngx_uint_t closed);


typedef struct {
    ngx_queue_t                 queue;      /* its connection's, oldest first */
    ngx_msec_t                  sent;
    uint64_t                    sent_us;    /* for the histogram */
    ngx_uint_t                  kind;
    const char                 *what;       /* for logs: "read", "look"... */
    ngx_icp_gate_redis_pt       handler;    /* a read's; NULL once it is late */
    void                       *data;
    void                       *write;      /* a write's */
    unsigned                    late:1;     /* past its deadline, counted */
    unsigned                    role:1;     /* a ROLE: must say master */
} ngx_icp_gate_redis_cmd_t;


struct ngx_icp_gate_redis_conn_s {
    redisAsyncContext          *ctx;
    ngx_icp_gate_resolve_t     *resolving;  /* its host name, before */
    char                       *role;       /* for logs */
    ngx_queue_t                 cmds;
    ngx_event_t                 timer;      /* the next deadline */
    ngx_event_t                 retry;
    ngx_msec_t                  backoff;
    ngx_msec_t                  backoff_was;    /* when it connected */
    ngx_msec_t                  pause;      /* a retry no sooner than this */
    ngx_msec_t                  answered;   /* when Redis last answered */
    ngx_msec_t                  used;       /* a command sent or answered */
    ngx_uint_t                  pending;    /* commands sent, not answered */
    ngx_uint_t                  inflight;   /* reads or writes among them */
    ngx_uint_t                  setups;     /* AUTH, SELECT, PING unanswered */

    /* commands a lost connection took with it: hiredis fails them first */
    ngx_uint_t                  lost;
    ngx_icp_gate_hiredis_episode_t  malformed;  /* replies, logged once */
    in_port_t                   port;       /* of the host resolved */
    u_char                      addr[NGX_SOCKADDR_STRLEN + 1];  /* last */

    /* the part's: set up, ready for its commands, gone */
    void                      (*connected)(ngx_icp_gate_redis_conn_t *c);
    void                      (*ready_handler)(ngx_icp_gate_redis_conn_t *c);
    ngx_icp_gate_redis_conn_pt  gone_handler;

    unsigned                    ready:1;    /* its setup was answered */
    unsigned                    waiting:1;  /* for the sentinels' answer */

    /* closed for want of commands: opened again by the next one */
    unsigned                    idle:1;

    /* lost or failed, not ready since: counted in the metrics */
    unsigned                    failing:1;

    /*
     * the invalidation channel: no deadlines (its beat watches it), and
     * its backoff is reset by its part, once it has subscribed
     */
    unsigned                    subscriber:1;

    /* the write connection: late only when Redis says nothing at all */
    unsigned                    writer:1;
};


typedef struct {
    ngx_uint_t                  timed_out;
    ngx_uint_t                  refused;    /* reads over the cap */
    ngx_uint_t                  inflight;   /* when the last was refused */
    ngx_uint_t                  reopened;   /* connections closed for late */
    ngx_uint_t                  forgotten;  /* verdicts the backlog let go */
} ngx_icp_gate_redis_stats_t;


extern ngx_icp_gate_redis_conf_t   *ngx_icp_gate_redis_conf;
extern ngx_icp_gate_redis_conn_t    ngx_icp_gate_redis_rd;
extern ngx_icp_gate_redis_conn_t    ngx_icp_gate_redis_wr;
extern ngx_icp_gate_redis_conn_t    ngx_icp_gate_redis_tr;
extern ngx_uint_t                   ngx_icp_gate_redis_exiting;
extern ngx_icp_gate_redis_stats_t   ngx_icp_gate_redis_stats;


void ngx_icp_gate_redis_conns_init(ngx_cycle_t *cycle);
void ngx_icp_gate_redis_conns_done(void);
void ngx_icp_gate_redis_conn_init(ngx_icp_gate_redis_conn_t *c,
    char *role, ngx_log_t *log);
void ngx_icp_gate_redis_connect(ngx_icp_gate_redis_conn_t *c);
void ngx_icp_gate_redis_wake(ngx_icp_gate_redis_conn_t *c);
void ngx_icp_gate_redis_drop(ngx_icp_gate_redis_conn_t *c);
void ngx_icp_gate_redis_close(ngx_icp_gate_redis_conn_t *c);
void ngx_icp_gate_redis_push(ngx_icp_gate_redis_conn_t *c);
void ngx_icp_gate_redis_master_lost(void);
ngx_icp_gate_redis_cmd_t *ngx_icp_gate_redis_send_setup(
    ngx_icp_gate_redis_conn_t *c, redisCallbackFn *fn, ngx_uint_t argc,
    const char **argv, size_t *argvlen);
ngx_int_t ngx_icp_gate_redis_send(ngx_icp_gate_redis_conn_t *c,
    redisCallbackFn *fn, ngx_icp_gate_redis_cmd_t *cmd, ngx_uint_t argc,
    const char **argv, size_t *argvlen);
ngx_icp_gate_redis_cmd_t *ngx_icp_gate_redis_cmd(ngx_uint_t kind);
void ngx_icp_gate_redis_cmd_done(ngx_icp_gate_redis_conn_t *c,
    ngx_icp_gate_redis_cmd_t *cmd, redisReply *reply);
void ngx_icp_gate_redis_answered(ngx_icp_gate_redis_conn_t *c,
    redisReply *reply);
ngx_int_t ngx_icp_gate_redis_read(ngx_icp_gate_redis_conn_t *c,
    const char *what, redisCallbackFn *reply, ngx_icp_gate_redis_pt handler,
    void *data, ngx_uint_t argc, const char **argv, size_t *argvlen);
ngx_icp_gate_redis_pt ngx_icp_gate_redis_read_done(redisAsyncContext *ac,
    redisReply *reply, ngx_icp_gate_redis_cmd_t *cmd, void **data);
void ngx_icp_gate_redis_note(void);
size_t ngx_icp_gate_redis_key(u_char *buf, const char *kind,
    ngx_str_t *domain);
size_t ngx_icp_gate_redis_owner(u_char *buf);


#endif /* _NGX_ICP_GATE_REDIS_CONN_H_INCLUDED_ */
