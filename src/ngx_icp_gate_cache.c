
/*
 * Copyright (C) icp_gate authors
 *
 * The verdict cache all workers share: a hash table of the registrable
 * domains, chained through the entries, with an LRU queue for eviction
 * when the zone is full.  Entries expire lazily: an expired verdict keeps
 * answering while one worker, holding the entry's update lock, refreshes
 * it.
 *
 * A fresh verdict is read without the mutex and without a write
 * (ngx_icp_gate_cache_peek()): writers, under the mutex, make the zone's
 * sequence number odd while they change what a reader looks at, and the
 * reader keeps its copy only if the number was even and the same before
 * and after.  A reader may meet a chain in the middle of a change, so it
 * follows no pointer out of the zone and walks a bounded number of
 * entries.  An entry moves up the LRU queue at most once a second.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_cache.h"


/* a full zone lets entries go 8 at a time, at most 64 for one entry */
#define NGX_ICP_GATE_CACHE_EVICT      8
#define NGX_ICP_GATE_CACHE_EVICT_MAX  64

/* zone bytes a bucket: about one entry a bucket in a full zone */
#define NGX_ICP_GATE_CACHE_BUCKET     128

/* a reader gives a chain up after this many entries to the mutex's path */
#define NGX_ICP_GATE_CACHE_CHAIN_MAX  32

/* a filing number of up to 32 bytes is read in one fixed-size copy */
#define NGX_ICP_GATE_CACHE_ICP_COPY   32


#if defined(__ATOMIC_ACQUIRE)
/* no instruction on x86, where loads and stores keep their order anyway */
#define ngx_icp_gate_load_fence()     __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define ngx_icp_gate_store_fence()    __atomic_thread_fence(__ATOMIC_RELEASE)
#else
#define ngx_icp_gate_load_fence()     ngx_memory_barrier()
#define ngx_icp_gate_store_fence()    ngx_memory_barrier()
#endif


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
    uint32_t                    hash;
    uint32_t                    checked_at;     /* Unix time */
    uint32_t                    used;           /* when it last moved up */
    u_char                      status;
    u_char                      region;
    u_char                      len;
    u_char                      icp_len;
    u_char                      icp_room;
    u_char                      data[1];
};


typedef struct {
    ngx_queue_t                 queue;
    ngx_atomic_t                seq;            /* odd while written */
    ngx_uint_t                  mask;
    ngx_icp_gate_cache_node_t  *buckets[1];
} ngx_icp_gate_cache_sh_t;


struct ngx_icp_gate_cache_s {
    ngx_icp_gate_cache_sh_t    *sh;
    ngx_slab_pool_t            *shpool;
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
static ngx_icp_gate_cache_node_t *ngx_icp_gate_cache_alloc(
    ngx_icp_gate_cache_t *cache, size_t len, size_t *room);
static void ngx_icp_gate_cache_link(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn);
static void ngx_icp_gate_cache_delete(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn);
static ngx_uint_t ngx_icp_gate_cache_lock(ngx_icp_gate_cache_node_t *cn,
    ngx_msec_t lock_for);
static void ngx_icp_gate_cache_write_begin(ngx_icp_gate_cache_t *cache);
static void ngx_icp_gate_cache_write_end(ngx_icp_gate_cache_t *cache);


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
 * NGX_OK: *v is a fresh verdict, read without the mutex; NGX_DECLINED:
 * ngx_icp_gate_cache_lookup() must decide (no entry, an expired one, a
 * writer at work, or the entry is due to move up the LRU queue)
 */

ngx_int_t
ngx_icp_gate_cache_peek(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_icp_gate_verdict_t *v)
{
    u_char                     *start;
    size_t                      len, icp_len, span;
    ngx_uint_t                  n;
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
              &sh->buckets[hash & sh->mask];

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

    if (cn->status == NGX_ICP_GATE_STATUS_NONE
        || (ngx_msec_int_t) (cn->expires - ngx_current_msec) <= 0
        || cn->used != (uint32_t) ngx_time()
        || icp_len >= NGX_ICP_GATE_ICP_LEN)
    {
        return NGX_DECLINED;
    }

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


ngx_int_t
ngx_icp_gate_cache_lookup(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_msec_t lock_for, ngx_icp_gate_verdict_t *v,
    ngx_uint_t *flags)
{
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

    /* once a second is enough for the LRU, and leaves hits without writes */

    if (cn->used != now) {
        cn->used = now;
        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&cache->sh->queue, &cn->queue);
    }

    if (cn->status == NGX_ICP_GATE_STATUS_NONE) {

        /* nobody asks again while a failure is remembered */

        *flags = ((ngx_msec_int_t) (cn->expires - ngx_current_msec) > 0)
                 ? NGX_ICP_GATE_CACHE_FAILED
                 : ngx_icp_gate_cache_lock(cn, lock_for);
        rc = NGX_DECLINED;

    } else {
        v->status = cn->status;
        v->region = cn->region;
        v->checked_at = cn->checked_at;
        v->icp_len = cn->icp_len;
        ngx_memcpy(v->icp, cn->data + cn->len, cn->icp_len);

        if ((ngx_msec_int_t) (cn->expires - ngx_current_msec) > 0) {
            *flags = NGX_ICP_GATE_CACHE_FRESH;

        } else {
            *flags = ngx_icp_gate_cache_lock(cn, lock_for);
        }

        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


void
ngx_icp_gate_cache_store(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_icp_gate_verdict_t *v, ngx_msec_t fresh_for)
{
    ngx_icp_gate_cache_node_t  *cn, *grown;

    ngx_shmtx_lock(&cache->shpool->mutex);
    ngx_icp_gate_cache_write_begin(cache);

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    if (cn == NULL) {
        cn = ngx_icp_gate_cache_create(cache, domain, hash, v->icp_len);
        if (cn == NULL) {
            goto done;
        }

    } else {
        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&cache->sh->queue, &cn->queue);
    }

    if (v->icp_len > cn->icp_room) {
        grown = ngx_icp_gate_cache_grow(cache, cn, v->icp_len);

        if (grown == NULL) {
            /* better no verdict than one without its filing number */
            ngx_icp_gate_cache_delete(cache, cn);
            goto done;
        }

        cn = grown;
    }

    cn->status = (u_char) v->status;
    cn->region = (u_char) v->region;
    cn->checked_at = (uint32_t) v->checked_at;
    cn->used = (uint32_t) ngx_time();
    cn->icp_len = (u_char) v->icp_len;
    ngx_memcpy(cn->data + cn->len, v->icp, v->icp_len);

    cn->expires = ngx_current_msec + fresh_for;
    cn->locked = 0;

done:

    ngx_icp_gate_cache_write_end(cache);
    ngx_shmtx_unlock(&cache->shpool->mutex);
}


void
ngx_icp_gate_cache_release(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_msec_t retry_after)
{
    ngx_icp_gate_cache_node_t  *cn;

    ngx_shmtx_lock(&cache->shpool->mutex);
    ngx_icp_gate_cache_write_begin(cache);

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    if (cn) {
        cn->locked = 0;

        if (cn->status == NGX_ICP_GATE_STATUS_NONE) {

            if (retry_after) {
                /* the placeholder remembers the failure */
                cn->expires = ngx_current_msec + retry_after;

            } else {
                ngx_icp_gate_cache_delete(cache, cn);
            }

        } else if ((ngx_msec_int_t) (cn->expires - ngx_current_msec) <= 0) {
            /* a failed refresh: serve the old verdict a while longer */
            cn->expires = ngx_current_msec + retry_after;
        }
    }

    ngx_icp_gate_cache_write_end(cache);
    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * The entry stays fresh for at least fresh_for if it still holds the
 * verdict v: a newer one, or an operator's, is left as it is
 */

void
ngx_icp_gate_cache_extend(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_icp_gate_verdict_t *v, ngx_msec_t fresh_for)
{
    ngx_icp_gate_cache_node_t  *cn;

    ngx_shmtx_lock(&cache->shpool->mutex);
    ngx_icp_gate_cache_write_begin(cache);

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    if (cn
        && cn->status == v->status
        && cn->checked_at == (uint32_t) v->checked_at
        && (ngx_msec_int_t) (ngx_current_msec + fresh_for - cn->expires) > 0)
    {
        cn->expires = ngx_current_msec + fresh_for;
    }

    ngx_icp_gate_cache_write_end(cache);
    ngx_shmtx_unlock(&cache->shpool->mutex);
}

static ngx_uint_t
ngx_icp_gate_cache_lock(ngx_icp_gate_cache_node_t *cn, ngx_msec_t lock_for)
{
    if (lock_for == 0) {
        return 0;
    }

    /* a lock past its deadline belonged to a worker that died or hung */

    if (cn->locked && (ngx_msec_int_t) (cn->locked - ngx_current_msec) > 0) {
        return 0;
    }

    cn->locked = ngx_current_msec + lock_for;

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

    for (cn = cache->sh->buckets[hash & cache->sh->mask]; cn; cn = cn->next) {
        if (cn->hash == hash && cn->len == domain->len
            && ngx_memcmp(cn->data, domain->data, domain->len) == 0)
        {
            return cn;
        }
    }

    return NULL;
}


static ngx_icp_gate_cache_node_t *
ngx_icp_gate_cache_create(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, size_t room)
{
    ngx_icp_gate_cache_node_t  *cn;

    cn = ngx_icp_gate_cache_alloc(cache, domain->len, &room);
    if (cn == NULL) {
        return NULL;
    }

    cn->hash = hash;
    cn->status = NGX_ICP_GATE_STATUS_NONE;
    cn->region = NGX_ICP_GATE_REGION_NONE;
    cn->len = (u_char) domain->len;
    cn->icp_len = 0;
    cn->icp_room = (u_char) room;
    cn->expires = 0;
    cn->locked = 0;
    cn->checked_at = 0;
    cn->used = (uint32_t) ngx_time();
    ngx_memcpy(cn->data, domain->data, domain->len);

    ngx_icp_gate_cache_link(cache, cn);

    return cn;
}


/* moves an entry to a node with room for a filing number of room bytes */

static ngx_icp_gate_cache_node_t *
ngx_icp_gate_cache_grow(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn, size_t room)
{
    ngx_icp_gate_cache_node_t  *grown;

    /* out of the LRU queue, so that making room cannot evict the entry */
    ngx_queue_remove(&cn->queue);

    grown = ngx_icp_gate_cache_alloc(cache, cn->len, &room);

    if (grown == NULL) {
        ngx_queue_insert_head(&cache->sh->queue, &cn->queue);
        return NULL;
    }

    ngx_memcpy(grown, cn, offsetof(ngx_icp_gate_cache_node_t, data) + cn->len);
    grown->icp_room = (u_char) room;

    /* back in, so that ngx_icp_gate_cache_delete() finds it queued */
    ngx_queue_insert_head(&cache->sh->queue, &cn->queue);
    ngx_icp_gate_cache_delete(cache, cn);

    ngx_icp_gate_cache_link(cache, grown);

    return grown;
}


/*
 * A node for a domain of len bytes and a filing number of *room bytes.  The
 * slab hands out powers of two: what the node would waste anyway becomes
 * room for the number, so a verdict seldom has to move its placeholder.
 */

static ngx_icp_gate_cache_node_t *
ngx_icp_gate_cache_alloc(ngx_icp_gate_cache_t *cache, size_t len,
    size_t *room)
{
    size_t                      size, slot;
    ngx_uint_t                  n, evicted;
    ngx_queue_t                *q;
    ngx_icp_gate_cache_node_t  *cn;

    size = offsetof(ngx_icp_gate_cache_node_t, data) + len;

    for (slot = 8; slot < size + *room; slot <<= 1) { /* void */ }

    if (slot <= ngx_pagesize / 2) {
        *room = ngx_min(slot - size, NGX_ICP_GATE_ICP_LEN);
    }

    cn = ngx_slab_alloc_locked(cache->shpool, size + *room);

    /*
     * the zone is full: the least recently used entries go until one of
     * them leaves a slot of this size, or too many have gone
     */

    for (evicted = 0;
         cn == NULL && evicted < NGX_ICP_GATE_CACHE_EVICT_MAX;
         evicted += NGX_ICP_GATE_CACHE_EVICT)
    {
        for (n = 0; n < NGX_ICP_GATE_CACHE_EVICT; n++) {
            if (ngx_queue_empty(&cache->sh->queue)) {
                break;
            }

            q = ngx_queue_last(&cache->sh->queue);

            ngx_icp_gate_cache_delete(cache,
                ngx_queue_data(q, ngx_icp_gate_cache_node_t, queue));
        }

        cn = ngx_slab_alloc_locked(cache->shpool, size + *room);
    }

    return cn;
}


/* at the head of its bucket and of the LRU queue */

static void
ngx_icp_gate_cache_link(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn)
{
    ngx_icp_gate_cache_node_t  **bucket;

    bucket = &cache->sh->buckets[cn->hash & cache->sh->mask];

    cn->next = *bucket;
    *bucket = cn;

    ngx_queue_insert_head(&cache->sh->queue, &cn->queue);
}


static void
ngx_icp_gate_cache_delete(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn)
{
    ngx_icp_gate_cache_node_t  **p;

    for (p = &cache->sh->buckets[cn->hash & cache->sh->mask];
         *p != cn;
         p = &(*p)->next)
    {
        /* void */
    }

    *p = cn->next;

    ngx_queue_remove(&cn->queue);
    ngx_slab_free_locked(cache->shpool, cn);
}


static ngx_int_t
ngx_icp_gate_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_icp_gate_cache_t  *ocache = data;

    size_t                 len;
    ngx_uint_t             n;
    ngx_icp_gate_cache_t  *cache;

    cache = shm_zone->data;

    if (ocache) {
        /* a reload keeps every verdict the workers had */
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    /* a power of two of buckets, about one a full zone's entry */

    for (n = 64; n * 2 * NGX_ICP_GATE_CACHE_BUCKET <= shm_zone->shm.size;
         n <<= 1)
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

    cache->sh->mask = n - 1;
    ngx_queue_init(&cache->sh->queue);

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
