
/*
 * Copyright (C) icp_gate authors
 *
 * The node's invalidation channel, in the one worker that listens: Redis
 * tells it of every change to a verdict's hash (CLIENT TRACKING ... BCAST,
 * redirected to the same connection once it has subscribed to
 * __redis__:invalidate, which works with RESP2); subscribing each second
 * once more to a channel of its own, which Redis confirms, shows the
 * channel is still there.
 *
 * A reload starts another worker 0, which sets up a channel of its own:
 * the old one, exiting, listens on until the new one listens and the old
 * one heard a beat after that, so that no change falls between the two
 * (the zone keeps count: ngx_icp_gate_cache_listen()).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_icp_gate_redis_channel.h"
#include "ngx_icp_gate_hiredis.h"
#include "ngx_icp_gate_socket.h"


/*
 * A beat each second; the channel is lost when a beat is not heard back
 * this much past twice the timeout; asked again this long after a Redis
 * that does not track keys said so
 */
#define NGX_ICP_GATE_REDIS_BEAT_EVERY    1000
#define NGX_ICP_GATE_REDIS_BEAT_GRACE    2000
#define NGX_ICP_GATE_REDIS_UNTRACKABLE   60000

/*
 * An exiting worker's channel, kept for the next configuration's, looks
 * for it this often, and waits for it at most twice the timeout and this
 */
#define NGX_ICP_GATE_REDIS_HANDOVER_EVERY  100
#define NGX_ICP_GATE_REDIS_HANDOVER_GRACE  1000

#define NGX_ICP_GATE_REDIS_CHANNEL       "__redis__:invalidate"

/* what was wrong with a reply the channel refused, for the log */
#define NGX_ICP_GATE_REDIS_WHY_LEN       128

#define NGX_ICP_GATE_REDIS_BEAT_LEN                                         \
    (NGX_ICP_GATE_REDIS_PREFIX_MAX + sizeof("beat:")                          \
     + NGX_ICP_GATE_REDIS_OWNER_LEN)


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
static redisReply *ngx_icp_gate_redis_track_keys(redisReply *keys);
static void ngx_icp_gate_redis_track_refuse(ngx_icp_gate_redis_conn_t *c,
    char *what, const char *detail);
static void ngx_icp_gate_redis_track_lost(ngx_icp_gate_redis_conn_t *c,
    ngx_uint_t closed);
static void ngx_icp_gate_redis_track_malformed(ngx_icp_gate_redis_conn_t *c,
    u_char *why);
static void ngx_icp_gate_redis_track_exit(redisAsyncContext *ac);
static ngx_int_t ngx_icp_gate_redis_hand_over(void);
static void ngx_icp_gate_redis_track_leave(void);
static void ngx_icp_gate_redis_handover_end(void);
static void ngx_icp_gate_redis_handover_timeout(ngx_event_t *ev);
static void ngx_icp_gate_redis_beat(ngx_event_t *ev);
static void ngx_icp_gate_redis_beat_send(ngx_icp_gate_redis_conn_t *c);
static ngx_int_t ngx_icp_gate_redis_subscribe(redisAsyncContext *ac,
    ngx_uint_t all);


static ngx_event_t                  ngx_icp_gate_redis_beat_ev;
static ngx_msec_t                   ngx_icp_gate_redis_tr_since;
static ngx_msec_t                   ngx_icp_gate_redis_beat_sent;
static ngx_uint_t                   ngx_icp_gate_redis_tracking;
static ngx_uint_t                   ngx_icp_gate_redis_subscribing;
static ngx_uint_t                   ngx_icp_gate_redis_untrackable;
static ngx_str_t                    ngx_icp_gate_redis_beat_channel;
static u_char        ngx_icp_gate_redis_beat_name[NGX_ICP_GATE_REDIS_BEAT_LEN];

/* the channel's context, only to ask hiredis why it went */
static redisAsyncContext           *ngx_icp_gate_redis_tr_ctx;
static ngx_icp_gate_hiredis_episode_t  ngx_icp_gate_redis_tr_malformed;
static u_char         ngx_icp_gate_redis_tr_why[NGX_ICP_GATE_REDIS_WHY_LEN];

/* exiting, the channel listens on for the next configuration's */
static ngx_uint_t                   ngx_icp_gate_redis_handing_over;
static ngx_event_t                  ngx_icp_gate_redis_handover_ev;

/* closed on purpose, as the worker exits */
static ngx_uint_t                   ngx_icp_gate_redis_left;


/* in the worker that listens, after ngx_icp_gate_redis_conns_init() */

void
ngx_icp_gate_redis_channel_init(ngx_cycle_t *cycle)
{
    u_char                     *p;
    ngx_icp_gate_redis_conn_t  *c;
    ngx_icp_gate_redis_conf_t  *rcf;

    rcf = ngx_icp_gate_redis_conf;
    c = &ngx_icp_gate_redis_tr;

    ngx_icp_gate_redis_tracking = 0;
    ngx_icp_gate_redis_untrackable = 0;
    ngx_icp_gate_redis_beat_sent = 0;
    ngx_icp_gate_redis_handing_over = 0;
    ngx_icp_gate_redis_left = 0;

    ngx_icp_gate_redis_conn_init(c, "invalidations", cycle->log);

    c->subscriber = 1;
    c->connected = ngx_icp_gate_redis_track_start;
    c->gone_handler = ngx_icp_gate_redis_track_lost;

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

    /* the one timer of ours an exiting worker waits for: it is bounded */

    ngx_icp_gate_timer_init(&ngx_icp_gate_redis_handover_ev,
                            ngx_icp_gate_redis_handover_timeout,
                            cycle->log);
    ngx_icp_gate_redis_handover_ev.cancelable = 0;

    ngx_icp_gate_redis_connect(c);
    ngx_add_timer(&ngx_icp_gate_redis_beat_ev, NGX_ICP_GATE_REDIS_BEAT_EVERY);
}


void
ngx_icp_gate_redis_channel_done(void)
{
    ngx_icp_gate_redis_handover_end();

    if (ngx_icp_gate_redis_beat_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_redis_beat_ev);
    }

    ngx_icp_gate_redis_close(&ngx_icp_gate_redis_tr);
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
    ngx_icp_gate_redis_tr_ctx = c->ctx;

    ngx_icp_gate_hiredis_on_exit(c->ctx, ngx_icp_gate_redis_track_exit);

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

    /* a connection's id is positive: tracking redirected elsewhere is not */

    if (reply->type != REDIS_REPLY_INTEGER || reply->integer <= 0) {
        ngx_icp_gate_redis_track_refuse(c, "CLIENT ID answered with",
            reply->type != REDIS_REPLY_INTEGER
            ? ngx_icp_gate_hiredis_type(reply->type)
            : reply->integer == 0 ? "0" : "a negative number");
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

    if (reply->type != REDIS_REPLY_STATUS) {
        ngx_icp_gate_redis_track_refuse(c, "CLIENT TRACKING answered with",
                                        ngx_icp_gate_hiredis_type(reply->type));
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
    ngx_icp_gate_redis_tr.pause = NGX_ICP_GATE_REDIS_UNTRACKABLE;
}


static void
ngx_icp_gate_redis_track_message(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                 *reply = r;
    redisReply                 *kind, *channel, *bad;
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
        /* Redis's confirmation, not what anyone may publish there */

        if (ngx_strcmp(kind->str, "subscribe") != 0) {
            return;
        }

        ngx_icp_gate_redis_beat_sent = 0;

        if (ngx_icp_gate_redis_tracking) {
            (void) ngx_icp_gate_redis_conf->tracked(NGX_ICP_GATE_REDIS_HEARD,
                                                    NULL);

            /* the beat that vouches for the new channel: no need to wait */

            if (ngx_icp_gate_redis_handing_over) {
                (void) ngx_icp_gate_redis_hand_over();
            }

            return;
        }

        /* subscribed to both channels: every change is told from now on */

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "icp_gate: redis %V tells this node of every change",
                      &ngx_icp_gate_redis_conf->name);

        c->backoff = 0;
        ngx_icp_gate_redis_tracking = 1;
        ngx_icp_gate_redis_subscribing = 0;
        ngx_icp_gate_redis_untrackable = 0;
        c->pause = 0;

        (void) ngx_icp_gate_redis_conf->tracked(NGX_ICP_GATE_REDIS_TRACKED,
                                                NULL);
        return;
    }

    if (ngx_strcmp(kind->str, "message") != 0 || !ngx_icp_gate_redis_tracking)
    {
        return;
    }

    bad = ngx_icp_gate_redis_track_keys(reply->element[2]);

    if (bad) {
        ngx_icp_gate_redis_track_refuse(c, "an invalidation with a key that is",
                                        ngx_icp_gate_hiredis_type(bad->type));
    }
}


/*
 * An invalidation: one key (Redis 6.0), several, or none for a flush.
 * Returns what is no key, if any, and then tells nothing: a change it
 * stood for would go untold.
 */

static redisReply *
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

        (void) rcf->tracked(NGX_ICP_GATE_REDIS_CHANGED, NULL);
        return NULL;
    }

    if (keys->type == REDIS_REPLY_ARRAY) {
        list = keys->element;
        n = keys->elements;

    } else {
        list = &keys;
        n = 1;
    }

    for (i = 0; i < n; i++) {
        if (list[i]->type != REDIS_REPLY_STRING) {
            return list[i];
        }
    }

    skip = rcf->prefix.len + sizeof("domain:") - 1;

    for (i = 0; i < n; i++) {
        key = list[i];

        /* not a verdict's: published there by someone else */

        if ((size_t) key->len <= skip
            || (size_t) key->len - skip > NGX_ICP_GATE_DOMAIN_LEN)
        {
            continue;
        }

        domain.data = (u_char *) key->str + skip;
        domain.len = key->len - skip;

        ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: redis says \"%V\" changed", &domain);

        (void) rcf->tracked(NGX_ICP_GATE_REDIS_CHANGED, &domain);
    }

    return NULL;
}


/* a reply of the channel's own that it cannot use: it goes, as malformed */

static void
ngx_icp_gate_redis_track_refuse(ngx_icp_gate_redis_conn_t *c, char *what,
    const char *detail)
{
    u_char  *p;

    p = ngx_snprintf(ngx_icp_gate_redis_tr_why,
                     NGX_ICP_GATE_REDIS_WHY_LEN - 1, "%s %s", what, detail);
    *p = '\0';

    ngx_icp_gate_redis_drop(c);
}


static void
ngx_icp_gate_redis_track_lost(ngx_icp_gate_redis_conn_t *c, ngx_uint_t closed)
{
    u_char  *why;

    /* refused here, or by the reader (ngx_icp_gate_hiredis.c) */

    why = ngx_icp_gate_redis_tr_why[0]
          ? ngx_icp_gate_redis_tr_why
          : ngx_icp_gate_hiredis_malformed(ngx_icp_gate_redis_tr_ctx);

    ngx_icp_gate_redis_tr_ctx = NULL;

    if (why) {
        ngx_icp_gate_redis_track_malformed(c, why);
        ngx_icp_gate_redis_tr_why[0] = '\0';

    } else if (closed && ngx_icp_gate_redis_subscribing) {

        /*
         * Redis took the tracking, then closed the channel rather than let
         * it subscribe: a user without the right to (ACL), or a proxy
         */

        ngx_icp_gate_redis_untrackable_now("closed the invalidation channel "
                                           "as it subscribed",
                                           "may this user SUBSCRIBE?");
    }

    ngx_icp_gate_redis_subscribing = 0;

    if (!ngx_icp_gate_redis_tracking) {
        return;
    }

    ngx_icp_gate_redis_tracking = 0;

    if (ngx_icp_gate_redis_exiting || ngx_icp_gate_redis_left) {
        return;
    }

    /* a malformed reply said so already */

    if (why == NULL) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "icp_gate: redis %V invalidation channel lost: every "
                      "copy of this node counts as stale until it is back",
                      &ngx_icp_gate_redis_conf->name);
    }

    (void) ngx_icp_gate_redis_conf->tracked(NGX_ICP_GATE_REDIS_UNTRACKED,
                                            NULL);

    /* exiting: no other will be opened, nor is there anything to hand on */

    if (ngx_exiting) {
        ngx_icp_gate_redis_left = 1;
        ngx_icp_gate_redis_handover_end();
    }
}


/*
 * The worker begins a graceful exit.  A stop, or a channel not set up:
 * it closes now.  A reload: it listens on until the next configuration's
 * channel is set up and vouched for (ngx_icp_gate_redis_beat()), or
 * twice the timeout and a second have passed.  Told again (the
 * worker_shutdown_timeout), it closes.
 */

static void
ngx_icp_gate_redis_track_exit(redisAsyncContext *ac)
{
    if (!ngx_icp_gate_redis_tracking || ngx_icp_gate_redis_handing_over) {
        ngx_icp_gate_redis_track_leave();
        return;
    }

    if (ngx_icp_gate_redis_hand_over() != NGX_AGAIN) {
        return;
    }

    ngx_icp_gate_redis_handing_over = 1;

    ngx_add_timer(&ngx_icp_gate_redis_handover_ev,
                  2 * ngx_icp_gate_redis_conf->timeout
                  + NGX_ICP_GATE_REDIS_HANDOVER_GRACE);

    /* the beat that may vouch for the new channel goes now */

    if (ngx_icp_gate_redis_beat_sent == 0) {
        ngx_icp_gate_redis_beat_send(ac->data);
    }

    if (ngx_icp_gate_redis_beat_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_redis_beat_ev);
    }

    ngx_add_timer(&ngx_icp_gate_redis_beat_ev,
                  NGX_ICP_GATE_REDIS_HANDOVER_EVERY);
}


/*
 * The channel of an exiting worker closes, unless it must listen on
 * (NGX_AGAIN): a stop, or the new configuration's channel listens and is
 * vouched for
 */

static ngx_int_t
ngx_icp_gate_redis_hand_over(void)
{
    ngx_int_t  rc;

    rc = ngx_icp_gate_redis_conf->tracked(NGX_ICP_GATE_REDIS_LEAVING, NULL);

    if (rc == NGX_AGAIN) {
        return rc;
    }

    if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "icp_gate: redis %V invalidation channel of an exiting "
                      "worker closed: the new configuration's listens",
                      &ngx_icp_gate_redis_conf->name);
    }

    ngx_icp_gate_redis_track_leave();

    return rc;
}


/* the channel closes on purpose, as the worker exits */

static void
ngx_icp_gate_redis_track_leave(void)
{
    ngx_icp_gate_redis_left = 1;
    ngx_icp_gate_redis_handover_end();

    if (ngx_icp_gate_redis_beat_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_redis_beat_ev);
    }

    /*
     * now, not at the worker's end: an old worker may live on for hours
     * with its live sessions, and must not count as listening meanwhile
     */

    (void) ngx_icp_gate_redis_conf->tracked(NGX_ICP_GATE_REDIS_LEFT, NULL);

    ngx_icp_gate_redis_close(&ngx_icp_gate_redis_tr);
}


static void
ngx_icp_gate_redis_handover_end(void)
{
    ngx_icp_gate_redis_handing_over = 0;

    if (ngx_icp_gate_redis_handover_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_redis_handover_ev);
    }
}


/* the zone then counts every copy as stale, if it must */

static void
ngx_icp_gate_redis_handover_timeout(ngx_event_t *ev)
{
    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "icp_gate: redis %V invalidation channel of an exiting "
                  "worker closed: the new configuration's did not take over "
                  "within %Mms", &ngx_icp_gate_redis_conf->name,
                  2 * ngx_icp_gate_redis_conf->timeout
                  + NGX_ICP_GATE_REDIS_HANDOVER_GRACE);

    ngx_icp_gate_redis_track_leave();
}


/*
 * Logged once while malformed replies go on, a minute apart at most; the
 * backoff grows meanwhile as it does for a failed setup, though the
 * channel may have subscribed (which resets it) before the reply came
 */

static void
ngx_icp_gate_redis_track_malformed(ngx_icp_gate_redis_conn_t *c, u_char *why)
{
    c->backoff = c->backoff_was;

    if (!ngx_icp_gate_hiredis_episode(&ngx_icp_gate_redis_tr_malformed)) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "icp_gate: redis %V invalidation channel closed for a "
                  "malformed reply (%s): every copy of this node counts as "
                  "stale until it is back; not logged again while such "
                  "replies go on", &ngx_icp_gate_redis_conf->name, why);
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

    /* an exiting worker that keeps no channel for the next configuration */

    if (ngx_exiting && !ngx_icp_gate_redis_handing_over) {
        ngx_icp_gate_redis_track_leave();
        return;
    }

    if (ngx_icp_gate_redis_handing_over
        && ngx_icp_gate_redis_hand_over() != NGX_AGAIN)
    {
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

        /* the handover, if any, ended with it */

        if (ngx_icp_gate_redis_left) {
            return;
        }

    } else if (c->ctx && ngx_icp_gate_redis_tracking
               && ngx_icp_gate_redis_beat_sent == 0)
    {
        ngx_icp_gate_redis_beat_send(c);
    }

    if (!ngx_icp_gate_redis_tracking && !ngx_icp_gate_redis_untrackable
        && rd->ready
        && ngx_current_msec - rd->answered
           < NGX_ICP_GATE_REDIS_BEAT_EVERY + ngx_icp_gate_redis_conf->timeout)
    {
        (void) ngx_icp_gate_redis_conf->tracked(NGX_ICP_GATE_REDIS_UNTRACKED,
                                                NULL);
    }

    ngx_add_timer(ev, ngx_icp_gate_redis_handing_over
                      ? NGX_ICP_GATE_REDIS_HANDOVER_EVERY
                      : NGX_ICP_GATE_REDIS_BEAT_EVERY);
}


/* the zone notes where the set-ups stand as the beat goes */

static void
ngx_icp_gate_redis_beat_send(ngx_icp_gate_redis_conn_t *c)
{
    (void) ngx_icp_gate_redis_conf->tracked(NGX_ICP_GATE_REDIS_BEAT, NULL);

    if (ngx_icp_gate_redis_subscribe(c->ctx, 0) == NGX_OK) {
        ngx_icp_gate_redis_beat_sent = ngx_current_msec;
    }
}
