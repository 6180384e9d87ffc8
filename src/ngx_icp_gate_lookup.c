
/*
 * Copyright (C) icp_gate authors
 *
 * The lookup of a domain's verdict in the shared cache, then Redis, then
 * the filing API.  Concurrent first lookups of one domain share one
 * "flight": within a worker by the flight tree, across workers by the
 * cache entry's update lock; the workers that do not hold it look at the
 * cache again until the verdict is there.  A domain Redis says changed is
 * read again from Redis at once, and every worker hears of it.  A domain
 * icp_gate_file lists is never asked of the filing API: its verdict is the
 * file's unless Redis has a newer one of an operator or an import.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_icp_gate_lookup.h"
#include "ngx_icp_gate_cache.h"
#include "ngx_icp_gate_socket.h"
#include "ngx_icp_gate_throttle.h"
#include "ngx_icp_gate_metrics.h"


/*
 * A worker waiting for another one's lookup looks again after a quarter of
 * the time it has waited, within these bounds: at most a quarter late, and
 * a slow filing API is not polled hundreds of times a second.
 */
#define NGX_ICP_GATE_POLL_MIN        2
#define NGX_ICP_GATE_POLL_MAX        20

/*
 * A worker waiting for another node's filing API request tries its lock
 * again in the same way, less often: every node of a fleet does it
 */
#define NGX_ICP_GATE_FLEET_POLL_MIN  10
#define NGX_ICP_GATE_FLEET_POLL_MAX  250

/*
 * Verdicts the zone had no room for, kept by the worker while fresh: a
 * full zone never costs a filing API request a request.  With Redis's
 * invalidations, only this long (ms): they reach only the zone.
 */
#define NGX_ICP_GATE_ASIDE           64
#define NGX_ICP_GATE_ASIDE_TRACKED   1000

/*
 * Domains Redis said changed that a worker reads again at once, at most:
 * past that, in a burst, the copy only expires, to be read when next used
 */
#define NGX_ICP_GATE_REFRESHES       32

/*
 * Copies a reload's file changed, dropped from the zone at a time by one
 * worker, which thus never blocks for long, whatever the file
 */
#define NGX_ICP_GATE_FILE_DROPS      1000

typedef struct {
    uint32_t                    hash;
    ngx_uint_t                  epoch;      /* the zone's, when kept */
    ngx_msec_t                  expires;
    ngx_icp_gate_verdict_t      verdict;
    size_t                      len;
    u_char                      data[NGX_ICP_GATE_DOMAIN_LEN];
} ngx_icp_gate_aside_t;


typedef struct {
    ngx_str_node_t              sn;
    ngx_queue_t                 waiters;
    ngx_event_t                 event;
    ngx_msec_t                  started;
    uint32_t                    hash;
    unsigned                    owner:1;
    unsigned                    known:1;    /* a refresh: off the budget */
    unsigned                    fleet_lock:1;   /* held in Redis */
    unsigned                    fleet_wait:1;   /* for another's */
    unsigned                    asking:1;       /* the filing API */
    unsigned                    asked_api:1;    /* and it answered */
    unsigned                    listed:1;       /* by icp_gate_file */

    /* a known domain's copy: usable until then, whatever the tiers do */
    time_t                      usable;
    ngx_msec_t                  fleet_since;

    /* where the news stood when it began asking: a purge since bars it */
    ngx_icp_gate_cache_mark_t   began;
    ngx_icp_gate_cache_mark_t   read;       /* at the last look in Redis */
    uint64_t                    asked;      /* that look's Redis time */
    unsigned                    has_stale:1;
    unsigned                    detached:1; /* out of the tree: purged */
    ngx_icp_gate_verdict_t      stale;      /* answers if the refresh fails */
    u_char                      data[NGX_ICP_GATE_DOMAIN_LEN];
} ngx_icp_gate_flight_t;


/* a domain Redis said changed, read again */

typedef struct {
    ngx_icp_gate_cache_mark_t   read;
    uint32_t                    hash;
    size_t                      len;
    u_char                      data[NGX_ICP_GATE_DOMAIN_LEN];
} ngx_icp_gate_refresh_t;


static void ngx_icp_gate_waiter_timeout(ngx_event_t *ev);
static void ngx_icp_gate_waited_too_long(ngx_log_t *log, ngx_str_t *domain,
    ngx_uint_t stale);
static ngx_icp_gate_flight_t *ngx_icp_gate_flight_find(ngx_str_t *domain,
    uint32_t hash);
static ngx_icp_gate_flight_t *ngx_icp_gate_flight_create(ngx_str_t *domain,
    uint32_t hash, ngx_uint_t owner);
static void ngx_icp_gate_flight_run(ngx_event_t *ev);
static void ngx_icp_gate_flight_fetch(ngx_icp_gate_flight_t *f);
static void ngx_icp_gate_flight_ask_api(ngx_icp_gate_flight_t *f,
    ngx_uint_t absent);
static void ngx_icp_gate_flight_redis_failed(ngx_icp_gate_flight_t *f);
static void ngx_icp_gate_flight_redis_done(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v);
static void ngx_icp_gate_flight_lock(ngx_icp_gate_flight_t *f);
static void ngx_icp_gate_flight_lock_done(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v);
static void ngx_icp_gate_flight_api_done(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v);
static void ngx_icp_gate_flight_fail(ngx_icp_gate_flight_t *f,
    ngx_msec_t hold);
static void ngx_icp_gate_flight_finish(ngx_icp_gate_flight_t *f,
    ngx_int_t rc, ngx_icp_gate_verdict_t *v);
static void ngx_icp_gate_flight_store(ngx_icp_gate_flight_t *f,
    ngx_icp_gate_verdict_t *v, ngx_uint_t redis);
static ngx_int_t ngx_icp_gate_lookup_store(ngx_str_t *domain,
    uint32_t hash, ngx_icp_gate_verdict_t *v, ngx_uint_t redis,
    ngx_icp_gate_cache_mark_t *mark, ngx_uint_t flags);
static void ngx_icp_gate_flight_detach(ngx_icp_gate_flight_t *f);
static void ngx_icp_gate_refresh_done(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v);
static time_t ngx_icp_gate_ttl_of(ngx_icp_gate_verdict_t *v);
static time_t ngx_icp_gate_usable(ngx_icp_gate_verdict_t *v);
static void ngx_icp_gate_over_budget(void);
static ngx_int_t ngx_icp_gate_aside_get(ngx_str_t *domain, uint32_t hash,
    ngx_icp_gate_verdict_t *v);
static void ngx_icp_gate_aside_put(ngx_str_t *domain, uint32_t hash,
    ngx_icp_gate_verdict_t *v, ngx_msec_t fresh);
static ngx_msec_t ngx_icp_gate_lock_for(void);
static ngx_msec_t ngx_icp_gate_fleet_lock_ttl(void);
static ngx_msec_t ngx_icp_gate_fleet_hold_max(void);
static ngx_msec_t ngx_icp_gate_poll_delay(ngx_icp_gate_flight_t *f,
    ngx_msec_t min, ngx_msec_t max);
static void ngx_icp_gate_lookup_unwritten(ngx_str_t *domain,
    ngx_icp_gate_verdict_t *v, time_t ttl);
static void ngx_icp_gate_lookup_refused(ngx_str_t *domain,
    uint64_t version);
static void ngx_icp_gate_file_drop(ngx_event_t *ev);


#if (NGX_DEBUG)
static ngx_str_t  ngx_icp_gate_no_verdict = ngx_string("no verdict");
#endif


ngx_icp_gate_lookup_conf_t         *ngx_icp_gate_lookup_conf;
ngx_icp_gate_cache_t               *ngx_icp_gate_cache;

static ngx_rbtree_t                 ngx_icp_gate_flights;
static ngx_rbtree_node_t            ngx_icp_gate_flights_sentinel;
static ngx_icp_gate_aside_t        *ngx_icp_gate_aside;
static ngx_uint_t                   ngx_icp_gate_refreshes;

/* where the drop of a reload's changed copies has come */
static ngx_event_t                  ngx_icp_gate_file_dropping;
static u_char                      *ngx_icp_gate_file_dropped;
static ngx_uint_t                   ngx_icp_gate_file_left;


ngx_int_t
ngx_icp_gate_lookup_init(ngx_cycle_t *cycle, ngx_icp_gate_lookup_conf_t *lcf)
{
    ngx_icp_gate_lookup_conf = lcf;
    ngx_icp_gate_cache = lcf->zone->data;

    ngx_icp_gate_cache_init_worker(ngx_icp_gate_cache, lcf->stale);

    ngx_rbtree_init(&ngx_icp_gate_flights, &ngx_icp_gate_flights_sentinel,
                    ngx_str_rbtree_insert_value);

    ngx_icp_gate_aside = ngx_pcalloc(cycle->pool,
                                     NGX_ICP_GATE_ASIDE
                                     * sizeof(ngx_icp_gate_aside_t));
    if (ngx_icp_gate_aside == NULL) {
        return NGX_ERROR;
    }

    lcf->redis.unwritten = ngx_icp_gate_lookup_unwritten;
    lcf->redis.refused = ngx_icp_gate_lookup_refused;

    if (lcf->redis.name.len
        && ngx_icp_gate_redis_init(cycle, &lcf->redis) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (lcf->api.url.len && ngx_icp_gate_api_init(cycle, &lcf->api) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * the copies the previous configuration's file left, which the new
     * one changed: one worker drops them, from the event loop
     */

    if (lcf->file_changes.n && ngx_worker == 0) {
        ngx_icp_gate_file_dropped = lcf->file_changes.names;
        ngx_icp_gate_file_left = lcf->file_changes.n;

        ngx_icp_gate_timer_init(&ngx_icp_gate_file_dropping,
                                ngx_icp_gate_file_drop, cycle->log);
        ngx_add_timer(&ngx_icp_gate_file_dropping, 0);
    }

    return NGX_OK;
}


/*
 * Copies of domains the reload's file changed, a chunk at a time: each
 * purged from the zone (not from Redis), as an operator's purge does, so
 * that its next request takes its verdict from the new file at once, and
 * live sessions look again
 */

static void
ngx_icp_gate_file_drop(ngx_event_t *ev)
{
    u_char      *p;
    ngx_str_t    domain;
    ngx_uint_t   n;

    p = ngx_icp_gate_file_dropped;

    for (n = 0;
         n < NGX_ICP_GATE_FILE_DROPS && ngx_icp_gate_file_left;
         n++, ngx_icp_gate_file_left--)
    {
        domain.len = *p++;
        domain.data = p;
        p += domain.len;

        (void) ngx_icp_gate_lookup_purge(&domain,
                                         ngx_icp_gate_hash(domain.data,
                                                           domain.len));
    }

    ngx_icp_gate_file_dropped = p;

    if (ngx_icp_gate_file_left == 0) {
        ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                      "icp_gate: the zone's copies of the domains the file "
                      "changed are dropped");
        return;
    }

    if (!ngx_exiting) {
        ngx_add_timer(ev, 1);
    }
}


void
ngx_icp_gate_lookup_done(void)
{
    ngx_rbtree_node_t      *node, *root, *sentinel;
    ngx_icp_gate_flight_t  *f;

    if (ngx_icp_gate_lookup_conf == NULL) {
        return;
    }

    /*
     * the domains this worker was asking about: the other workers, and
     * those of a reload, take them over now, not at the locks' deadline
     */

    root = ngx_icp_gate_flights.root;
    sentinel = ngx_icp_gate_flights.sentinel;

    if (root != sentinel) {
        for (node = ngx_rbtree_min(root, sentinel);
             node;
             node = ngx_rbtree_next(&ngx_icp_gate_flights, node))
        {
            f = (ngx_icp_gate_flight_t *) node;

            if (f->owner) {
                ngx_icp_gate_cache_release(ngx_icp_gate_cache, &f->sn.str,
                                           f->hash, 0, &f->began);
            }

            /* the fleet's too: another node asks now, not at its expiry */

            if (f->fleet_lock) {
                ngx_icp_gate_redis_unlock(&f->sn.str);
            }
        }
    }

    if (ngx_icp_gate_lookup_conf->redis.name.len) {
        ngx_icp_gate_redis_done();
    }

    if (ngx_icp_gate_lookup_conf->api.url.len) {
        ngx_icp_gate_api_done();
    }
}


/* past the zone's hit path, ngx_icp_gate_lookup() in the header */

ngx_int_t
ngx_icp_gate_lookup_miss(ngx_str_t *domain, uint32_t hash,
    ngx_icp_gate_verdict_t *v)
{
    ngx_int_t               rc;
    ngx_uint_t              flags;
    ngx_icp_gate_flight_t  *f;

    /*
     * before the zone's mutex: a verdict the zone had no room for, fresh
     * no longer than the zone would have kept it (so it hides no newer
     * one longer either), and asking the zone would only make it evict
     * others for a placeholder
     */

    if (ngx_icp_gate_aside_get(domain, hash, v) == NGX_OK) {
        ngx_icp_gate_count_lookup(NGX_ICP_GATE_TIER_ZONE,
                                  NGX_ICP_GATE_OUTCOME_HIT);
        return NGX_OK;
    }

    f = ngx_icp_gate_flight_find(domain, hash);

    /* a lookup a purge overtook answers only those who waited for it */

    if (f && f->owner
        && ngx_icp_gate_cache_purged(ngx_icp_gate_cache, domain, hash,
                                     &f->began))
    {
        ngx_icp_gate_flight_detach(f);
        f = NULL;
    }

    rc = ngx_icp_gate_cache_lookup(ngx_icp_gate_cache, domain, hash,
                                   f ? 0 : ngx_icp_gate_lock_for(),
                                   ngx_icp_gate_lookup_conf->stale, v,
                                   &flags);

    if (rc == NGX_OK && (flags & NGX_ICP_GATE_CACHE_STALE)) {

        /*
         * expired too long ago to answer at once: the caller waits for the
         * refresh, and gets this copy only if the refresh fails
         */

        ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: \"%V\" is stale, waiting for its refresh",
                       domain);

        ngx_icp_gate_count_lookup(NGX_ICP_GATE_TIER_ZONE,
                                  NGX_ICP_GATE_OUTCOME_STALE);

        if (f == NULL) {
            f = ngx_icp_gate_flight_create(domain, hash,
                                           (flags & NGX_ICP_GATE_CACHE_LOCKED)
                                           ? 1 : 0);
            if (f == NULL) {
                if (flags & NGX_ICP_GATE_CACHE_LOCKED) {
                    ngx_icp_gate_cache_release(ngx_icp_gate_cache, domain,
                                               hash, 0, NULL);
                }

                return NGX_OK;
            }
        }

        f->stale = *v;
        f->has_stale = 1;
        f->known = 1;
        f->usable = ngx_icp_gate_usable(v);

        return NGX_AGAIN;
    }

    if (rc == NGX_OK) {

        ngx_icp_gate_count_lookup(NGX_ICP_GATE_TIER_ZONE,
                                  (flags & NGX_ICP_GATE_CACHE_LOCKED)
                                  ? NGX_ICP_GATE_OUTCOME_STALE
                                  : NGX_ICP_GATE_OUTCOME_HIT);

        if (flags & NGX_ICP_GATE_CACHE_LOCKED) {
            /* expired: the old verdict answers while it is refreshed */

            ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                           "icp_gate: \"%V\" expired, refreshing it", domain);

            f = ngx_icp_gate_flight_create(domain, hash, 1);

            if (f == NULL) {
                ngx_icp_gate_cache_release(ngx_icp_gate_cache, domain, hash,
                                           ngx_icp_gate_lookup_conf
                                           ->error_ttl, NULL);

            } else {
                f->known = 1;
                f->usable = ngx_icp_gate_usable(v);
            }
        }

        return NGX_OK;
    }

    ngx_icp_gate_count_lookup(NGX_ICP_GATE_TIER_ZONE,
                              (flags & NGX_ICP_GATE_CACHE_FAILED)
                              ? NGX_ICP_GATE_OUTCOME_ERROR
                              : NGX_ICP_GATE_OUTCOME_MISS);

    if (flags & NGX_ICP_GATE_CACHE_FAILED) {
        ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: \"%V\" failed a moment ago, not asked "
                       "again yet", domain);
        return NGX_ERROR;
    }

    if (f) {
        ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: flight for \"%V\" under way, joining it",
                       domain);
        return NGX_DECLINED;
    }

    /*
     * without the lock another worker is asking already; when the zone
     * cannot hold even a placeholder, this worker asks alone
     */

    f = ngx_icp_gate_flight_create(domain, hash,
                                   rc == NGX_ERROR
                                   || (flags & NGX_ICP_GATE_CACHE_LOCKED));
    if (f == NULL) {
        if (flags & NGX_ICP_GATE_CACHE_LOCKED) {
            ngx_icp_gate_cache_release(ngx_icp_gate_cache, domain, hash, 0,
                                       NULL);
        }

        return NGX_ERROR;
    }

    return NGX_DECLINED;
}


/*
 * w waits for the flight of the domain: NGX_OK, and its handler runs once
 * the verdict is in or "wait" ran out, unless ngx_icp_gate_lookup_cancel()
 * comes first; NGX_DECLINED when no flight asks for the domain
 */

ngx_int_t
ngx_icp_gate_lookup_wait(ngx_str_t *domain, uint32_t hash,
    ngx_icp_gate_waiter_t *w, ngx_msec_t wait)
{
    ngx_icp_gate_flight_t  *f;

    f = ngx_icp_gate_flight_find(domain, hash);
    if (f == NULL) {
        return NGX_DECLINED;
    }

    w->rc = NGX_ERROR;
    w->waiting = 1;
    w->flight = f;
    ngx_queue_insert_tail(&f->waiters, &w->queue);

    w->timer.handler = ngx_icp_gate_waiter_timeout;
    w->timer.data = ngx_icp_gate_timer_ident;
    ngx_add_timer(&w->timer, wait);

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, w->timer.log, 0,
                   "icp_gate: waiting up to %Mms for \"%V\"", wait, domain);

    return NGX_OK;
}


void
ngx_icp_gate_lookup_cancel(ngx_icp_gate_waiter_t *w)
{
    if (w->waiting) {
        ngx_queue_remove(&w->queue);
        w->waiting = 0;

        ngx_log_debug0(NGX_LOG_DEBUG_CORE, w->timer.log, 0,
                       "icp_gate: waiter gone before the verdict");
    }

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }
}


/*
 * Redis said the domain's hash changed.  A read of it sent before now is
 * older than the change; a copy in the zone is read again at once.  Every
 * worker hears of the change once the new copy is in, or at once when the
 * zone holds none (live sessions may be on a domain the zone let go); a
 * domain being looked up is heard of too, so that who waits for another
 * node's answer looks again now.
 */

void
ngx_icp_gate_lookup_refresh(ngx_str_t *domain, uint32_t hash)
{
    ngx_int_t                rc;
    ngx_icp_gate_refresh_t  *r;

    rc = ngx_icp_gate_cache_holds(ngx_icp_gate_cache, domain, hash);

    if (rc == NGX_DECLINED) {
        ngx_icp_gate_cache_news(ngx_icp_gate_cache, domain, hash);
        return;
    }

    ngx_icp_gate_cache_told(ngx_icp_gate_cache, domain, hash);

    if (rc == NGX_AGAIN) {
        ngx_icp_gate_cache_news(ngx_icp_gate_cache, domain, hash);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: \"%V\" changed in Redis, reading it again",
                   domain);

    r = (ngx_icp_gate_refreshes < NGX_ICP_GATE_REFRESHES)
        ? ngx_alloc(sizeof(ngx_icp_gate_refresh_t), ngx_cycle->log) : NULL;

    if (r != NULL) {
        ngx_icp_gate_cache_mark(ngx_icp_gate_cache, &r->read);
        r->hash = hash;
        r->len = domain->len;
        ngx_memcpy(r->data, domain->data, domain->len);

        if (ngx_icp_gate_redis_reread(domain, ngx_icp_gate_refresh_done, r)
            == NGX_OK)
        {
            ngx_icp_gate_refreshes++;
            return;
        }

        ngx_free(r);
    }

    /* the next request reads it */

    ngx_icp_gate_cache_expire(ngx_icp_gate_cache, domain, hash);
    ngx_icp_gate_cache_news(ngx_icp_gate_cache, domain, hash);
}


/* changes this worker was told whose verdicts it is still reading */

ngx_uint_t
ngx_icp_gate_lookup_refreshing(void)
{
    return ngx_icp_gate_refreshes;
}


static void
ngx_icp_gate_refresh_done(void *data, ngx_int_t rc, ngx_icp_gate_verdict_t *v)
{
    ngx_icp_gate_refresh_t  *r = data;

    ngx_str_t  domain;

    domain.data = r->data;
    domain.len = r->len;

    ngx_icp_gate_refreshes--;

    /*
     * deleted, or not read: the next request looks it up afresh, and its
     * flight tells every worker if the verdict is another
     */

    if (rc != NGX_OK) {
        ngx_icp_gate_cache_expire(ngx_icp_gate_cache, &domain, r->hash);
        ngx_icp_gate_cache_news(ngx_icp_gate_cache, &domain, r->hash);

    } else {
        rc = ngx_icp_gate_lookup_store(&domain, r->hash, v, 1, &r->read,
                                       NGX_ICP_GATE_CACHE_READ);

        /*
         * the same status, kept aside, or not stored: the watchers look
         * anyway; not after a purge, which told them
         */

        if (rc != NGX_DONE && rc != NGX_ABORT) {
            ngx_icp_gate_cache_news(ngx_icp_gate_cache, &domain, r->hash);
        }
    }

    ngx_free(r);
}


/*
 * An operator's purge: every worker's copy of the domain answers no more;
 * the next request waits for the verdict, and live sessions look again.
 * A lookup under way, in any worker, stores nothing from now on; this
 * worker's is let go at once.  NGX_DECLINED: the zone had no copy.
 */

ngx_int_t
ngx_icp_gate_lookup_purge(ngx_str_t *domain, uint32_t hash)
{
    ngx_int_t               rc;
    ngx_icp_gate_flight_t  *f;

    rc = ngx_icp_gate_cache_purge(ngx_icp_gate_cache, domain, hash);

    /* first: a flight waiting for another node's answer looks now */

    ngx_icp_gate_lookup_changed(domain, hash);

    f = ngx_icp_gate_flight_find(domain, hash);

    if (f) {
        ngx_icp_gate_flight_detach(f);
    }

    return rc;
}


/*
 * A purge overtook the flight: it finishes for those who wait for it, and
 * a lookup from now on starts another
 */

static void
ngx_icp_gate_flight_detach(ngx_icp_gate_flight_t *f)
{
    ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: the flight for \"%V\" was purged, let go",
                   &f->sn.str);

    ngx_rbtree_delete(&ngx_icp_gate_flights, &f->sn.node);
    f->detached = 1;
}


/*
 * Told that the domain changed (NULL: any may have): the worker's copy
 * kept aside goes, and a wait for another node's answer ends
 */

void
ngx_icp_gate_lookup_changed(ngx_str_t *domain, uint32_t hash)
{
    ngx_icp_gate_aside_t   *a;
    ngx_icp_gate_flight_t  *f;

    if (domain == NULL) {
        ngx_memzero(ngx_icp_gate_aside, NGX_ICP_GATE_ASIDE
                                        * sizeof(ngx_icp_gate_aside_t));
        return;
    }

    a = &ngx_icp_gate_aside[hash % NGX_ICP_GATE_ASIDE];

    if (a->hash == hash && a->len == domain->len
        && ngx_memcmp(a->data, domain->data, domain->len) == 0)
    {
        a->len = 0;
    }

    f = ngx_icp_gate_flight_find(domain, hash);

    if (f == NULL || !f->owner || !f->fleet_wait || !f->event.timer_set) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: \"%V\" written by another node, looking now",
                   domain);

    ngx_del_timer(&f->event);
    ngx_add_timer(&f->event, 0);
}


static void
ngx_icp_gate_waiter_timeout(ngx_event_t *ev)
{
    ngx_icp_gate_flight_t  *f;
    ngx_icp_gate_waiter_t  *w;

    w = (ngx_icp_gate_waiter_t *)
            ((u_char *) ev - offsetof(ngx_icp_gate_waiter_t, timer));

    f = w->flight;

    ngx_queue_remove(&w->queue);
    w->waiting = 0;

    /* a refresh too slow is a refresh that failed: the stale copy answers */

    if (f->has_stale) {
        *w->verdict = f->stale;
        w->rc = NGX_OK;

    } else {
        w->rc = NGX_ERROR;
    }

    ngx_icp_gate_waited_too_long(ev->log, &f->sn.str, f->has_stale);

    w->handler(w);
}


static void
ngx_icp_gate_waited_too_long(ngx_log_t *log, ngx_str_t *domain,
    ngx_uint_t stale)
{
    static ngx_icp_gate_throttle_t  waited;

    ngx_uint_t  n;

    n = ngx_icp_gate_throttle(&waited);

    if (n) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "icp_gate: no verdict within icp_gate_wait for %ui "
                      "requests since the last such line; the last, for "
                      "\"%V\", %s", n, domain,
                      stale ? "answered from its stale verdict"
                            : "as lookup_failed");
    }
}


static ngx_icp_gate_flight_t *
ngx_icp_gate_flight_find(ngx_str_t *domain, uint32_t hash)
{
    if (ngx_icp_gate_flights.root == ngx_icp_gate_flights.sentinel) {
        return NULL;
    }

    return (ngx_icp_gate_flight_t *)
               ngx_str_rbtree_lookup(&ngx_icp_gate_flights, domain, hash);
}


static ngx_icp_gate_flight_t *
ngx_icp_gate_flight_create(ngx_str_t *domain, uint32_t hash, ngx_uint_t owner)
{
    ngx_icp_gate_flight_t  *f;

    f = ngx_calloc(sizeof(ngx_icp_gate_flight_t), ngx_cycle->log);
    if (f == NULL) {
        return NULL;
    }

    ngx_memcpy(f->data, domain->data, domain->len);
    f->sn.str.data = f->data;
    f->sn.str.len = domain->len;
    f->sn.node.key = hash;
    f->hash = hash;

    ngx_rbtree_insert(&ngx_icp_gate_flights, &f->sn.node);
    ngx_icp_gate_gauge(flights, 1);
    ngx_queue_init(&f->waiters);

    f->owner = owner;
    f->started = ngx_current_msec;

    f->listed = ngx_icp_gate_lookup_conf->file
                && ngx_icp_gate_file_find(ngx_icp_gate_lookup_conf->file,
                                          domain, NULL)
                   == NGX_OK;

    ngx_icp_gate_cache_mark(ngx_icp_gate_cache, &f->began);

    /* the first step runs from the event loop, never inside a lookup */

    ngx_icp_gate_timer_init(&f->event, ngx_icp_gate_flight_run, ngx_cycle->log);

    ngx_add_timer(&f->event, 0);

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: flight for \"%V\" started, %s", domain,
                   owner ? "asking" : "another worker asks");

    return f;
}


static void
ngx_icp_gate_flight_run(ngx_event_t *ev)
{
    ngx_int_t               rc;
    ngx_msec_t              delay;
    ngx_uint_t              flags;
    ngx_icp_gate_flight_t  *f;
    ngx_icp_gate_verdict_t  v;

    f = (ngx_icp_gate_flight_t *)
            ((u_char *) ev - offsetof(ngx_icp_gate_flight_t, event));

    if (f->owner) {
        if (f->asking) {
            /* the fleet's lock lives while the question is asked, no longer */
            ngx_icp_gate_redis_renew(&f->sn.str,
                                     ngx_icp_gate_fleet_lock_ttl());
            ngx_add_timer(&f->event, ngx_icp_gate_fleet_lock_ttl() / 3);

        } else if (f->fleet_wait) {
            ngx_icp_gate_flight_lock(f);

        } else {
            ngx_icp_gate_flight_fetch(f);
        }

        return;
    }

    rc = ngx_icp_gate_cache_lookup(ngx_icp_gate_cache, &f->sn.str, f->hash,
                                   ngx_icp_gate_lock_for(),
                                   ngx_icp_gate_lookup_conf->stale, &v,
                                   &flags);

    if (rc == NGX_OK && !(flags & NGX_ICP_GATE_CACHE_STALE)) {
        if (flags & NGX_ICP_GATE_CACHE_LOCKED) {
            /* expired already: the next lookup refreshes it */
            ngx_icp_gate_cache_release(ngx_icp_gate_cache, &f->sn.str,
                                       f->hash, 0, NULL);
        }

        ngx_icp_gate_flight_finish(f, NGX_OK, &v);
        return;
    }

    if (flags & NGX_ICP_GATE_CACHE_FAILED) {
        /* the worker that asked got no verdict */
        ngx_icp_gate_flight_finish(f, NGX_ERROR, NULL);
        return;
    }

    if (rc == NGX_ERROR || (flags & NGX_ICP_GATE_CACHE_LOCKED)) {
        /* the worker that was asking gave up or died: take over */

        ngx_log_debug1(NGX_LOG_DEBUG_CORE, ev->log, 0,
                       "icp_gate: taking over the flight for \"%V\"",
                       &f->sn.str);

        /* it asks from now on: a purge before is none of its business */

        f->owner = 1;
        ngx_icp_gate_cache_mark(ngx_icp_gate_cache, &f->began);
        ngx_icp_gate_flight_fetch(f);
        return;
    }

    if (ngx_queue_empty(&f->waiters)) {
        ngx_icp_gate_flight_finish(f, NGX_ERROR, NULL);
        return;
    }

    delay = ngx_icp_gate_poll_delay(f, NGX_ICP_GATE_POLL_MIN,
                                    NGX_ICP_GATE_POLL_MAX);

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ev->log, 0,
                   "icp_gate: \"%V\" not in the zone yet, next look in %Mms",
                   &f->sn.str, delay);

    ngx_add_timer(&f->event, delay);
}


static void
ngx_icp_gate_flight_fetch(ngx_icp_gate_flight_t *f)
{
    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: asking %s about \"%V\"",
                   ngx_icp_gate_lookup_conf->redis.name.len
                   ? "Redis" : "the filing API", &f->sn.str);

    if (ngx_icp_gate_lookup_conf->redis.name.len == 0) {
        ngx_icp_gate_flight_ask_api(f, 1);
        return;
    }

    ngx_icp_gate_cache_mark(ngx_icp_gate_cache, &f->read);

    if (ngx_icp_gate_redis_get(&f->sn.str, ngx_icp_gate_flight_redis_done, f)
        != NGX_OK)
    {
        ngx_icp_gate_count_lookup(NGX_ICP_GATE_TIER_REDIS,
                                  NGX_ICP_GATE_OUTCOME_ERROR);
        ngx_icp_gate_flight_redis_failed(f);
    }
}


/*
 * absent: Redis has no verdict (or there is no Redis), rather than it
 * could not be read
 */

static void
ngx_icp_gate_flight_ask_api(ngx_icp_gate_flight_t *f, ngx_uint_t absent)
{
    ngx_int_t               rc;
    ngx_icp_gate_verdict_t  v;

    if (f->listed) {

        /*
         * the file's: the API is never asked; a failed read of Redis
         * tells nothing new of a copy the zone has, which answers on
         */

        if (!absent && f->known) {
            ngx_icp_gate_flight_fail(f, ngx_icp_gate_lookup_conf->error_ttl);
            return;
        }

        /* no verdict yet: ngx_icp_gate_lookup_store() takes the file's */

        ngx_memzero(&v, offsetof(ngx_icp_gate_verdict_t, icp));
        v.version = f->asked;

        ngx_icp_gate_flight_store(f, &v,
                                  absent
                                  && ngx_icp_gate_lookup_conf->redis.name.len);
        return;
    }

    if (ngx_icp_gate_lookup_conf->api.url.len) {

        /* only domains without a verdict spend the node's API budget */

        if (ngx_icp_gate_lookup_conf->api_rate && !f->known
            && ngx_icp_gate_cache_spend(ngx_icp_gate_cache,
                                        ngx_icp_gate_lookup_conf->api_rate)
               != NGX_OK)
        {
            ngx_icp_gate_count(api_failures[NGX_ICP_GATE_API_FAIL_BUDGET]);
            ngx_icp_gate_count_lookup(NGX_ICP_GATE_TIER_API,
                                      NGX_ICP_GATE_OUTCOME_ERROR);
            ngx_icp_gate_over_budget();
            ngx_icp_gate_flight_fail(f, 0);
            return;
        }

        rc = ngx_icp_gate_api_fetch(&f->sn.str, ngx_icp_gate_flight_api_done,
                                    f);

        /* a full queue is this worker's overload, no failure to remember */

        if (rc != NGX_OK) {
            ngx_icp_gate_count_lookup(NGX_ICP_GATE_TIER_API,
                                      NGX_ICP_GATE_OUTCOME_ERROR);
            ngx_icp_gate_flight_fail(f, (rc == NGX_BUSY)
                                        ? 0
                                        : ngx_icp_gate_lookup_conf
                                          ->error_ttl);
            return;
        }

        f->asking = 1;

        if (f->fleet_lock) {
            ngx_add_timer(&f->event, ngx_icp_gate_fleet_lock_ttl() / 3);
        }

        return;
    }

    if (!absent) {
        ngx_icp_gate_flight_fail(f, ngx_icp_gate_lookup_conf->error_ttl);
        return;
    }

    /* with no filing API, a domain nobody wrote down is not filed */

    ngx_memzero(&v, sizeof(ngx_icp_gate_verdict_t));
    v.status = NGX_ICP_GATE_STATUS_UNFILED;
    v.checked_at = ngx_time();
    v.version = f->asked;

    ngx_icp_gate_flight_store(f, &v,
                              ngx_icp_gate_lookup_conf->redis.name.len != 0);
}


static void
ngx_icp_gate_flight_redis_done(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v)
{
    ngx_icp_gate_flight_t  *f = data;

    if (v) {
        f->asked = v->version;
    }

    ngx_icp_gate_count_lookup(NGX_ICP_GATE_TIER_REDIS,
                              (rc == NGX_OK) ? NGX_ICP_GATE_OUTCOME_HIT
                              : (rc == NGX_DECLINED) ? NGX_ICP_GATE_OUTCOME_MISS
                              : NGX_ICP_GATE_OUTCOME_ERROR);

    /* not in Redis: one node of the fleet asks the filing API */

    if (rc == NGX_DECLINED && ngx_icp_gate_lookup_conf->api.url.len
        && !f->listed)
    {
        ngx_icp_gate_flight_lock(f);
        return;
    }

    if (rc == NGX_ERROR) {
        ngx_icp_gate_flight_redis_failed(f);
        return;
    }

    if (rc != NGX_OK) {
        ngx_icp_gate_flight_ask_api(f, 1);
        return;
    }

    ngx_icp_gate_flight_store(f, v, 1);
}


/*
 * Redis failed: a known domain's copy answers on, as long as its verdict
 * lives (stale-if-error), rather than the API standing in for Redis for
 * every domain the zone holds; an unknown domain is asked of the API
 */

static void
ngx_icp_gate_flight_redis_failed(ngx_icp_gate_flight_t *f)
{
    if (f->known && ngx_time() < f->usable) {
        ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: Redis failed, \"%V\" answers with its "
                       "copy", &f->sn.str);

        ngx_icp_gate_flight_fail(f, ngx_icp_gate_lookup_conf->error_ttl);
        return;
    }

    ngx_icp_gate_flight_ask_api(f, 0);
}


/*
 * Single flight across the fleet: one look in Redis finds the verdict or
 * takes the domain's lock; the worker that takes it asks the filing API.
 * The others look again, one command a look, until the verdict is there
 * or they take the lock: the verdict's write deletes it, a holder whose
 * request failed gives it up, a holder that died lets it expire.  A look
 * Redis does not answer is tried again while the wait lasts; Redis known
 * to be down: every node asks for itself, as it would without Redis.
 */

static void
ngx_icp_gate_flight_lock(ngx_icp_gate_flight_t *f)
{
    ngx_icp_gate_cache_mark(ngx_icp_gate_cache, &f->read);

    if (ngx_icp_gate_redis_look_or_lock(&f->sn.str,
                                        ngx_icp_gate_fleet_lock_ttl(),
                                        ngx_icp_gate_flight_lock_done, f)
        != NGX_OK)
    {
        f->fleet_wait = 0;
        ngx_icp_gate_flight_ask_api(f, 1);
    }
}


static void
ngx_icp_gate_flight_lock_done(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v)
{
    ngx_icp_gate_flight_t  *f = data;

    ngx_msec_t  delay;

    if (v) {
        f->asked = v->version;
    }

    if (rc == NGX_OK) {
        f->fleet_wait = 0;
        ngx_icp_gate_flight_store(f, v, 1);
        return;
    }

    /* the filing API failed for a node of the fleet a moment ago */

    if (rc == NGX_ABORT) {
        ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "icp_gate: the filing API failed for \"%V\" on the "
                       "fleet, not asked again yet", &f->sn.str);

        f->fleet_wait = 0;
        ngx_icp_gate_flight_fail(f, ngx_icp_gate_lookup_conf->error_ttl);
        return;
    }

    if (!f->fleet_wait) {
        f->fleet_since = ngx_current_msec;
    }

    /*
     * held elsewhere, or not answered: look again, as long as a holder
     * may hold the lock and a second more, for the look that takes it
     * once it has expired; past that, this worker asks for itself
     */

    if (rc == NGX_DECLINED || (rc == NGX_ERROR && f->fleet_wait)) {

        if (ngx_current_msec - f->fleet_since
            < ngx_icp_gate_fleet_hold_max() + 1000)
        {
            delay = ngx_icp_gate_poll_delay(f, NGX_ICP_GATE_FLEET_POLL_MIN,
                                            NGX_ICP_GATE_FLEET_POLL_MAX);

            ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                           "icp_gate: another node asks the filing API "
                           "about \"%V\", looking again in %Mms",
                           &f->sn.str, delay);

            /* flight_run: an owner's flight that waits looks again */

            f->fleet_wait = 1;
            ngx_add_timer(&f->event, delay);
            return;
        }
    }

    /* taken, or maybe taken (a late answer): given up if the API fails */

    f->fleet_lock = (rc != NGX_DECLINED);
    f->fleet_wait = 0;

    ngx_icp_gate_flight_ask_api(f, 1);
}


static void
ngx_icp_gate_flight_api_done(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v)
{
    ngx_icp_gate_flight_t  *f = data;

    ngx_icp_gate_count_lookup(NGX_ICP_GATE_TIER_API,
                              (rc == NGX_OK) ? NGX_ICP_GATE_OUTCOME_HIT
                                             : NGX_ICP_GATE_OUTCOME_ERROR);

    f->asking = 0;
    f->asked_api = (rc == NGX_ERROR);

    if (f->event.timer_set) {
        ngx_del_timer(&f->event);
    }

    if (rc != NGX_OK) {
        ngx_icp_gate_flight_fail(f, (rc == NGX_BUSY)
                                    ? 0 : ngx_icp_gate_lookup_conf->error_ttl);
        return;
    }

    /* the answer to a question asked at that look in Redis */

    v->version = f->asked;

    /*
     * a purge since the question: the answer is for those who waited, not
     * for the zone or Redis; the fleet's lock goes, for the next to ask
     */

    if (ngx_icp_gate_cache_purged(ngx_icp_gate_cache, &f->sn.str, f->hash,
                                  &f->began))
    {
        if (f->fleet_lock) {
            ngx_icp_gate_redis_unlock(&f->sn.str);
            f->fleet_lock = 0;
        }

        ngx_icp_gate_flight_finish(f, NGX_OK, v);
        return;
    }

    /* Redis down: the zone keeps the only copy as long as Redis would */

    ngx_icp_gate_flight_store(f, v,
                              ngx_icp_gate_lookup_conf->redis.name.len
                              && ngx_icp_gate_redis_put(&f->sn.str, v,
                                                        ngx_icp_gate_ttl_of(v))
                                 == NGX_OK);
}


/* hold: how long the failure is remembered, 0 for not at all */

static void
ngx_icp_gate_flight_fail(ngx_icp_gate_flight_t *f, ngx_msec_t hold)
{
    /*
     * The API failed: the fleet remembers it in the lock's place for as
     * long as this node does, so that no node asks, or waits, meanwhile.
     * Failed here without a verdict of the API (its queue full, its
     * budget spent): another node asks at once, not when the lock expires.
     */

    if (f->asked_api && hold && ngx_icp_gate_lookup_conf->redis.name.len
        && !ngx_icp_gate_cache_purged(ngx_icp_gate_cache, &f->sn.str,
                                      f->hash, &f->began))
    {
        ngx_icp_gate_redis_failed(&f->sn.str, hold);
        f->fleet_lock = 0;

    } else if (f->fleet_lock) {
        ngx_icp_gate_redis_unlock(&f->sn.str);
        f->fleet_lock = 0;
    }

    if (f->owner) {
        ngx_icp_gate_cache_release(ngx_icp_gate_cache, &f->sn.str, f->hash,
                                   hold, &f->began);
    }

    /* stale-if-error: the copy was usable when the refresh began */

    if (f->has_stale) {
        ngx_icp_gate_flight_finish(f, NGX_OK, &f->stale);
        return;
    }

    ngx_icp_gate_flight_finish(f, NGX_ERROR, NULL);
}


/*
 * When Redis has the verdict ("redis"), the zone's copy only stands in for
 * it, fresh for icp_gate_local_ttl.  It may answer while its refresh runs
 * for icp_gate_stale_while_revalidate past that, and when the refresh
 * fails, for as long as the verdict's own TTL.
 */

static void
ngx_icp_gate_flight_store(ngx_icp_gate_flight_t *f, ngx_icp_gate_verdict_t *v,
    ngx_uint_t redis)
{
    ngx_uint_t                 flags;
    ngx_icp_gate_cache_mark_t  mark;

    /*
     * one read before Redis told of a change is stored to be read again; a
     * verdict Redis has was looked for there first (f->read is set); a
     * purge since the flight began leaves the zone as the purge left it
     */

    mark = f->read;
    mark.purges = f->began.purges;

    flags = (redis ? NGX_ICP_GATE_CACHE_READ : 0)
            | (f->owner ? NGX_ICP_GATE_CACHE_RELEASE : 0);

    (void) ngx_icp_gate_lookup_store(&f->sn.str, f->hash, v, redis, &mark,
                                     flags);

    ngx_icp_gate_flight_finish(f, NGX_OK, v);
}


/*
 * mark, flags: as for ngx_icp_gate_cache_store(), which tells the workers
 * of a verdict whose status or region is not the one the zone had; one
 * the zone has no room for is kept aside by this worker.
 *
 * Every verdict comes this way, a flight's and a re-read's: for a domain
 * icp_gate_file lists, *v becomes the file's, unless it is a newer one of
 * an operator or an import (ngx_icp_gate_file_yields()).  The file's
 * verdict keeps the version of the read it was weighed against (the
 * zone's order is Redis's time; none without Redis), and with Redis it
 * is fresh only as long as a copy of Redis's, so that an operator's
 * verdict written since is seen as soon.
 */

static ngx_int_t
ngx_icp_gate_lookup_store(ngx_str_t *domain, uint32_t hash,
    ngx_icp_gate_verdict_t *v, ngx_uint_t redis,
    ngx_icp_gate_cache_mark_t *mark, ngx_uint_t flags)
{
    ngx_int_t                    rc;
    time_t                       ttl, usable;
    ngx_msec_t                   fresh;
    ngx_icp_gate_verdict_t       listed;
    ngx_icp_gate_lookup_conf_t  *lcf;

    lcf = ngx_icp_gate_lookup_conf;

    if (lcf->file && !ngx_icp_gate_file_yields(lcf->file, v)
        && ngx_icp_gate_file_find(lcf->file, domain, &listed) == NGX_OK)
    {
        listed.version = v->version;
        *v = listed;
        redis = (lcf->redis.name.len != 0);
    }

    ttl = ngx_icp_gate_ttl_of(v);
    fresh = (ngx_msec_t) ttl * 1000;

    if (redis) {
        fresh = ngx_min(fresh, lcf->local_ttl);
    }

    usable = (time_t) ((fresh + lcf->stale + 999) / 1000);
    usable = ngx_max(usable, ttl);

    rc = ngx_icp_gate_cache_store(ngx_icp_gate_cache, domain, hash, v, fresh,
                                  usable, mark, flags);

    if (rc == NGX_ERROR) {
        if (lcf->redis.name.len && lcf->redis.tracking) {
            fresh = ngx_min(fresh, NGX_ICP_GATE_ASIDE_TRACKED);
        }

        ngx_icp_gate_aside_put(domain, hash, v, fresh);
    }

    return rc;
}


static void
ngx_icp_gate_flight_finish(ngx_icp_gate_flight_t *f, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v)
{
    ngx_queue_t             waiters, *q;
    ngx_icp_gate_waiter_t  *w;
    ngx_icp_gate_verdict_t  verdict;

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: flight for \"%V\" finished: %V", &f->sn.str,
                   v ? &ngx_icp_gate_status_names[v->status]
                     : &ngx_icp_gate_no_verdict);

    /*
     * the flight goes before anyone wakes: a woken request may finish,
     * or look the same domain up again
     */

    if (!f->detached) {
        ngx_rbtree_delete(&ngx_icp_gate_flights, &f->sn.node);
    }

    ngx_icp_gate_gauge(flights, -1);

    ngx_queue_init(&waiters);

    if (!ngx_queue_empty(&f->waiters)) {
        ngx_queue_add(&waiters, &f->waiters);
    }

    if (f->event.timer_set) {
        ngx_del_timer(&f->event);
    }

    /* the verdict may be the flight's own stale copy */

    if (v) {
        verdict = *v;
        v = &verdict;
    }

    ngx_free(f);

    while (!ngx_queue_empty(&waiters)) {
        q = ngx_queue_head(&waiters);
        ngx_queue_remove(q);

        w = ngx_queue_data(q, ngx_icp_gate_waiter_t, queue);
        w->waiting = 0;

        if (w->timer.timer_set) {
            ngx_del_timer(&w->timer);
        }

        w->rc = rc;

        if (v) {
            *w->verdict = *v;
        }

        ngx_log_debug0(NGX_LOG_DEBUG_CORE, w->timer.log, 0,
                       "icp_gate: waking a waiter");

        w->handler(w);
    }
}


static void
ngx_icp_gate_over_budget(void)
{
    static ngx_icp_gate_throttle_t  refused;

    ngx_uint_t  n;

    n = ngx_icp_gate_throttle(&refused);

    if (n) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "icp_gate: filing API budget (icp_gate_api_rate) "
                      "spent: %ui lookups of new domains failed since the "
                      "last warning", n);
    }
}


static ngx_int_t
ngx_icp_gate_aside_get(ngx_str_t *domain, uint32_t hash,
    ngx_icp_gate_verdict_t *v)
{
    ngx_icp_gate_aside_t  *a;

    a = &ngx_icp_gate_aside[hash % NGX_ICP_GATE_ASIDE];

    /* a copy of an older epoch than the zone's is out of date as the zone's */

    if (a->len != domain->len || a->hash != hash
        || a->epoch != ngx_icp_gate_cache_epoch(ngx_icp_gate_cache)
        || (ngx_msec_int_t) (a->expires - ngx_current_msec) <= 0
        || ngx_memcmp(a->data, domain->data, domain->len) != 0)
    {
        return NGX_DECLINED;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: \"%V\" kept aside by the worker", domain);

    *v = a->verdict;

    return NGX_OK;
}


static void
ngx_icp_gate_aside_put(ngx_str_t *domain, uint32_t hash,
    ngx_icp_gate_verdict_t *v, ngx_msec_t fresh)
{
    ngx_icp_gate_aside_t  *a;

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: no room in the zone for \"%V\", kept aside",
                   domain);

    a = &ngx_icp_gate_aside[hash % NGX_ICP_GATE_ASIDE];

    a->hash = hash;
    a->len = domain->len;
    a->epoch = ngx_icp_gate_cache_epoch(ngx_icp_gate_cache);
    a->expires = ngx_current_msec + fresh;
    a->verdict = *v;
    ngx_memcpy(a->data, domain->data, domain->len);
}


/*
 * Until when a copy stands in for a tier that fails: the API's verdict as
 * long as it lives; an operator's, an import's or the file's as long as
 * the zone holds it, for the API would only be asked to overrule it
 */

static time_t
ngx_icp_gate_usable(ngx_icp_gate_verdict_t *v)
{
    if (v->source != NGX_ICP_GATE_SOURCE_API) {
        return NGX_MAX_TIME_T_VALUE;
    }

    return v->checked_at + ngx_icp_gate_ttl_of(v);
}


static time_t
ngx_icp_gate_ttl_of(ngx_icp_gate_verdict_t *v)
{
    return (v->status == NGX_ICP_GATE_STATUS_FILED)
           ? ngx_icp_gate_lookup_conf->ttl
           : ngx_icp_gate_lookup_conf->negative_ttl;
}


/* a verdict ngx_icp_gate_redis_put() could not write: ttl is what is left */

static void
ngx_icp_gate_lookup_unwritten(ngx_str_t *domain, ngx_icp_gate_verdict_t *v,
    time_t ttl)
{
    ngx_icp_gate_cache_extend(ngx_icp_gate_cache, domain,
                              ngx_icp_gate_hash(domain->data, domain->len),
                              v, (ngx_msec_t) ttl * 1000);
}


/*
 * Redis refused a verdict this worker asked the filing API for: it holds a
 * newer one (an operator's, or a later answer), or a purge came after the
 * question.  The copy answers only if reading Redis again fails, and live
 * sessions look again.
 */

static void
ngx_icp_gate_lookup_refused(ngx_str_t *domain, uint64_t version)
{
    uint32_t  hash;

    hash = ngx_icp_gate_hash(domain->data, domain->len);

    ngx_icp_gate_cache_overtaken(ngx_icp_gate_cache, domain, hash, version);

    ngx_icp_gate_lookup_changed(domain, hash);
}


/* a quarter of the time the flight has waited, within [min, max] */

static ngx_msec_t
ngx_icp_gate_poll_delay(ngx_icp_gate_flight_t *f, ngx_msec_t min,
    ngx_msec_t max)
{
    ngx_msec_t  delay;

    delay = (ngx_current_msec - f->started) / 4;
    delay = ngx_max(delay, min);

    return ngx_min(delay, max);
}


static ngx_msec_t
ngx_icp_gate_lock_for(void)
{
    ngx_msec_t  t;

    t = 1000;

    if (ngx_icp_gate_lookup_conf->redis.name.len) {
        t += ngx_icp_gate_lookup_conf->redis.timeout;
    }

    /* a request may wait as long in the API's queue as it may run */

    if (ngx_icp_gate_lookup_conf->api.url.len) {
        t += 2 * ngx_icp_gate_lookup_conf->api.timeout;
    }

    /* and before that, as long for another node's, with Redis */

    if (ngx_icp_gate_lookup_conf->redis.name.len
        && ngx_icp_gate_lookup_conf->api.url.len)
    {
        t += ngx_icp_gate_fleet_hold_max() + 1000
             + NGX_ICP_GATE_FLEET_POLL_MAX
             + ngx_icp_gate_lookup_conf->redis.timeout;
    }

    return t;
}


/*
 * The fleet's lock lives this long in Redis, renewed by its holder every
 * third of it while the filing API is asked: a holder that dies (kill -9,
 * a crash, a lost node) is taken over within it, and well within
 * icp_gate_wait, rather than when the longest question would be over.
 * Twice the Redis timeout: a renewal Redis is late to take still lands.
 */

static ngx_msec_t
ngx_icp_gate_fleet_lock_ttl(void)
{
    return ngx_max(2 * ngx_icp_gate_lookup_conf->redis.timeout, 1000);
}


/*
 * How long a live holder may hold the lock: its API request, which may
 * wait as long in its worker's queue as it may run, its look and the
 * write of its verdict; another node waits no longer for it
 */

static ngx_msec_t
ngx_icp_gate_fleet_hold_max(void)
{
    return 2 * ngx_icp_gate_lookup_conf->api.timeout
           + 2 * ngx_icp_gate_lookup_conf->redis.timeout;
}
