
/*
 * Copyright (C) icp_gate authors
 *
 * hiredis async connections driven by the nginx event loop: a worker's
 * read and write connections, and the node's invalidation channel in the
 * worker that listens.  hiredis 0.14 has no timeouts and owns its
 * sockets: the deadlines here are ours, and the nginx connection wrapped
 * around a socket is only freed, never closed.
 *
 * Every command (or MULTI ... EXEC group) has a record in its connection's
 * queue, oldest first, as Redis answers them.  A read not answered within
 * the timeout fails at its deadline; its record stays, marked, until the
 * late reply comes, which is then dropped.  A connection whose oldest
 * command waited twice the timeout is closed and opened again.  With
 * Sentinel, a connection goes where the sentinels say the master is.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <poll.h>
#include "ngx_icp_gate_redis_conn.h"
#include "ngx_icp_gate_hiredis.h"
#include "ngx_icp_gate_socket.h"
#include "ngx_icp_gate_metrics.h"


#define NGX_ICP_GATE_REDIS_BACKOFF_MIN   100
#define NGX_ICP_GATE_REDIS_BACKOFF_MAX   5000

/*
 * one line about timeouts at most this often (ms), the first of an episode
 * after a moment, so that it counts the commands that were late together
 */
#define NGX_ICP_GATE_REDIS_LOG_EVERY     5000
#define NGX_ICP_GATE_REDIS_LOG_FIRST     1000

/* the longest a worker's exit waits for its last commands to leave */
#define NGX_ICP_GATE_REDIS_EXIT_WAIT     100

/* how often a worker looks for connections idle long enough, at most */
#define NGX_ICP_GATE_REDIS_IDLE_CHECK    1000


/* a read given up at its deadline, its handler still to run */
typedef struct {
    ngx_icp_gate_redis_pt       handler;
    void                       *data;
} ngx_icp_gate_redis_late_t;


static void ngx_icp_gate_redis_resolved(void *data, ngx_int_t rc,
    ngx_str_t *addr);
static void ngx_icp_gate_redis_connect_to(ngx_icp_gate_redis_conn_t *c,
    char *host, in_port_t port);
static void ngx_icp_gate_redis_master_is(ngx_str_t *host, in_port_t port);
static ngx_int_t ngx_icp_gate_redis_setup(ngx_icp_gate_redis_conn_t *c,
    char *command, ngx_str_t *arg);
static void ngx_icp_gate_redis_gone(ngx_icp_gate_redis_conn_t *c,
    ngx_uint_t closed);
static void ngx_icp_gate_redis_schedule(ngx_icp_gate_redis_conn_t *c);
static void ngx_icp_gate_redis_push_out(ngx_icp_gate_redis_conn_t *c,
    ngx_msec_t ms);

static void ngx_icp_gate_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_icp_gate_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_icp_gate_redis_setup_reply(redisAsyncContext *ac, void *r,
    void *privdata);

static void ngx_icp_gate_redis_deadline(ngx_event_t *ev);
static void ngx_icp_gate_redis_retry(ngx_event_t *ev);
static void ngx_icp_gate_redis_report(ngx_event_t *ev);
static void ngx_icp_gate_redis_idle_check(ngx_event_t *ev);
static void ngx_icp_gate_redis_rest(ngx_icp_gate_redis_conn_t *c,
    ngx_uint_t closed);


ngx_icp_gate_redis_conf_t          *ngx_icp_gate_redis_conf;
ngx_icp_gate_redis_conn_t           ngx_icp_gate_redis_rd;
ngx_icp_gate_redis_conn_t           ngx_icp_gate_redis_wr;
ngx_icp_gate_redis_conn_t           ngx_icp_gate_redis_tr;
ngx_uint_t                          ngx_icp_gate_redis_exiting;
ngx_icp_gate_redis_stats_t          ngx_icp_gate_redis_stats;

/* the master the sentinels named, with Sentinel */
static u_char         ngx_icp_gate_redis_master[NGX_MAXHOSTNAMELEN + 1];
static ngx_str_t                    ngx_icp_gate_redis_master_host;
static in_port_t                    ngx_icp_gate_redis_master_port;

static ngx_event_t                  ngx_icp_gate_redis_report_ev;
static ngx_event_t                  ngx_icp_gate_redis_idle_ev;
static ngx_msec_t                   ngx_icp_gate_redis_reported;
static ngx_uint_t                   ngx_icp_gate_redis_reported_once;


/* the conf is set; the parts set their connections' handlers after this */

void
ngx_icp_gate_redis_conns_init(ngx_cycle_t *cycle)
{
    ngx_icp_gate_redis_conf_t  *rcf;

    rcf = ngx_icp_gate_redis_conf;

    ngx_icp_gate_redis_exiting = 0;

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

    ngx_icp_gate_redis_wr.writer = 1;

    ngx_icp_gate_timer_init(&ngx_icp_gate_redis_idle_ev,
                            ngx_icp_gate_redis_idle_check, cycle->log);

    if (rcf->idle) {
        ngx_add_timer(&ngx_icp_gate_redis_idle_ev,
                      ngx_min(rcf->idle, NGX_ICP_GATE_REDIS_IDLE_CHECK));
    }
}


/* every connection goes; what is pending fails in its callback */

void
ngx_icp_gate_redis_conns_done(void)
{
    ngx_icp_gate_redis_exiting = 1;

    if (ngx_icp_gate_redis_report_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_redis_report_ev);
    }

    if (ngx_icp_gate_redis_idle_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_redis_idle_ev);
    }

    if (ngx_icp_gate_redis_conf->sentinel.naddrs) {
        ngx_icp_gate_sentinel_done();
    }

    /*
     * the fleet's locks this worker gives up on its way out, and the
     * verdicts it was writing
     */

    ngx_icp_gate_redis_push_out(&ngx_icp_gate_redis_rd,
                                NGX_ICP_GATE_REDIS_EXIT_WAIT);
    ngx_icp_gate_redis_push_out(&ngx_icp_gate_redis_wr,
                                NGX_ICP_GATE_REDIS_EXIT_WAIT);

    ngx_icp_gate_redis_close(&ngx_icp_gate_redis_rd);
    ngx_icp_gate_redis_close(&ngx_icp_gate_redis_wr);
}


/*
 * At a worker's exit, when no event loop will run again: what waits in the
 * connection's buffer goes out now, within ms, for Redis to carry out
 * after the connection is gone.  Redis runs what it has read of a client
 * before it notices the client left.
 */

static void
ngx_icp_gate_redis_push_out(ngx_icp_gate_redis_conn_t *c, ngx_msec_t ms)
{
    int            done;
    ngx_uint_t     i;
    struct pollfd  pfd;

    if (c->ctx == NULL || !c->ready) {
        return;
    }

    for (i = 0; i < 10; i++) {
        done = 0;

        if (redisBufferWrite(&c->ctx->c, &done) != REDIS_OK || done) {
            return;
        }

        pfd.fd = c->ctx->c.fd;
        pfd.events = POLLOUT;
        pfd.revents = 0;

        if (poll(&pfd, 1, (int) (ms / 10)) <= 0) {
            return;
        }
    }
}


/*
 * What waits in the connection's buffer goes out now, as far as the socket
 * takes it, not at the event loop's next turn: before the requests a
 * write's verdict answers are answered
 */

void
ngx_icp_gate_redis_push(ngx_icp_gate_redis_conn_t *c)
{
    if (c->ctx && c->ready) {
        redisAsyncHandleWrite(c->ctx);
    }
}


/* at a worker's exit: no retry, no resolution under way, no connection */

void
ngx_icp_gate_redis_close(ngx_icp_gate_redis_conn_t *c)
{
    if (c->retry.timer_set) {
        ngx_del_timer(&c->retry);
    }

    if (c->resolving) {
        ngx_icp_gate_resolve_cancel(c->resolving);
        c->resolving = NULL;
    }

    ngx_icp_gate_redis_drop(c);
}


void
ngx_icp_gate_redis_conn_init(ngx_icp_gate_redis_conn_t *c, char *role,
    ngx_log_t *log)
{
    ngx_memzero(c, sizeof(ngx_icp_gate_redis_conn_t));

    c->role = role;
    ngx_queue_init(&c->cmds);

    ngx_icp_gate_timer_init(&c->timer, ngx_icp_gate_redis_deadline, log);

    ngx_icp_gate_timer_init(&c->retry, ngx_icp_gate_redis_retry, log);
}


void
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

    /* where a connection closed for idleness opens again, without waiting */

    if (host != (char *) c->addr) {
        ngx_cpystrn(c->addr, (u_char *) host, sizeof(c->addr));
    }

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
    c->idle = 0;
    c->lost = 0;
    c->backoff_was = c->backoff;
    c->answered = ngx_current_msec;
    c->used = ngx_current_msec;

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

    if (c->connected) {
        c->connected(c);
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

ngx_icp_gate_redis_cmd_t *
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

void
ngx_icp_gate_redis_drop(ngx_icp_gate_redis_conn_t *c)
{
    redisAsyncContext  *ac;

    ac = c->ctx;

    ngx_icp_gate_redis_gone(c, 0);

    if (ac) {
        redisAsyncFree(ac);
    }

    ngx_icp_gate_redis_schedule(c);
}


/* the connection is no more; its commands' callbacks may still run */

static void
ngx_icp_gate_redis_gone(ngx_icp_gate_redis_conn_t *c, ngx_uint_t closed)
{
    if (c->ready) {
        ngx_icp_gate_gauge(redis_ready, -1);
    }

    /*
     * a worker's exit drops its connections, and an exiting worker its
     * invalidation channel once the new one listens: no reconnect follows
     */

    if (c->ctx && !ngx_icp_gate_redis_exiting && !ngx_exiting) {
        ngx_icp_gate_count(redis_reconnects);
    }


    c->ctx = NULL;
    c->ready = 0;
    c->setups = 0;

    if (c->timer.timer_set) {
        ngx_del_timer(&c->timer);
    }

    if (c->gone_handler) {
        c->gone_handler(c, closed);
    }
}


/* every failure to connect, or to stay connected, comes this way */

static void
ngx_icp_gate_redis_schedule(ngx_icp_gate_redis_conn_t *c)
{
    if (ngx_icp_gate_redis_exiting || ngx_exiting || ngx_quit
        || ngx_terminate)
    {
        return;
    }

    if (!c->failing) {
        c->failing = 1;
        ngx_icp_gate_gauge(redis_failing, 1);
    }

    if (c->retry.timer_set) {
        return;
    }

    c->backoff = c->backoff ? ngx_min(c->backoff * 2,
                                      NGX_ICP_GATE_REDIS_BACKOFF_MAX)
                            : NGX_ICP_GATE_REDIS_BACKOFF_MIN;

    ngx_add_timer(&c->retry, ngx_max(c->backoff, c->pause));
}


/* cmd: the record of the command's reply, NULL for a part of a group */

ngx_int_t
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
    c->used = ngx_current_msec;

    if (cmd == NULL || cmd->what == NULL) {
        ngx_log_debug3(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: redis %*s sent, %ui pending",
                       argvlen[0], argv[0], c->pending);

    } else {
        ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: redis %s sent, %ui pending",
                       cmd->what, c->pending);
    }

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


ngx_icp_gate_redis_cmd_t *
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

void
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


void
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
    c->used = ngx_current_msec;

    /*
     * a Redis that answers, not one that only accepts, resets the backoff;
     * the invalidation channel's, only once it has subscribed
     */

    if (reply->type != REDIS_REPLY_ERROR && !c->subscriber) {
        c->backoff = 0;
    }
}


/* a command with a reply whose deadline is watched */

ngx_int_t
ngx_icp_gate_redis_read(ngx_icp_gate_redis_conn_t *c, const char *what,
    redisCallbackFn *reply, ngx_icp_gate_redis_pt handler, void *data,
    ngx_uint_t argc, const char **argv, size_t *argvlen)
{
    ngx_icp_gate_redis_cmd_t  *cmd;

    ngx_icp_gate_redis_wake(c);

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

    cmd->what = what;
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


/* a line now and then about a Redis that is late, not one per command */

void
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

size_t
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

size_t
ngx_icp_gate_redis_key(u_char *buf, const char *kind, ngx_str_t *domain)
{
    u_char  *p;

    p = ngx_cpymem(buf, ngx_icp_gate_redis_conf->prefix.data,
                   ngx_icp_gate_redis_conf->prefix.len);
    p = ngx_cpymem(p, kind, ngx_strlen(kind));
    p = ngx_cpymem(p, domain->data, domain->len);

    return p - buf;
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
            ngx_icp_gate_redis_gone(c, 0);
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
    u_char                     *why;
    ngx_uint_t                  level;
    ngx_icp_gate_redis_conn_t  *c;

    c = ac->data;

    if (ac != c->ctx) {
        return;
    }

    why = ngx_icp_gate_hiredis_malformed(ac);

    if (why) {

        /*
         * a server that answers the setup and then sends what no Redis
         * would is not asked again at once: the backoff grows as for a
         * failed setup; logged once while it goes on (the channel says so
         * in its own words)
         */

        c->backoff = c->backoff_was;

        if (!c->subscriber && ngx_icp_gate_hiredis_episode(&c->malformed)) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "icp_gate: redis %V connection for %s closed for "
                          "a malformed reply (%s); not logged again while "
                          "such replies go on",
                          &ngx_icp_gate_redis_conf->name, c->role, why);
        }

    } else {

        /* a Redis "timeout" closes idle connections: no error then */

        level = c->lost ? NGX_LOG_ERR : NGX_LOG_INFO;

        ngx_log_error(level, ngx_cycle->log, 0,
                      "icp_gate: redis %V connection lost: %s",
                      &ngx_icp_gate_redis_conf->name,
                      ac->errstr[0] ? ac->errstr : "closed");
    }

    /*
     * Redis's own "timeout" closing a connection with nothing pending: it
     * opens again when a command needs it, as one closed here would
     */

    if (why == NULL && c->lost == 0 && c->pending == 0 && c->ready
        && !c->subscriber && ngx_icp_gate_redis_conf->idle)
    {
        ngx_icp_gate_redis_rest(c, 1);
        return;
    }

    c->lost = 0;

    ngx_icp_gate_redis_gone(c, 1);
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

        if (c->failing) {
            c->failing = 0;
            ngx_icp_gate_gauge(redis_failing, -1);
        }

        if (c->ready_handler) {
            c->ready_handler(c);
        }
    }
}


/*
 * A read's reply counted and its record gone: its handler, NULL when the
 * read is late or the worker exits (hiredis fails what is pending as the
 * connections close)
 */

ngx_icp_gate_redis_pt
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

        /* one closed for idleness opens where the master is, when needed */

        if (c->idle) {
            if (moved) {
                c->addr[0] = '\0';
            }

            continue;
        }

        /* the invalidation channel: another worker's, or an exiting one's */

        if (c->role == NULL || (!moved && !c->waiting)
            || (c->subscriber && ngx_exiting))
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

void
ngx_icp_gate_redis_master_lost(void)
{
    if (ngx_icp_gate_redis_conf->sentinel.naddrs
        && !ngx_icp_gate_redis_exiting)
    {
        ngx_icp_gate_sentinel_ask();
    }
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

    if (ngx_queue_empty(&c->cmds) || c->subscriber) {
        return;
    }

    timeout = ngx_icp_gate_redis_conf->timeout;

    q = ngx_queue_head(&c->cmds);
    cmd = ngx_queue_data(q, ngx_icp_gate_redis_cmd_t, queue);

    since = cmd->sent;

    if (c->writer && (ngx_msec_int_t) (c->answered - since) > 0) {
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


/*
 * A connection closed for idleness opens again for the command that needs
 * it: at once, to the address it had (a name or the master Sentinel names
 * is looked up again only when that fails), so the command waits behind
 * the setup, a round trip or two, and is not sent elsewhere
 */

void
ngx_icp_gate_redis_wake(ngx_icp_gate_redis_conn_t *c)
{
    if (!c->idle || c->ctx || ngx_icp_gate_redis_exiting) {
        return;
    }

    c->idle = 0;
    ngx_icp_gate_gauge(redis_idle, -1);

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: redis connection for %s opens again",
                   c->role);

    if (c->addr[0] || ngx_icp_gate_redis_conf->path.len) {
        ngx_icp_gate_redis_connect_to(c, (char *) c->addr, c->port);
        return;
    }

    ngx_icp_gate_redis_connect(c);
}


/*
 * At rest, a worker holds no connection to Redis but for the node's
 * invalidation channel: one that has had nothing to do for the "idle"
 * time, its commands all answered, is closed, and counts as neither lost
 * nor down
 */

static void
ngx_icp_gate_redis_idle_check(ngx_event_t *ev)
{
    ngx_msec_t                  idle;
    ngx_uint_t                  i;
    ngx_icp_gate_redis_conn_t  *c, *conns[2];

    idle = ngx_icp_gate_redis_conf->idle;

    conns[0] = &ngx_icp_gate_redis_rd;
    conns[1] = &ngx_icp_gate_redis_wr;

    for (i = 0; i < 2; i++) {
        c = conns[i];

        if (c->ctx && c->ready && c->pending == 0
            && ngx_current_msec - c->used >= idle)
        {
            ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                          "icp_gate: redis %V connection for %s closed "
                          "after %Mms without a command",
                          &ngx_icp_gate_redis_conf->name, c->role,
                          ngx_current_msec - c->used);

            ngx_icp_gate_redis_rest(c, 0);
        }
    }

    ngx_add_timer(ev, ngx_min(idle, NGX_ICP_GATE_REDIS_IDLE_CHECK));
}


/* closed: by Redis, whose context hiredis frees once its callback returns */

static void
ngx_icp_gate_redis_rest(ngx_icp_gate_redis_conn_t *c, ngx_uint_t closed)
{
    redisAsyncContext  *ac;

    ac = c->ctx;

    c->ctx = NULL;
    c->ready = 0;
    c->setups = 0;
    c->idle = 1;

    ngx_icp_gate_gauge(redis_ready, -1);
    ngx_icp_gate_gauge(redis_idle, 1);

    if (c->timer.timer_set) {
        ngx_del_timer(&c->timer);
    }

    /* nothing is pending: no callback runs */

    if (!closed) {
        redisAsyncFree(ac);
    }
}
