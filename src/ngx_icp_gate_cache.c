
/*
 * Copyright (C) icp_gate authors
 *
 * The verdict cache all workers share: a hash table of the registrable
 * domains, chained through the entries, with an LRU queue for eviction
 * when the zone is full.  Entries expire lazily, as RFC 5861 has it: an
 * expired verdict keeps answering for a while ("stale") while one worker,
 * holding the entry's update lock, refreshes it; past that, it answers
 * only when the refresh fails, and not at all past its own TTL
 * ("usable").
 *
 * The buckets are picked by a hash with the zone's own random key, made
 * with the zone and kept across reloads: names cannot be chosen to share
 * one.  A chain holds at most as many entries as a reader walks: a new
 * entry in a full one takes the place of its least recently used.
 *
 * A fresh verdict is read without the mutex and without a write
 * (ngx_icp_gate_cache_peek()): writers, under the mutex, make the zone's
 * sequence number odd while they change what a reader looks at, and the
 * reader keeps its copy only if the number was even and the same before
 * and after.  A reader may meet a chain in the middle of a change, so it
 * follows no pointer out of the zone and walks a bounded number of
 * entries.  An entry moves up the LRU queue at most once a second.
 *
 * Every entry keeps its verdict's version (the Redis time it stands for):
 * a verdict older than the copy replaces none, whatever the order of
 * arrival.  "Every copy may be out of date" is a new epoch, one number: an
 * entry of an older one counts as expired when it is next looked at.
 *
 * The zone also carries the node's news to every worker: the last domains
 * whose verdict changed, in a ring each worker reads at its pace (its
 * watchers check live sessions again); the last changes Redis told and the
 * last purges, by hash, against which a read or a lookup that began
 * earlier is measured.
 *
 * And which workers of the node listen to Redis's invalidations, so that
 * a reload, whose new worker 0 sets up its channel while the old one still
 * listens, need not count every copy as stale: only a moment when no
 * channel listened does (ngx_icp_gate_cache_listen()).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_cache.h"
#include "ngx_icp_gate_metrics.h"


/*
 * A full zone: the least recently used entry in a slab chunk of the size
 * needed goes, found among the last 64 of the LRU queue; failing that, the
 * last 8 go, which may free a page, and if none of them was in a chunk big
 * enough, the least recently used one in a bigger chunk among the 64.
 */
#define NGX_ICP_GATE_CACHE_VICTIMS    64
#define NGX_ICP_GATE_CACHE_EVICT      8

/* zone bytes a bucket: about one entry a bucket in a full zone */
#define NGX_ICP_GATE_CACHE_BUCKET     128

/* an entry whose update lock is held: a worker is looking it up */
#define ngx_icp_gate_cache_looked_up(cn)                                      \
    ((cn)->locked && (ngx_msec_int_t) ((cn)->locked - ngx_current_msec) > 0)

/*
 * the most entries a chain holds, and a reader walks before it leaves the
 * chain to the mutex's path
 */
#define NGX_ICP_GATE_CACHE_CHAIN_MAX  32

/* a filing number of up to 32 bytes is read in one fixed-size copy */
#define NGX_ICP_GATE_CACHE_ICP_COPY   32

/* how far behind one worker's ngx_current_msec may be another's, at most */
#define NGX_ICP_GATE_CACHE_CLOCKS     1000

/* changed domains the zone remembers; a worker further behind hears "all" */
#define NGX_ICP_GATE_CACHE_CHANGES    32

/*
 * changes Redis told, and purges, the zone remembers; a read or a lookup
 * that began further back counts as overtaken
 */
#define NGX_ICP_GATE_CACHE_MARKS      32

/*
 * invalidation channels the zone knows at once: the old and the new
 * configuration's during a reload, and room for reloads in a row
 */
#define NGX_ICP_GATE_CACHE_LISTENERS  8


#if defined(__ATOMIC_ACQUIRE)
/* no instruction on x86, where loads and stores keep their order anyway */
#define ngx_icp_gate_load_fence()     __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define ngx_icp_gate_store_fence()    __atomic_thread_fence(__ATOMIC_RELEASE)
#else
#define ngx_icp_gate_load_fence()     ngx_memory_barrier()
#define ngx_icp_gate_store_fence()    ngx_memory_barrier()
#endif

/* the top bits of a hash, which its last multiply spreads best */
#define ngx_icp_gate_cache_chain(sh, hash)                                    \
    (&(sh)->buckets[(hash) >> (sh)->shift])


typedef struct ngx_icp_gate_cache_node_s  ngx_icp_gate_cache_node_t;

/*
 * The filing number follows the domain, in room sized by the first verdict
 * that carries one: a fixed field for the longest number would put every
 * entry in the next slab size up and halve the domains a zone holds.
 */

struct ngx_icp_gate_cache_node_s {
    ngx_icp_gate_cache_node_t  *next;           /* in its bucket */
    ngx_queue_t                 queue;          /* LRU */
    ngx_msec_t                  expires;
    ngx_msec_t                  locked;
    uint64_t                    version;        /* the verdict's */
    ngx_pid_t                   holder;         /* of the lock */
    uint32_t                    hash;
    uint32_t                    checked_at;     /* Unix time */
    uint32_t                    used;           /* when it last moved up */
    uint32_t                    usable;         /* Unix time: a verdict's
                                                   last second */
    uint32_t                    epoch;          /* the zone's, when stored */
    u_char                      status;
    u_char                      region;
    u_char                      source;
    u_char                      len;
    u_char                      icp_len;
    u_char                      icp_room;
    u_char                      chunk;          /* its slab chunk: 2^chunk */
    u_char                      data[1];
};


typedef struct {
    uint32_t                    hash;
    u_char                      len;
    u_char                      data[NGX_ICP_GATE_DOMAIN_LEN];
} ngx_icp_gate_cache_change_t;


/* a change Redis told, or a purge: enough to tell a domain, mostly */
typedef struct {
    uint32_t                    hash;
    uint32_t                    len;
} ngx_icp_gate_cache_seen_t;


/*
 * A worker whose invalidation channel is set up.  "whole": no change
 * written before it was set up can have gone untold, because every copy
 * expired since, or an older channel, listening all along, heard a beat
 * of its own sent after it (Redis answers in order: whatever it told
 * before it took the newer subscription, the older channel has heard).
 */
typedef struct {
    ngx_pid_t                   pid;            /* 0: a free slot */
    ngx_uint_t                  joined;         /* orders the set-ups */
    ngx_uint_t                  whole;
} ngx_icp_gate_cache_listener_t;


typedef struct {
    ngx_queue_t                 queue;
    ngx_atomic_t                seq;            /* odd while written */
    ngx_atomic_t                epoch;          /* every copy stale before */
    ngx_msec_t                  epoch_at;       /* when it began */
    ngx_atomic_t                changes;        /* news, ever */
    ngx_icp_gate_cache_change_t changed[NGX_ICP_GATE_CACHE_CHANGES];
    ngx_atomic_t                told;           /* by Redis, ever */
    ngx_icp_gate_cache_seen_t   told_ring[NGX_ICP_GATE_CACHE_MARKS];
    ngx_atomic_t                purges;         /* ever */
    ngx_icp_gate_cache_seen_t   purged_ring[NGX_ICP_GATE_CACHE_MARKS];
    ngx_uint_t                  budget;         /* API requests, in 1/1000 */
    ngx_msec_t                  budget_at;
    ngx_uint_t                  entries;
    ngx_atomic_t                generation;     /* the newest joined */
    ngx_icp_gate_hash_key_t     key;            /* the workers' hash key */
    ngx_uint_t                  shift;          /* 32 - log2(buckets) */
    ngx_atomic_t                reloads;        /* configurations, ever */
    ngx_uint_t                  joins;          /* channels set up, ever */
    ngx_icp_gate_cache_listener_t  listeners[NGX_ICP_GATE_CACHE_LISTENERS];
    ngx_icp_gate_cache_node_t  *buckets[1];
} ngx_icp_gate_cache_sh_t;


struct ngx_icp_gate_cache_s {
    ngx_icp_gate_cache_sh_t    *sh;
    ngx_slab_pool_t            *shpool;
    ngx_msec_t                  stale;      /* while-revalidate, a worker's */
    ngx_uint_t                  generation; /* its configuration's */
    ngx_uint_t                  reload;     /* its configuration's count */
    ngx_icp_gate_cache_listener_t  *listener;   /* this worker's channel */
};


static ngx_int_t ngx_icp_gate_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_icp_gate_cache_node_t *ngx_icp_gate_cache_find(
    ngx_icp_gate_cache_t *cache, ngx_str_t *domain, uint32_t hash);
static ngx_icp_gate_cache_node_t *ngx_icp_gate_cache_create(
    ngx_icp_gate_cache_t *cache, ngx_str_t *domain, uint32_t hash,
    size_t room);
static ngx_icp_gate_cache_node_t *ngx_icp_gate_cache_grow(
    ngx_icp_gate_cache_t *cache, ngx_icp_gate_cache_node_t *cn, size_t room);
static ngx_int_t ngx_icp_gate_cache_shorten(ngx_icp_gate_cache_t *cache,
    uint32_t hash);
static ngx_icp_gate_cache_node_t *ngx_icp_gate_cache_alloc(
    ngx_icp_gate_cache_t *cache, size_t len, size_t *room, ngx_uint_t *chunk);
static ngx_uint_t ngx_icp_gate_cache_evict(ngx_icp_gate_cache_t *cache,
    ngx_uint_t chunk);
static ngx_uint_t ngx_icp_gate_cache_chunk(size_t size);
static void ngx_icp_gate_cache_link(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn);
static void ngx_icp_gate_cache_delete(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn);
static ngx_uint_t ngx_icp_gate_cache_lock(ngx_icp_gate_cache_node_t *cn,
    ngx_msec_t lock_for);
static void ngx_icp_gate_cache_catch_up(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn);
static void ngx_icp_gate_cache_shut(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn);
static void ngx_icp_gate_cache_remember(ngx_icp_gate_cache_seen_t *ring,
    ngx_atomic_t *count, ngx_str_t *domain, uint32_t hash);
static ngx_uint_t ngx_icp_gate_cache_seen_since(
    ngx_icp_gate_cache_seen_t *ring, ngx_uint_t count, ngx_uint_t since,
    ngx_str_t *domain, uint32_t hash);
static void ngx_icp_gate_cache_news_locked(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash);
static void ngx_icp_gate_cache_expire_locked(ngx_icp_gate_cache_t *cache);
static ngx_uint_t ngx_icp_gate_cache_others(ngx_icp_gate_cache_t *cache,
    ngx_uint_t before);
static void ngx_icp_gate_cache_write_begin(ngx_icp_gate_cache_t *cache);
static void ngx_icp_gate_cache_write_end(ngx_icp_gate_cache_t *cache);
static ngx_int_t ngx_icp_gate_cache_random_key(ngx_icp_gate_hash_key_t *key,
    ngx_log_t *log);


ngx_shm_zone_t *
ngx_icp_gate_cache_add(ngx_conf_t *cf, ngx_str_t *name, size_t size,
    void *tag)
{
    ngx_shm_zone_t        *shm_zone;
    ngx_icp_gate_cache_t  *cache;

    shm_zone = ngx_shared_memory_add(cf, name, size, tag);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        return shm_zone;
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_icp_gate_cache_t));
    if (cache == NULL) {
        return NULL;
    }

    shm_zone->init = ngx_icp_gate_cache_init_zone;
    shm_zone->data = cache;

    return shm_zone;
}


/*
 * NGX_OK: *v is a verdict read without the mutex, fresh, or expired less
 * than "stale" ago while a worker refreshes it; NGX_DECLINED:
 * ngx_icp_gate_cache_lookup() must decide (no entry, an expired one
 * nobody refreshes, one of an older epoch, a writer at work, or the entry
 * is due to move up the LRU queue)
 */

ngx_int_t
ngx_icp_gate_cache_peek(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_msec_t stale, ngx_icp_gate_verdict_t *v)
{
    u_char                     *start;
    size_t                      len, icp_len, span;
    uint32_t                    now;
    ngx_uint_t                  n;
    ngx_msec_int_t              age;
    ngx_atomic_uint_t           seq;
    ngx_icp_gate_cache_sh_t    *sh;
    ngx_icp_gate_cache_node_t  *cn;

    sh = cache->sh;

    seq = sh->seq;
    ngx_icp_gate_load_fence();

    if (seq & 1) {
        return NGX_DECLINED;
    }

    /*
     * an entry with its longest domain and number lies in the zone; the
     * few entries in the last bytes of the zone take the mutex's path
     */

    start = cache->shpool->start;
    span = cache->shpool->end - start - sizeof(ngx_icp_gate_cache_node_t)
           - 2 * 255;

    cn = *(ngx_icp_gate_cache_node_t * volatile *)
              ngx_icp_gate_cache_chain(sh, hash);

    for (n = 0; /* void */ ; n++) {

        if (cn == NULL
            || (size_t) ((u_char *) cn - start) > span
            || ((uintptr_t) cn & (NGX_ALIGNMENT - 1))
            || n == NGX_ICP_GATE_CACHE_CHAIN_MAX)
        {
            return NGX_DECLINED;
        }

        len = *(volatile u_char *) &cn->len;

        if (cn->hash == hash && len == domain->len
            && ngx_icp_gate_equal(domain->data, cn->data, len))
        {
            break;
        }

        cn = *(ngx_icp_gate_cache_node_t * volatile *) &cn->next;
    }

    icp_len = *(volatile u_char *) &cn->icp_len;
    now = (uint32_t) ngx_time();
    age = (ngx_msec_int_t) (ngx_current_msec - cn->expires);

    /*
     * an expired verdict whose refresh is under way answers here too:
     * otherwise every request of every worker would take the mutex until
     * the refresh is in
     */

    if (cn->status == NGX_ICP_GATE_STATUS_NONE
        || cn->epoch != sh->epoch
        || (age >= 0
            && (age >= (ngx_msec_int_t) stale
                || !ngx_icp_gate_cache_looked_up(cn)))
        || cn->used != now
        || cn->usable <= now
        || icp_len >= NGX_ICP_GATE_ICP_LEN)
    {
        return NGX_DECLINED;
    }

    /* who wrote it down is the console's business, not a request's */

    v->status = cn->status;
    v->region = cn->region;
    v->checked_at = cn->checked_at;
    v->icp_len = icp_len;

    /*
     * the usual number in one copy of a fixed size, which needs no loop:
     * the bytes past it are in the zone, and never read again
     */

    if (icp_len <= NGX_ICP_GATE_CACHE_ICP_COPY) {
        ngx_memcpy(v->icp, cn->data + len, NGX_ICP_GATE_CACHE_ICP_COPY);

    } else {
        ngx_memcpy(v->icp, cn->data + len, icp_len);
    }

    ngx_icp_gate_load_fence();

    return (sh->seq == seq) ? NGX_OK : NGX_DECLINED;
}


/*
 * NGX_OK: *v is a verdict, fresh (NGX_ICP_GATE_CACHE_FRESH), expired less
 * than "stale" ago, or (NGX_ICP_GATE_CACHE_STALE) too stale to answer but
 * while its refresh fails; NGX_DECLINED: none, or only one past its own
 * TTL (NGX_ICP_GATE_CACHE_FAILED: a lookup failed a moment ago); NGX_ERROR:
 * no room even for a placeholder.  NGX_ICP_GATE_CACHE_LOCKED: the caller
 * holds the entry's update lock (lock_for 0 never takes it).
 */

ngx_int_t
ngx_icp_gate_cache_lookup(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_msec_t lock_for, ngx_msec_t stale,
    ngx_icp_gate_verdict_t *v, ngx_uint_t *flags)
{
    ngx_msec_int_t              age;
    uint32_t                    now;
    ngx_int_t                   rc;
    ngx_icp_gate_cache_node_t  *cn;

    *flags = 0;
    now = (uint32_t) ngx_time();

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    if (cn == NULL) {

        if (lock_for == 0) {
            ngx_shmtx_unlock(&cache->shpool->mutex);
            return NGX_DECLINED;
        }

        /* a placeholder whose lock tells the other workers to wait */

        ngx_icp_gate_cache_write_begin(cache);
        cn = ngx_icp_gate_cache_create(cache, domain, hash, 0);
        ngx_icp_gate_cache_write_end(cache);

        if (cn == NULL) {
            ngx_shmtx_unlock(&cache->shpool->mutex);
            return NGX_ERROR;
        }

        *flags = ngx_icp_gate_cache_lock(cn, lock_for);

        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    if (cn->epoch != cache->sh->epoch) {
        ngx_icp_gate_cache_write_begin(cache);
        ngx_icp_gate_cache_catch_up(cache, cn);
        ngx_icp_gate_cache_write_end(cache);
    }

    /* once a second is enough for the LRU, and leaves hits without writes */

    if (cn->used != now) {
        cn->used = now;
        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&cache->sh->queue, &cn->queue);
    }

    age = (ngx_msec_int_t) (ngx_current_msec - cn->expires);

    if (cn->status == NGX_ICP_GATE_STATUS_NONE || now >= cn->usable) {

        /* nobody asks again while a failure is remembered */

        *flags = (age < 0) ? NGX_ICP_GATE_CACHE_FAILED
                           : ngx_icp_gate_cache_lock(cn, lock_for);
        rc = NGX_DECLINED;

    } else {
        v->status = cn->status;
        v->region = cn->region;
        v->source = cn->source;
        v->checked_at = cn->checked_at;
        v->version = cn->version;
        v->icp_len = cn->icp_len;
        ngx_memcpy(v->icp, cn->data + cn->len, cn->icp_len);

        if (age < 0) {
            *flags = NGX_ICP_GATE_CACHE_FRESH;

        } else {
            *flags = ngx_icp_gate_cache_lock(cn, lock_for);

            if (age >= (ngx_msec_int_t) stale) {
                *flags |= NGX_ICP_GATE_CACHE_STALE;
            }
        }

        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/*
 * fresh_for: how long it answers alone; usable_for: at all, in seconds.
 * mark: where the news stood (ngx_icp_gate_cache_mark()): when the lookup
 * began, for a purge since, which makes it store nothing (NGX_ABORT, as
 * for a worker of an older configuration, ngx_icp_gate_cache_join()); and,
 * with NGX_ICP_GATE_CACHE_READ, when v was asked of Redis: a change Redis
 * told since, or a new epoch, makes v older than the zone's copy, which it
 * then does not replace (v is stored expired where there is none, to be
 * read again when next used; after a change told, it answers only if that
 * read fails).  A verdict of an older version than the
 * copy's replaces it neither.  NGX_ICP_GATE_CACHE_RELEASE: the caller
 * holds the entry's update lock, and gives it up unless another worker
 * took it over.  NGX_DONE: stored, and news to the workers' watchers (its
 * status or region is not the one the zone had, or it refuses and the
 * zone had none); NGX_ERROR: the zone had no room for it; NGX_DECLINED:
 * no room for an older one, which no worker should keep aside either.
 */

ngx_int_t
ngx_icp_gate_cache_store(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_icp_gate_verdict_t *v, ngx_msec_t fresh_for,
    time_t usable_for, ngx_icp_gate_cache_mark_t *mark, ngx_uint_t flags)
{
    ngx_int_t                   rc;
    ngx_uint_t                  older, told, news;
    ngx_icp_gate_cache_sh_t    *sh;
    ngx_icp_gate_cache_node_t  *cn, *grown;

    sh = cache->sh;
    rc = NGX_ERROR;

    ngx_shmtx_lock(&cache->shpool->mutex);
    ngx_icp_gate_cache_write_begin(cache);

    /* a purge since the lookup began: its lock went with the purge */

    if (mark && ngx_icp_gate_cache_seen_since(sh->purged_ring, sh->purges,
                                              mark->purges, domain, hash))
    {
        rc = NGX_ABORT;
        goto done;
    }

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    /* a worker of a configuration a newer one replaced: its lock goes */

    if (cache->generation < sh->generation) {
        if (cn && (flags & NGX_ICP_GATE_CACHE_RELEASE)
            && cn->holder == ngx_pid)
        {
            cn->locked = 0;
        }

        rc = NGX_ABORT;
        goto done;
    }

    if (cn) {
        ngx_icp_gate_cache_catch_up(cache, cn);
    }

    told = (flags & NGX_ICP_GATE_CACHE_READ)
           && ngx_icp_gate_cache_seen_since(sh->told_ring, sh->told,
                                            mark->told, domain, hash);

    older = told
            || ((flags & NGX_ICP_GATE_CACHE_READ) && mark->epoch != sh->epoch);

    if (cn && cn->status != NGX_ICP_GATE_STATUS_NONE
        && (older || (v->version && cn->version > v->version)))
    {
        if ((flags & NGX_ICP_GATE_CACHE_RELEASE) && cn->holder == ngx_pid) {
            cn->locked = 0;
        }

        rc = NGX_OK;
        goto done;
    }

    /*
     * what a judgement reads changed: live sessions must hear of it, also
     * when the zone had let the domain go meanwhile
     */

    if (cn == NULL || cn->status == NGX_ICP_GATE_STATUS_NONE) {
        news = (v->status != NGX_ICP_GATE_STATUS_FILED);

    } else {
        news = (cn->status != v->status || cn->region != v->region);
    }

    if (cn == NULL) {
        cn = ngx_icp_gate_cache_create(cache, domain, hash, v->icp_len);
        if (cn == NULL) {
            rc = older ? NGX_DECLINED : NGX_ERROR;
            goto done;
        }

    } else {
        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&sh->queue, &cn->queue);
    }

    if (v->icp_len > cn->icp_room) {
        grown = ngx_icp_gate_cache_grow(cache, cn, v->icp_len);

        if (grown == NULL) {
            /* better no verdict than one without its filing number */
            ngx_icp_gate_cache_delete(cache, cn);
            rc = older ? NGX_DECLINED : NGX_ERROR;
            goto done;
        }

        cn = grown;
    }

    cn->status = (u_char) v->status;
    cn->region = (u_char) v->region;
    cn->source = (u_char) v->source;
    cn->checked_at = (uint32_t) v->checked_at;
    cn->version = v->version;
    cn->used = (uint32_t) ngx_time();
    cn->icp_len = (u_char) v->icp_len;
    ngx_memcpy(cn->data + cn->len, v->icp, v->icp_len);

    if (older) {
        fresh_for = 0;
    }

    cn->expires = ngx_current_msec + fresh_for;
    cn->usable = (uint32_t) (ngx_time() + usable_for);
    cn->epoch = sh->epoch;

    /*
     * read before a change Redis told of the domain: it answers only if its
     * refresh fails; read before the channel came back, as any copy then,
     * while its refresh runs
     */

    if (told) {
        ngx_icp_gate_cache_shut(cache, cn);
    }

    if ((flags & NGX_ICP_GATE_CACHE_RELEASE) && cn->holder == ngx_pid) {
        cn->locked = 0;
    }

    rc = NGX_OK;

    if (news) {
        ngx_icp_gate_cache_news_locked(cache, domain, hash);
        rc = NGX_DONE;
    }

done:

    ngx_icp_gate_cache_write_end(cache);
    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/*
 * retry_after: how long the failure is remembered; mark: where the news
 * stood when the lookup began, NULL for a lock taken without a lookup
 */

void
ngx_icp_gate_cache_release(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_msec_t retry_after, ngx_icp_gate_cache_mark_t *mark)
{
    ngx_icp_gate_cache_sh_t    *sh;
    ngx_icp_gate_cache_node_t  *cn;

    sh = cache->sh;

    ngx_shmtx_lock(&cache->shpool->mutex);
    ngx_icp_gate_cache_write_begin(cache);

    /*
     * a lock another worker took over (this one's ran past its deadline)
     * is that worker's: its lookup may yet succeed; a purge since the
     * lookup began took the lock away, and may have let another take it
     */

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    if (cn && cn->holder == ngx_pid
        && (mark == NULL
            || !ngx_icp_gate_cache_seen_since(sh->purged_ring, sh->purges,
                                              mark->purges, domain, hash)))
    {
        ngx_icp_gate_cache_catch_up(cache, cn);

        cn->locked = 0;

        if (cn->status == NGX_ICP_GATE_STATUS_NONE) {

            if (retry_after) {
                /* the placeholder remembers the failure */
                cn->expires = ngx_current_msec + retry_after;

            } else {
                ngx_icp_gate_cache_delete(cache, cn);
            }

        } else if (retry_after
                   && (ngx_msec_int_t) (cn->expires - ngx_current_msec) <= 0)
        {
            /*
             * a failed refresh: the old verdict answers a while longer
             * (while it is usable), and nobody asks again meanwhile
             */
            cn->expires = ngx_current_msec + retry_after;
        }
    }

    ngx_icp_gate_cache_write_end(cache);
    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * The node's filing API budget, a token bucket all workers share, full at
 * the start: rate is in thousandths of a request a second (at most 10^9),
 * and a second's worth, or at least one request, may be spent at once.
 * NGX_BUSY: spent.
 */

ngx_int_t
ngx_icp_gate_cache_spend(ngx_icp_gate_cache_t *cache, ngx_uint_t rate)
{
    ngx_int_t                 rc;
    ngx_uint_t                earned, full;
    ngx_msec_int_t            elapsed, fill;
    ngx_icp_gate_cache_sh_t  *sh;

    sh = cache->sh;
    full = ngx_max(rate, 1000);
    fill = (ngx_msec_int_t) (full * 1000 / rate);

    ngx_shmtx_lock(&cache->shpool->mutex);

    /*
     * Each worker has its own clock: one a little behind earns nothing.
     * What a moment earns is counted from the time it was earned by, so
     * that a slow rate asked often still fills up.
     */

    elapsed = (ngx_msec_int_t) (ngx_current_msec - sh->budget_at);

    if (elapsed >= fill) {
        sh->budget = full;
        sh->budget_at = ngx_current_msec;

    } else if (elapsed > 0) {
        earned = rate * (ngx_uint_t) elapsed / 1000;

        if (earned) {
            sh->budget = ngx_min(sh->budget + earned, full);
            sh->budget_at += earned * 1000 / rate;
        }
    }

    if (sh->budget >= 1000) {
        sh->budget -= 1000;
        rc = NGX_OK;

    } else {
        rc = NGX_BUSY;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/*
 * The entry stays fresh for at least fresh_for if it still holds the
 * verdict v: a newer one, or an operator's, is left as it is, and so is
 * one a purge, or a newer verdict in Redis, shut meanwhile (past
 * stale-while-revalidate, it answers only if its refresh fails)
 */

void
ngx_icp_gate_cache_extend(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_icp_gate_verdict_t *v, ngx_msec_t fresh_for)
{
    ngx_icp_gate_cache_node_t  *cn;

    ngx_shmtx_lock(&cache->shpool->mutex);
    ngx_icp_gate_cache_write_begin(cache);

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    if (cn) {
        ngx_icp_gate_cache_catch_up(cache, cn);
    }

    if (cn
        && cache->generation >= cache->sh->generation
        && cn->status == v->status
        && cn->version == v->version
        && cn->checked_at == (uint32_t) v->checked_at
        && (ngx_msec_int_t) (ngx_current_msec - cn->expires)
           < (ngx_msec_int_t) cache->stale
        && (ngx_msec_int_t) (ngx_current_msec + fresh_for - cn->expires) > 0)
    {
        cn->expires = ngx_current_msec + fresh_for;
    }

    ngx_icp_gate_cache_write_end(cache);
    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* a domain's verdict may have changed: every worker's watchers hear of it */

void
ngx_icp_gate_cache_news(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash)
{
    ngx_shmtx_lock(&cache->shpool->mutex);
    ngx_icp_gate_cache_news_locked(cache, domain, hash);
    ngx_shmtx_unlock(&cache->shpool->mutex);
}


static void
ngx_icp_gate_cache_news_locked(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash)
{
    ngx_icp_gate_cache_sh_t      *sh;
    ngx_icp_gate_cache_change_t  *ch;

    sh = cache->sh;

    ch = &sh->changed[sh->changes % NGX_ICP_GATE_CACHE_CHANGES];

    ch->hash = hash;
    ch->len = (u_char) ngx_min(domain->len, NGX_ICP_GATE_DOMAIN_LEN);
    ngx_memcpy(ch->data, domain->data, ch->len);

    /* the record before the number a worker reads without the mutex */

    ngx_icp_gate_store_fence();
    sh->changes++;
}


/*
 * Redis told that the domain's hash changed: a read of it sent before now
 * is older than the zone's copy (ngx_icp_gate_cache_store())
 */

void
ngx_icp_gate_cache_told(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash)
{
    ngx_shmtx_lock(&cache->shpool->mutex);

    ngx_icp_gate_cache_remember(cache->sh->told_ring, &cache->sh->told,
                                domain, hash);

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* whether a lookup that began at "mark" was overtaken by a purge since */

ngx_uint_t
ngx_icp_gate_cache_purged(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_icp_gate_cache_mark_t *mark)
{
    ngx_uint_t                rc;
    ngx_icp_gate_cache_sh_t  *sh;

    sh = cache->sh;

    /* every miss that joins a lookup asks: one read while nothing happens */

    if (sh->purges == mark->purges) {
        return 0;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    rc = ngx_icp_gate_cache_seen_since(sh->purged_ring, sh->purges,
                                       mark->purges, domain, hash);

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/*
 * The domains told changed since "seen", oldest first: handler(data,
 * domain), with NULL once for "any" when more were told than the zone
 * keeps.  A NULL handler only brings "seen" up to now.
 */

void
ngx_icp_gate_cache_changes(ngx_icp_gate_cache_t *cache, ngx_uint_t *seen,
    ngx_icp_gate_cache_changes_pt handler, void *data)
{
    ngx_str_t                     domain;
    ngx_uint_t                    n, first, i;
    ngx_icp_gate_cache_sh_t      *sh;
    ngx_icp_gate_cache_change_t  *ch;
    ngx_icp_gate_cache_change_t   copy[NGX_ICP_GATE_CACHE_CHANGES];

    sh = cache->sh;

    /* the poll of every worker: one read, no mutex, while nothing changes */

    if (sh->changes == *seen) {
        return;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    n = sh->changes;
    first = *seen;

    if (n - first > NGX_ICP_GATE_CACHE_CHANGES) {
        first = n - NGX_ICP_GATE_CACHE_CHANGES;
    }

    for (i = first; i != n; i++) {
        copy[i - first] = sh->changed[i % NGX_ICP_GATE_CACHE_CHANGES];
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    if (handler == NULL) {
        *seen = n;
        return;
    }

    if (first != *seen) {
        *seen = n;
        handler(data, NULL);
        return;
    }

    *seen = n;

    for (i = 0; i < n - first; i++) {
        ch = &copy[i];

        domain.data = ch->data;
        domain.len = ch->len;

        handler(data, &domain);
    }
}


/*
 * Every copy may be out of date: each one counts as expired from now on
 * (it answers while its refresh runs), and one read from Redis before now
 * is stored expired.  A new epoch, whatever the zone holds: an entry of an
 * older one is brought up to it when next looked at.
 */

void
ngx_icp_gate_cache_expire_all(ngx_icp_gate_cache_t *cache)
{
    ngx_shmtx_lock(&cache->shpool->mutex);
    ngx_icp_gate_cache_expire_locked(cache);
    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * Under the mutex.  Every channel set up now is whole from here: what it
 * was not told came before this, and is read again.
 */

static void
ngx_icp_gate_cache_expire_locked(ngx_icp_gate_cache_t *cache)
{
    ngx_uint_t  i;

    ngx_icp_gate_cache_write_begin(cache);

    cache->sh->epoch_at = ngx_current_msec;
    ngx_icp_gate_store_fence();
    cache->sh->epoch++;

    ngx_icp_gate_cache_write_end(cache);

    for (i = 0; i < NGX_ICP_GATE_CACHE_LISTENERS; i++) {
        cache->sh->listeners[i].whole = 1;
    }
}


/*
 * This worker's invalidation channel is set up.  NGX_OK: another channel
 * listens, which vouches for this one once it hears a beat of its own
 * (ngx_icp_gate_cache_heard()); NGX_DECLINED: none did, so a change may
 * have gone untold, and every copy expired.
 */

ngx_int_t
ngx_icp_gate_cache_listen(ngx_icp_gate_cache_t *cache)
{
    ngx_int_t                       rc;
    ngx_uint_t                      i;
    ngx_icp_gate_cache_sh_t        *sh;
    ngx_icp_gate_cache_listener_t  *l;

    sh = cache->sh;

    ngx_shmtx_lock(&cache->shpool->mutex);

    /* first: the slots of dead workers are freed */

    rc = ngx_icp_gate_cache_others(cache, 0) ? NGX_OK : NGX_DECLINED;

    l = cache->listener;

    for (i = 0; l == NULL && i < NGX_ICP_GATE_CACHE_LISTENERS; i++) {
        if (sh->listeners[i].pid == 0) {
            l = &sh->listeners[i];
        }
    }

    /* no room: unseen by the others, it vouches for none, expires all */

    if (l) {
        l->pid = ngx_pid;
        l->joined = ++sh->joins;
        l->whole = 0;

    } else {
        rc = NGX_DECLINED;
    }

    cache->listener = l;

    if (rc == NGX_DECLINED) {
        ngx_icp_gate_cache_expire_locked(cache);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/* where the set-ups stand, before a beat is sent */

ngx_uint_t
ngx_icp_gate_cache_joins(ngx_icp_gate_cache_t *cache)
{
    return cache->sh->joins;
}


/*
 * This worker's channel heard back a beat it sent when the set-ups stood
 * at "joins": it vouches for the channels set up after its own and by
 * then.  Its own, not vouched for yet, counts as having missed a change
 * (every copy expires) when no older channel is left to vouch for it, or
 * when it waited long enough ("give_up").
 */

void
ngx_icp_gate_cache_heard(ngx_icp_gate_cache_t *cache, ngx_uint_t joins,
    ngx_uint_t give_up)
{
    ngx_uint_t                      i;
    ngx_icp_gate_cache_listener_t  *l, *self;

    self = cache->listener;

    if (self == NULL) {
        return;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    for (i = 0; i < NGX_ICP_GATE_CACHE_LISTENERS; i++) {
        l = &cache->sh->listeners[i];

        if (l->pid && l->joined > self->joined && l->joined <= joins) {
            l->whole = 1;
        }
    }

    if (!self->whole
        && (give_up || !ngx_icp_gate_cache_others(cache, self->joined)))
    {
        ngx_icp_gate_cache_expire_locked(cache);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * A change may have gone untold to this worker: its channel was lost, or
 * is away while Redis answers.  Every copy expires, unless this worker
 * was not listening and another channel is.
 */

void
ngx_icp_gate_cache_unheard(ngx_icp_gate_cache_t *cache)
{
    ngx_shmtx_lock(&cache->shpool->mutex);

    if (cache->listener) {
        cache->listener->pid = 0;
        cache->listener = NULL;

        ngx_icp_gate_cache_expire_locked(cache);

    } else if (!ngx_icp_gate_cache_others(cache, 0)) {
        ngx_icp_gate_cache_expire_locked(cache);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * May this worker, exiting, close its channel?  NGX_DECLINED when no newer
 * configuration is coming (a stop); NGX_OK when a newer channel listens
 * and every channel is whole; NGX_AGAIN while it is not so, or while
 * "busy": a change this worker was told is still being read.
 */

ngx_int_t
ngx_icp_gate_cache_handed_over(ngx_icp_gate_cache_t *cache, ngx_uint_t busy)
{
    ngx_int_t                       rc;
    ngx_uint_t                      i;
    ngx_icp_gate_cache_listener_t  *l, *self;

    if (cache->sh->reloads == cache->reload) {
        return NGX_DECLINED;
    }

    self = cache->listener;

    if (busy || self == NULL) {
        return NGX_AGAIN;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    /* a dead worker's channel, vouched for or not, waits for nothing */

    (void) ngx_icp_gate_cache_others(cache, 0);

    rc = NGX_AGAIN;

    for (i = 0; self->whole && i < NGX_ICP_GATE_CACHE_LISTENERS; i++) {
        l = &cache->sh->listeners[i];

        if (l->pid == 0 || l == self) {
            continue;
        }

        if (!l->whole) {
            rc = NGX_AGAIN;
            break;
        }

        if (l->joined > self->joined) {
            rc = NGX_OK;
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/*
 * This worker stops listening on purpose, as it exits; "unsure": a change
 * it was told may not be in the zone (its read was under way).  Every
 * copy expires if that, or another channel, or its own, is not whole.
 */

void
ngx_icp_gate_cache_unlisten(ngx_icp_gate_cache_t *cache, ngx_uint_t unsure)
{
    ngx_uint_t                      i, expire;
    ngx_icp_gate_cache_listener_t  *l;

    if (cache->listener == NULL) {
        return;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    expire = unsure || !cache->listener->whole;

    cache->listener->pid = 0;
    cache->listener = NULL;

    for (i = 0; i < NGX_ICP_GATE_CACHE_LISTENERS; i++) {
        l = &cache->sh->listeners[i];

        if (l->pid && !l->whole) {
            expire = 1;
        }
    }

    if (expire) {
        ngx_icp_gate_cache_expire_locked(cache);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * Under the mutex: whether another worker's channel listens (set up
 * before "before", if not 0).  A worker that died without saying so
 * (kill -9, a crash) listens no more: its slot is freed.
 */

static ngx_uint_t
ngx_icp_gate_cache_others(ngx_icp_gate_cache_t *cache, ngx_uint_t before)
{
    ngx_uint_t                      i, n;
    ngx_icp_gate_cache_listener_t  *l;

    n = 0;

    for (i = 0; i < NGX_ICP_GATE_CACHE_LISTENERS; i++) {
        l = &cache->sh->listeners[i];

        if (l->pid == 0 || l->pid == ngx_pid) {
            continue;
        }

        if (kill(l->pid, 0) == -1 && ngx_errno == NGX_ESRCH) {
            l->pid = 0;
            continue;
        }

        if (before == 0 || l->joined < before) {
            n++;
        }
    }

    return n;
}


/*
 * NGX_OK: the zone holds a verdict of the domain; NGX_AGAIN: a placeholder,
 * a worker is looking it up; NGX_DECLINED: nothing
 */

ngx_int_t
ngx_icp_gate_cache_holds(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash)
{
    ngx_int_t                   rc;
    ngx_icp_gate_cache_node_t  *cn;

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    rc = (cn == NULL) ? NGX_DECLINED
         : (cn->status == NGX_ICP_GATE_STATUS_NONE) ? NGX_AGAIN : NGX_OK;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/* a copy Redis said changed, when its new verdict could not be read */

void
ngx_icp_gate_cache_expire(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash)
{
    ngx_icp_gate_cache_node_t  *cn;

    ngx_shmtx_lock(&cache->shpool->mutex);
    ngx_icp_gate_cache_write_begin(cache);

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    if (cn && cn->status != NGX_ICP_GATE_STATUS_NONE) {
        ngx_icp_gate_cache_catch_up(cache, cn);

        if ((ngx_msec_int_t) (cn->expires - ngx_current_msec) > 0) {
            cn->expires = ngx_current_msec;
        }
    }

    ngx_icp_gate_cache_write_end(cache);
    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * An operator's purge: the copy answers no more, and the next lookup waits
 * for its refresh, as for a copy past stale-while-revalidate.  The copy
 * stays, so that a refresh that brings another status tells the live
 * sessions (NGX_DONE of ngx_icp_gate_cache_store()), and answers only if
 * the refresh fails.  A lookup under way, on any worker, is overtaken: it
 * stores nothing from now on, and its update lock goes now, so that the
 * next lookup does not wait for its answer.  The watchers hear of it.
 * NGX_DECLINED: the zone had no copy.
 */

ngx_int_t
ngx_icp_gate_cache_purge(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash)
{
    ngx_int_t                   rc;
    ngx_icp_gate_cache_sh_t    *sh;
    ngx_icp_gate_cache_node_t  *cn;

    sh = cache->sh;
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&cache->shpool->mutex);
    ngx_icp_gate_cache_write_begin(cache);

    ngx_icp_gate_cache_remember(sh->purged_ring, &sh->purges, domain, hash);

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    if (cn && cn->status == NGX_ICP_GATE_STATUS_NONE) {
        /* a placeholder, or a failure remembered: nothing to keep */
        ngx_icp_gate_cache_delete(cache, cn);

    } else if (cn) {
        ngx_icp_gate_cache_shut(cache, cn);
        cn->locked = 0;
        rc = NGX_OK;
    }

    ngx_icp_gate_cache_news_locked(cache, domain, hash);

    ngx_icp_gate_cache_write_end(cache);
    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/*
 * Redis has a newer verdict than one of "version" (a write of it was
 * refused): a copy no newer than that answers, as after a purge, only if
 * its refresh fails, and the watchers hear of it; lookups under way go on
 */

void
ngx_icp_gate_cache_overtaken(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, uint64_t version)
{
    ngx_icp_gate_cache_node_t  *cn;

    ngx_shmtx_lock(&cache->shpool->mutex);
    ngx_icp_gate_cache_write_begin(cache);

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    if (cn && cn->status != NGX_ICP_GATE_STATUS_NONE
        && cn->version <= version)
    {
        ngx_icp_gate_cache_shut(cache, cn);
    }

    ngx_icp_gate_cache_news_locked(cache, domain, hash);

    ngx_icp_gate_cache_write_end(cache);
    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* NGX_DECLINED: the zone has no entry for the domain */

ngx_int_t
ngx_icp_gate_cache_inspect(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_icp_gate_cache_entry_t *e)
{
    ngx_msec_t                  expires;
    ngx_icp_gate_cache_node_t  *cn;

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    if (cn == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    ngx_memzero(&e->verdict, sizeof(ngx_icp_gate_verdict_t));

    e->verdict.status = cn->status;
    e->verdict.region = cn->region;
    e->verdict.source = cn->source;
    e->verdict.checked_at = cn->checked_at;
    e->verdict.version = cn->version;
    e->verdict.icp_len = cn->icp_len;
    ngx_memcpy(e->verdict.icp, cn->data + cn->len, cn->icp_len);

    expires = cn->expires;

    if (cn->epoch != cache->sh->epoch
        && (ngx_msec_int_t) (expires - cache->sh->epoch_at) > 0)
    {
        expires = cache->sh->epoch_at;
    }

    e->fresh = (ngx_msec_int_t) (expires - ngx_current_msec);
    e->usable = cn->usable;
    e->looked_up = ngx_icp_gate_cache_looked_up(cn);
    e->chunk = (size_t) 1 << cn->chunk;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return NGX_OK;
}


void
ngx_icp_gate_cache_stats(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_stats_t *st)
{
    ngx_slab_pool_t  *shpool;

    shpool = cache->shpool;

    st->size = shpool->end - (u_char *) shpool;
    st->free = shpool->pfree << ngx_pagesize_shift;
    st->entries = cache->sh->entries;
}


/*
 * Under the mutex, inside a write: an entry stored before the zone's epoch
 * began expires when it began, if it was fresh still
 */

static void
ngx_icp_gate_cache_catch_up(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn)
{
    ngx_icp_gate_cache_sh_t  *sh;

    sh = cache->sh;

    if (cn->epoch == sh->epoch) {
        return;
    }

    if (cn->status != NGX_ICP_GATE_STATUS_NONE
        && (ngx_msec_int_t) (cn->expires - sh->epoch_at) > 0)
    {
        cn->expires = sh->epoch_at;
    }

    cn->epoch = sh->epoch;
}


/*
 * Past stale-while-revalidate by this worker's clock and by any other
 * worker's, which may lag it by the time it took to wake; a refresh that
 * fails sets it again, as for any copy, and nobody asks meanwhile
 */

static void
ngx_icp_gate_cache_shut(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn)
{
    ngx_icp_gate_cache_catch_up(cache, cn);

    cn->expires = ngx_current_msec - cache->stale - NGX_ICP_GATE_CACHE_CLOCKS;
}


/* where the news stands now, before a lookup or a read starts */

void
ngx_icp_gate_cache_mark(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_mark_t *mark)
{
    mark->told = cache->sh->told;
    mark->purges = cache->sh->purges;
    mark->epoch = cache->sh->epoch;
}


/* this worker's icp_gate_stale_while_revalidate, for copies it shuts */

void
ngx_icp_gate_cache_init_worker(ngx_icp_gate_cache_t *cache, ngx_msec_t stale)
{
    cache->stale = stale;
}


/*
 * A worker of a configuration generation: from the first worker of a newer
 * one on, the workers of older ones (shutting down after a reload) store
 * nothing, so that none of them undoes what the newer configuration
 * changed in the zone (a file's verdicts) with a verdict of its own.
 * Generations only grow: 0 for every configuration until one changes what
 * the zone must forget.
 */

void
ngx_icp_gate_cache_join(ngx_icp_gate_cache_t *cache, ngx_uint_t generation)
{
    ngx_icp_gate_cache_sh_t  *sh;

    sh = cache->sh;

    cache->generation = generation;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (sh->generation < generation) {
        sh->generation = generation;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * The zone's hash key becomes this process's, before it hashes anything:
 * every worker of the node, and every worker after a reload, which keeps
 * the zone, puts a domain in the same bucket
 */

void
ngx_icp_gate_cache_use_key(ngx_icp_gate_cache_t *cache)
{
    ngx_icp_gate_hash_key = cache->sh->key;
}


/* the bucket a hash picks: the unit tests fill chains */

ngx_uint_t
ngx_icp_gate_cache_bucket(ngx_icp_gate_cache_t *cache, uint32_t hash)
{
    return ngx_icp_gate_cache_chain(cache->sh, hash) - cache->sh->buckets;
}


/* the zone's epoch: a copy kept out of the zone is of its epoch only */

ngx_uint_t
ngx_icp_gate_cache_epoch(ngx_icp_gate_cache_t *cache)
{
    return cache->sh->epoch;
}


/* under the mutex: a change told, or a purge, into its ring */

static void
ngx_icp_gate_cache_remember(ngx_icp_gate_cache_seen_t *ring,
    ngx_atomic_t *count, ngx_str_t *domain, uint32_t hash)
{
    ngx_icp_gate_cache_seen_t  *seen;

    seen = &ring[*count % NGX_ICP_GATE_CACHE_MARKS];

    seen->hash = hash;
    seen->len = (uint32_t) domain->len;

    (*count)++;
}


/*
 * Under the mutex: whether the ring has the domain since "since"; one that
 * came round since cannot tell, which counts as yes.  Only the hash and
 * the length are kept: another domain that shares both counts as yes too,
 * which costs a lookup its answer's store, never a change missed.
 */

static ngx_uint_t
ngx_icp_gate_cache_seen_since(ngx_icp_gate_cache_seen_t *ring,
    ngx_uint_t count, ngx_uint_t since, ngx_str_t *domain, uint32_t hash)
{
    ngx_uint_t                  i, n;
    ngx_icp_gate_cache_seen_t  *seen;

    n = count - since;

    if (n > NGX_ICP_GATE_CACHE_MARKS) {
        return 1;
    }

    for (i = 1; i <= n; i++) {
        seen = &ring[(count - i) % NGX_ICP_GATE_CACHE_MARKS];

        if (seen->hash == hash && seen->len == domain->len) {
            return 1;
        }
    }

    return 0;
}


static ngx_uint_t
ngx_icp_gate_cache_lock(ngx_icp_gate_cache_node_t *cn, ngx_msec_t lock_for)
{
    if (lock_for == 0) {
        return 0;
    }

    /*
     * a lock past its deadline belonged to a worker that hung; one whose
     * holder is gone (killed, or crashed) is taken over at once
     */

    if (ngx_icp_gate_cache_looked_up(cn)
        && (cn->holder == ngx_pid
            || kill(cn->holder, 0) == 0
            || ngx_errno != NGX_ESRCH))
    {
        return 0;
    }

    cn->locked = ngx_current_msec + lock_for;
    cn->holder = ngx_pid;

    if (cn->locked == 0) {
        cn->locked = 1;
    }

    return NGX_ICP_GATE_CACHE_LOCKED;
}


/*
 * Under the mutex: a reader that saw either end of the change drops it.
 * Odd whatever it was: a worker that died between the two (the master
 * frees its lock) must not leave the number even while changes go on.
 */

static void
ngx_icp_gate_cache_write_begin(ngx_icp_gate_cache_t *cache)
{
    cache->sh->seq = (cache->sh->seq + 1) | 1;
    ngx_icp_gate_store_fence();
}


static void
ngx_icp_gate_cache_write_end(ngx_icp_gate_cache_t *cache)
{
    ngx_icp_gate_store_fence();
    cache->sh->seq++;
}


static ngx_icp_gate_cache_node_t *
ngx_icp_gate_cache_find(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash)
{
    ngx_icp_gate_cache_node_t  *cn;

    for (cn = *ngx_icp_gate_cache_chain(cache->sh, hash); cn; cn = cn->next) {
        if (cn->hash == hash && cn->len == domain->len
            && ngx_memcmp(cn->data, domain->data, domain->len) == 0)
        {
            return cn;
        }
    }

    return NULL;
}


/* NULL: no room, or a chain as long as it may be whose entries all stay */

static ngx_icp_gate_cache_node_t *
ngx_icp_gate_cache_create(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, size_t room)
{
    ngx_uint_t                  chunk;
    ngx_icp_gate_cache_node_t  *cn;

    if (ngx_icp_gate_cache_shorten(cache, hash) != NGX_OK) {
        return NULL;
    }

    cn = ngx_icp_gate_cache_alloc(cache, domain->len, &room, &chunk);
    if (cn == NULL) {
        return NULL;
    }

    cn->hash = hash;
    cn->status = NGX_ICP_GATE_STATUS_NONE;
    cn->region = NGX_ICP_GATE_REGION_NONE;
    cn->source = NGX_ICP_GATE_SOURCE_NONE;
    cn->len = (u_char) domain->len;
    cn->icp_len = 0;
    cn->icp_room = (u_char) room;
    cn->chunk = (u_char) chunk;
    cn->expires = 0;
    cn->locked = 0;
    cn->holder = 0;
    cn->checked_at = 0;
    cn->version = 0;
    cn->epoch = cache->sh->epoch;
    cn->used = (uint32_t) ngx_time();
    cn->usable = 0;
    ngx_memcpy(cn->data, domain->data, domain->len);

    ngx_icp_gate_cache_link(cache, cn);

    return cn;
}


/*
 * Under the mutex, before an entry joins the chain of "hash": a chain may
 * not grow past what a reader walks, however names fall into buckets.  In
 * a full one the entry least recently used (by the second, and the oldest
 * of those) goes, unless it is being looked up.  NGX_DECLINED: every
 * entry of the chain is being looked up, and the new one waits its turn
 * (its worker asks alone and keeps the verdict aside).
 */

static ngx_int_t
ngx_icp_gate_cache_shorten(ngx_icp_gate_cache_t *cache, uint32_t hash)
{
    ngx_uint_t                  n;
    ngx_icp_gate_cache_node_t  *cn, *victim;

    victim = NULL;

    for (n = 0, cn = *ngx_icp_gate_cache_chain(cache->sh, hash);
         cn;
         n++, cn = cn->next)
    {
        if (!ngx_icp_gate_cache_looked_up(cn)
            && (victim == NULL || cn->used <= victim->used))
        {
            victim = cn;
        }
    }

    if (n < NGX_ICP_GATE_CACHE_CHAIN_MAX) {
        return NGX_OK;
    }

    if (victim == NULL) {
        return NGX_DECLINED;
    }

    ngx_icp_gate_cache_delete(cache, victim);
    ngx_icp_gate_count(zone_evictions);

    return NGX_OK;
}


/* moves an entry to a node with room for a filing number of room bytes */

static ngx_icp_gate_cache_node_t *
ngx_icp_gate_cache_grow(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn, size_t room)
{
    ngx_uint_t                  chunk;
    ngx_icp_gate_cache_node_t  *grown;

    /* out of the LRU queue, so that making room cannot evict the entry */
    ngx_queue_remove(&cn->queue);

    grown = ngx_icp_gate_cache_alloc(cache, cn->len, &room, &chunk);

    if (grown == NULL) {
        ngx_queue_insert_head(&cache->sh->queue, &cn->queue);
        return NULL;
    }

    ngx_memcpy(grown, cn, offsetof(ngx_icp_gate_cache_node_t, data) + cn->len);
    grown->icp_room = (u_char) room;
    grown->chunk = (u_char) chunk;

    /* back in, so that ngx_icp_gate_cache_delete() finds it queued */
    ngx_queue_insert_head(&cache->sh->queue, &cn->queue);
    ngx_icp_gate_cache_delete(cache, cn);

    ngx_icp_gate_cache_link(cache, grown);

    return grown;
}


/*
 * A node for a domain of len bytes and a filing number of *room bytes, in
 * a slab chunk of 2^*chunk bytes.  The slab hands out powers of two: what
 * the node would waste anyway becomes room for the number, so a verdict
 * seldom has to move its placeholder.
 */

static ngx_icp_gate_cache_node_t *
ngx_icp_gate_cache_alloc(ngx_icp_gate_cache_t *cache, size_t len,
    size_t *room, ngx_uint_t *chunk)
{
    size_t                      size;
    ngx_uint_t                  freed;
    ngx_icp_gate_cache_node_t  *cn;

    size = offsetof(ngx_icp_gate_cache_node_t, data) + len;
    *chunk = ngx_icp_gate_cache_chunk(size + *room);

    if (*chunk < ngx_pagesize_shift) {
        *room = ngx_min(((size_t) 1 << *chunk) - size, NGX_ICP_GATE_ICP_LEN);
    }

    cn = ngx_slab_alloc_locked(cache->shpool, size + *room);

    if (cn || *chunk >= ngx_pagesize_shift) {
        return cn;
    }

    /* the zone is full: a chunk of this size, or a page, made free */

    freed = ngx_icp_gate_cache_evict(cache, *chunk);

    cn = ngx_slab_alloc_locked(cache->shpool, size + *room);

    if (cn || freed == 0) {
        return cn;
    }

    /*
     * The slab keeps a page to one chunk size: only a chunk of a bigger
     * size was freed, the entry lives in it, and is accounted at it
     */

    *chunk = freed;
    *room = ngx_min(((size_t) 1 << *chunk) - size, NGX_ICP_GATE_ICP_LEN);

    return ngx_slab_alloc_locked(cache->shpool, (size_t) 1 << *chunk);
}


/*
 * Makes room for an entry in a chunk of 2^chunk bytes: the least recently
 * used entry in a chunk of that size goes, found among the last few dozen
 * of the LRU queue; with none, the last few entries go, which may empty a
 * page the slab can cut to any size, and, if none of them was in a chunk
 * big enough, the least recently used in a bigger one.  Returns the
 * smallest chunk freed bigger than asked for, 0 if none.  Entries being
 * looked up stay.
 */

static ngx_uint_t
ngx_icp_gate_cache_evict(ngx_icp_gate_cache_t *cache, ngx_uint_t chunk)
{
    ngx_uint_t                  n, freed;
    ngx_queue_t                *q, *prev;
    ngx_icp_gate_cache_node_t  *cn, *bigger;

    bigger = NULL;
    q = ngx_queue_last(&cache->sh->queue);

    for (n = 0;
         q != ngx_queue_sentinel(&cache->sh->queue)
         && n < NGX_ICP_GATE_CACHE_VICTIMS;
         n++, q = ngx_queue_prev(q))
    {
        cn = ngx_queue_data(q, ngx_icp_gate_cache_node_t, queue);

        if (cn->chunk < chunk || ngx_icp_gate_cache_looked_up(cn)) {
            continue;
        }

        if (cn->chunk == chunk) {
            ngx_icp_gate_cache_delete(cache, cn);
            ngx_icp_gate_count(zone_evictions);
            return 0;
        }

        if (bigger == NULL) {
            bigger = cn;
        }
    }

    freed = 0;
    q = ngx_queue_last(&cache->sh->queue);

    for (n = 0;
         q != ngx_queue_sentinel(&cache->sh->queue)
         && n < NGX_ICP_GATE_CACHE_EVICT;
         n++)
    {
        prev = ngx_queue_prev(q);
        cn = ngx_queue_data(q, ngx_icp_gate_cache_node_t, queue);

        if (!ngx_icp_gate_cache_looked_up(cn)) {

            if (cn->chunk > chunk && (freed == 0 || cn->chunk < freed)) {
                freed = cn->chunk;
            }

            if (cn == bigger) {
                bigger = NULL;
            }

            ngx_icp_gate_cache_delete(cache, cn);
            ngx_icp_gate_count(zone_evictions);
        }

        q = prev;
    }

    if (freed == 0 && bigger) {
        freed = bigger->chunk;
        ngx_icp_gate_cache_delete(cache, bigger);
        ngx_icp_gate_count(zone_evictions);
    }

    return (freed < ngx_pagesize_shift) ? freed : 0;
}


/* the slab's chunk for an allocation of size bytes: 2^chunk bytes */

static ngx_uint_t
ngx_icp_gate_cache_chunk(size_t size)
{
    ngx_uint_t  chunk;

    for (chunk = 3; ((size_t) 1 << chunk) < size; chunk++) { /* void */ }

    return chunk;
}


/* at the head of its bucket and of the LRU queue */

static void
ngx_icp_gate_cache_link(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn)
{
    ngx_icp_gate_cache_node_t  **bucket;

    bucket = ngx_icp_gate_cache_chain(cache->sh, cn->hash);

    cn->next = *bucket;
    *bucket = cn;

    ngx_queue_insert_head(&cache->sh->queue, &cn->queue);
    cache->sh->entries++;
}


static void
ngx_icp_gate_cache_delete(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn)
{
    ngx_icp_gate_cache_node_t  **p;

    for (p = ngx_icp_gate_cache_chain(cache->sh, cn->hash);
         *p != cn;
         p = &(*p)->next)
    {
        /* void */
    }

    *p = cn->next;

    ngx_queue_remove(&cn->queue);
    ngx_slab_free_locked(cache->shpool, cn);
    cache->sh->entries--;
}


static ngx_int_t
ngx_icp_gate_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_icp_gate_cache_t  *ocache = data;

    size_t                 len;
    ngx_uint_t             n, shift;
    ngx_icp_gate_cache_t  *cache;

    cache = shm_zone->data;

    if (ocache) {
        /* a reload keeps every verdict the workers had */
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;

        /*
         * in the master, before the new workers start and the old ones are
         * told to exit: the old listener waits for the new one's channel
         */
        cache->reload = ngx_atomic_fetch_add(&cache->sh->reloads, 1) + 1;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    /* a power of two of buckets, about one a full zone's entry */

    for (n = 64, shift = 32 - 6;
         n * 2 * NGX_ICP_GATE_CACHE_BUCKET <= shm_zone->shm.size;
         n <<= 1, shift--)
    {
        /* void */
    }

    cache->sh = ngx_slab_calloc(cache->shpool,
                                offsetof(ngx_icp_gate_cache_sh_t, buckets)
                                + n * sizeof(ngx_icp_gate_cache_node_t *));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    cache->sh->shift = shift;
    ngx_queue_init(&cache->sh->queue);

    /* the key lives as long as the zone: every verdict stays in its bucket */

    if (ngx_icp_gate_cache_random_key(&cache->sh->key, shm_zone->shm.log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    len = sizeof(" in icp_gate zone \"\"") + shm_zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx, " in icp_gate zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* running out of room is expected: the LRU entries make way */
    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


/*
 * Random, and secret: ngx_random() is neither.  A read of /dev/urandom
 * longer than 256 bytes may come back short.
 */

static ngx_int_t
ngx_icp_gate_cache_random_key(ngx_icp_gate_hash_key_t *key, ngx_log_t *log)
{
    size_t     got;
    ssize_t    n;
    ngx_fd_t   fd;
    ngx_err_t  err;

    fd = ngx_open_file("/dev/urandom", NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      ngx_open_file_n " \"/dev/urandom\" failed: "
                      "icp_gate has no key for its zone's hash");
        return NGX_ERROR;
    }

    for (got = 0; got < sizeof(ngx_icp_gate_hash_key_t); got += n) {
        n = read(fd, (u_char *) key + got,
                 sizeof(ngx_icp_gate_hash_key_t) - got);

        if (n > 0) {
            continue;
        }

        err = (n == 0) ? 0 : ngx_errno;

        if (err == NGX_EINTR) {
            n = 0;
            continue;
        }

        ngx_log_error(NGX_LOG_EMERG, log, err,
                      "read() of \"/dev/urandom\" failed: "
                      "icp_gate has no key for its zone's hash");
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    (void) ngx_close_file(fd);

    key->mult |= 1;

    return NGX_OK;
}
