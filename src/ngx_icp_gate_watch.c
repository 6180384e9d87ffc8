
/*
 * Copyright (C) icp_gate authors
 *
 * One worker of a node listens to Redis's invalidations (one connection
 * a node, whatever its number of workers): it reads a changed domain's
 * verdict again into the shared zone, and the zone tells every worker,
 * which looks for news a few times a second with one read of shared
 * memory.  A worker hands each changed domain to its watchers: the
 * protocol modules check their live sessions on it again.
 *
 * Every copy expires when a change may have gone untold: when no channel
 * listened for a while.  A reload is no such while: the new worker 0's
 * channel is set up while the old one listens, which vouches for it
 * (ngx_icp_gate_cache_listen()).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_icp_gate_watch.h"
#include "ngx_icp_gate_cache.h"
#include "ngx_icp_gate_socket.h"


/* how often a worker looks for changed domains (ms) */
#define NGX_ICP_GATE_WATCH_EVERY     50

#define NGX_ICP_GATE_WATCHERS        4

/*
 * "any domain" (more changed than the zone remembers, a burst) at most
 * this often (ms): every live session of the worker is checked again
 */
#define NGX_ICP_GATE_WATCH_ANY_EVERY 1000

/*
 * A channel set up while another listened waits this long, beyond twice
 * the Redis timeout, for the other to vouch for it (ms): the other beats
 * each second
 */
#define NGX_ICP_GATE_WATCH_VOUCH     2000


static ngx_int_t ngx_icp_gate_watch_tracked(ngx_uint_t event,
    ngx_str_t *domain);
static void ngx_icp_gate_watch_poll(ngx_event_t *ev);
static void ngx_icp_gate_watch_changed(void *data, ngx_str_t *domain);


#if (NGX_DEBUG)
static ngx_str_t  ngx_icp_gate_watch_any = ngx_string("any domain");
#endif


static ngx_icp_gate_cache_t   *ngx_icp_gate_watch_cache;
static ngx_event_t             ngx_icp_gate_watch_ev;
static ngx_uint_t              ngx_icp_gate_watch_seen;
static ngx_msec_t              ngx_icp_gate_watch_any_at;
static ngx_uint_t              ngx_icp_gate_watch_any_due;
static ngx_icp_gate_watch_pt   ngx_icp_gate_watchers[NGX_ICP_GATE_WATCHERS];
static ngx_uint_t              ngx_icp_gate_nwatchers;

/* the listening worker's: where the set-ups stood at the beat in flight */
static ngx_uint_t              ngx_icp_gate_watch_joins;
static ngx_msec_t              ngx_icp_gate_watch_joined_at;
static ngx_msec_t              ngx_icp_gate_watch_vouch;


/* before ngx_icp_gate_lookup_init(), which opens the channel */

ngx_int_t
ngx_icp_gate_watch_init(ngx_cycle_t *cycle, ngx_icp_gate_lookup_conf_t *lcf)
{
    /*
     * the watchers hear of purges and of lookups that brought another
     * verdict in every configuration; of Redis's changes, where a worker
     * listens to them
     */

    ngx_icp_gate_watch_cache = lcf->zone->data;

    /* what changed before this worker started is in the zone already */

    ngx_icp_gate_cache_changes(ngx_icp_gate_watch_cache,
                               &ngx_icp_gate_watch_seen, NULL, NULL);

    if (ngx_worker == 0 && lcf->redis.name.len && lcf->redis.tracking) {
        lcf->redis.tracked = ngx_icp_gate_watch_tracked;
        ngx_icp_gate_watch_vouch = 2 * lcf->redis.timeout
                                   + NGX_ICP_GATE_WATCH_VOUCH;
    }

    ngx_icp_gate_timer_init(&ngx_icp_gate_watch_ev, ngx_icp_gate_watch_poll,
                            cycle->log);

    ngx_add_timer(&ngx_icp_gate_watch_ev, NGX_ICP_GATE_WATCH_EVERY);

    return NGX_OK;
}


void
ngx_icp_gate_watch_done(void)
{
    if (ngx_icp_gate_watch_ev.timer_set) {
        ngx_del_timer(&ngx_icp_gate_watch_ev);
    }

    /* the channel closes now, if it still listened */

    if (ngx_icp_gate_watch_cache) {
        (void) ngx_icp_gate_watch_tracked(NGX_ICP_GATE_REDIS_LEFT, NULL);
    }

    ngx_icp_gate_watch_cache = NULL;
}


/* once per handler: a reload without a master registers again */

ngx_int_t
ngx_icp_gate_watch_add(ngx_icp_gate_watch_pt handler)
{
    ngx_uint_t  i;

    for (i = 0; i < ngx_icp_gate_nwatchers; i++) {
        if (ngx_icp_gate_watchers[i] == handler) {
            return NGX_OK;
        }
    }

    if (ngx_icp_gate_nwatchers == NGX_ICP_GATE_WATCHERS) {
        return NGX_ERROR;
    }

    ngx_icp_gate_watchers[ngx_icp_gate_nwatchers++] = handler;

    return NGX_OK;
}


/*
 * In the worker that listens.  Without a channel every copy may be out
 * of date: each is refreshed when next used (and it answers meanwhile),
 * once when a channel is back and each second while Redis answers
 * without one.  A channel set up while another listens expires nothing,
 * unless the other goes before it vouched for the new one.
 */

static ngx_int_t
ngx_icp_gate_watch_tracked(ngx_uint_t event, ngx_str_t *domain)
{
    ngx_icp_gate_cache_t  *cache;

    cache = ngx_icp_gate_watch_cache;

    if (cache == NULL) {
        return NGX_OK;
    }

    switch (event) {

    case NGX_ICP_GATE_REDIS_CHANGED:

        if (domain) {
            ngx_icp_gate_lookup_refresh(domain,
                                        ngx_icp_gate_hash(domain->data,
                                                          domain->len));
            return NGX_OK;
        }

        ngx_log_debug0(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: every copy expires: Redis flushed");

        ngx_icp_gate_cache_expire_all(cache);
        return NGX_OK;

    case NGX_ICP_GATE_REDIS_TRACKED:

        ngx_icp_gate_watch_joined_at = ngx_current_msec;

        if (ngx_icp_gate_cache_listen(cache) == NGX_OK) {
            ngx_log_debug0(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                           "icp_gate: channel set up while another listens");

        } else {
            ngx_log_debug0(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                           "icp_gate: every copy expires: channel set up");
        }

        return NGX_OK;

    case NGX_ICP_GATE_REDIS_UNTRACKED:
        ngx_icp_gate_cache_unheard(cache);
        return NGX_OK;

    case NGX_ICP_GATE_REDIS_BEAT:
        ngx_icp_gate_watch_joins = ngx_icp_gate_cache_joins(cache);
        return NGX_OK;

    case NGX_ICP_GATE_REDIS_HEARD:
        ngx_icp_gate_cache_heard(cache, ngx_icp_gate_watch_joins,
                                 ngx_current_msec
                                 - ngx_icp_gate_watch_joined_at
                                 >= ngx_icp_gate_watch_vouch);
        return NGX_OK;

    case NGX_ICP_GATE_REDIS_LEFT:

        /* a change told and still being read is lost with the worker */

        ngx_icp_gate_cache_unlisten(cache, ngx_icp_gate_lookup_refreshing());
        return NGX_OK;

    default: /* NGX_ICP_GATE_REDIS_LEAVING */
        return ngx_icp_gate_cache_handed_over(cache,
                                            ngx_icp_gate_lookup_refreshing());
    }
}


static void
ngx_icp_gate_watch_poll(ngx_event_t *ev)
{
    ngx_icp_gate_cache_changes(ngx_icp_gate_watch_cache,
                               &ngx_icp_gate_watch_seen,
                               ngx_icp_gate_watch_changed, NULL);

    if (ngx_icp_gate_watch_any_due
        && ngx_current_msec - ngx_icp_gate_watch_any_at
           >= NGX_ICP_GATE_WATCH_ANY_EVERY)
    {
        ngx_icp_gate_watch_changed(NULL, NULL);
    }

    ngx_add_timer(ev, NGX_ICP_GATE_WATCH_EVERY);
}


static void
ngx_icp_gate_watch_changed(void *data, ngx_str_t *domain)
{
    ngx_uint_t  i;

    if (domain == NULL) {

        /* a burst: its domains are checked a second later, all at once */

        if (ngx_current_msec - ngx_icp_gate_watch_any_at
            < NGX_ICP_GATE_WATCH_ANY_EVERY)
        {
            ngx_icp_gate_watch_any_due = 1;
            return;
        }

        ngx_icp_gate_watch_any_due = 0;
        ngx_icp_gate_watch_any_at = ngx_current_msec;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: \"%V\" changed, telling the watchers",
                   domain ? domain : &ngx_icp_gate_watch_any);

    ngx_icp_gate_lookup_changed(domain,
                                domain ? ngx_icp_gate_hash(domain->data,
                                                           domain->len)
                                       : 0);

    for (i = 0; i < ngx_icp_gate_nwatchers; i++) {
        ngx_icp_gate_watchers[i](domain);
    }
}
