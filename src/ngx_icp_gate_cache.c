
/*
 * Copyright (C) icp_gate authors
 *
 * The verdict cache all workers share: an rbtree keyed by the crc32 of the
 * registrable domain, with an LRU queue for eviction when the zone is full.
 * Entries expire lazily: an expired verdict keeps answering while one
 * worker, holding the entry's update lock, refreshes it.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_cache.h"


/* a full zone lets entries go 8 at a time, at most 64 for one entry */
#define NGX_ICP_GATE_CACHE_EVICT      8
#define NGX_ICP_GATE_CACHE_EVICT_MAX  64


/*
 * The filing number follows the domain, in room sized by the first verdict
 * that carries one: a fixed field for the longest number would put every
 * entry in the next slab size up and halve the domains a zone holds.
 */

typedef struct {
    u_char                      color;
    u_char                      status;
    u_char                      region;
    u_char                      len;
    u_char                      icp_len;
    u_char                      icp_room;
    ngx_queue_t                 queue;
    ngx_msec_t                  expires;
    ngx_msec_t                  locked;
    time_t                      checked_at;
    u_char                      data[1];
} ngx_icp_gate_cache_node_t;


typedef struct {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 queue;
} ngx_icp_gate_cache_sh_t;


struct ngx_icp_gate_cache_s {
    ngx_icp_gate_cache_sh_t    *sh;
    ngx_slab_pool_t            *shpool;
};


static ngx_int_t ngx_icp_gate_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_icp_gate_cache_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_icp_gate_cache_node_t *ngx_icp_gate_cache_find(
    ngx_icp_gate_cache_t *cache, ngx_str_t *domain, uint32_t hash);
static ngx_icp_gate_cache_node_t *ngx_icp_gate_cache_create(
    ngx_icp_gate_cache_t *cache, ngx_str_t *domain, uint32_t hash,
    size_t room);
static ngx_icp_gate_cache_node_t *ngx_icp_gate_cache_grow(
    ngx_icp_gate_cache_t *cache, ngx_icp_gate_cache_node_t *cn, size_t room);
static ngx_rbtree_node_t *ngx_icp_gate_cache_alloc(
    ngx_icp_gate_cache_t *cache, size_t len, size_t *room);
static void ngx_icp_gate_cache_delete(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn);
static ngx_uint_t ngx_icp_gate_cache_lock(ngx_icp_gate_cache_node_t *cn,
    ngx_msec_t lock_for);


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


ngx_int_t
ngx_icp_gate_cache_lookup(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    ngx_msec_t lock_for, ngx_icp_gate_verdict_t *v, ngx_uint_t *flags)
{
    uint32_t                    hash;
    ngx_int_t                   rc;
    ngx_icp_gate_cache_node_t  *cn;

    *flags = 0;
    hash = ngx_crc32_long(domain->data, domain->len);

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    if (cn == NULL) {

        if (lock_for == 0) {
            ngx_shmtx_unlock(&cache->shpool->mutex);
            return NGX_DECLINED;
        }

        /* a placeholder whose lock tells the other workers to wait */

        cn = ngx_icp_gate_cache_create(cache, domain, hash, 0);
        if (cn == NULL) {
            ngx_shmtx_unlock(&cache->shpool->mutex);
            return NGX_ERROR;
        }

        *flags = ngx_icp_gate_cache_lock(cn, lock_for);

        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    /* a hot domain is at the head already: no shared line to write */

    if (ngx_queue_head(&cache->sh->queue) != &cn->queue) {
        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&cache->sh->queue, &cn->queue);
    }

    if (cn->status == NGX_ICP_GATE_STATUS_NONE) {
        *flags = ngx_icp_gate_cache_lock(cn, lock_for);
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
    ngx_icp_gate_verdict_t *v, ngx_msec_t fresh_for)
{
    uint32_t                    hash;
    ngx_icp_gate_cache_node_t  *cn, *grown;

    hash = ngx_crc32_long(domain->data, domain->len);

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    if (cn == NULL) {
        cn = ngx_icp_gate_cache_create(cache, domain, hash, v->icp_len);
        if (cn == NULL) {
            ngx_shmtx_unlock(&cache->shpool->mutex);
            return;
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
            ngx_shmtx_unlock(&cache->shpool->mutex);
            return;
        }

        cn = grown;
    }

    cn->status = (u_char) v->status;
    cn->region = (u_char) v->region;
    cn->checked_at = v->checked_at;
    cn->icp_len = (u_char) v->icp_len;
    ngx_memcpy(cn->data + cn->len, v->icp, v->icp_len);

    cn->expires = ngx_current_msec + fresh_for;
    cn->locked = 0;

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


void
ngx_icp_gate_cache_release(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    ngx_msec_t retry_after)
{
    uint32_t                    hash;
    ngx_icp_gate_cache_node_t  *cn;

    hash = ngx_crc32_long(domain->data, domain->len);

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_icp_gate_cache_find(cache, domain, hash);

    if (cn) {
        cn->locked = 0;

        if (cn->status == NGX_ICP_GATE_STATUS_NONE) {
            ngx_icp_gate_cache_delete(cache, cn);

        } else if ((ngx_msec_int_t) (cn->expires - ngx_current_msec) <= 0) {
            /* a failed refresh: serve the old verdict a while longer */
            cn->expires = ngx_current_msec + retry_after;
        }
    }

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


static ngx_icp_gate_cache_node_t *
ngx_icp_gate_cache_find(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash)
{
    ngx_int_t                   rc;
    ngx_rbtree_node_t          *node, *sentinel;
    ngx_icp_gate_cache_node_t  *cn;

    node = cache->sh->rbtree.root;
    sentinel = cache->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        cn = (ngx_icp_gate_cache_node_t *) &node->color;

        rc = ngx_memn2cmp(domain->data, cn->data, domain->len,
                          (size_t) cn->len);

        if (rc == 0) {
            return cn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static ngx_icp_gate_cache_node_t *
ngx_icp_gate_cache_create(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, size_t room)
{
    ngx_rbtree_node_t          *node;
    ngx_icp_gate_cache_node_t  *cn;

    node = ngx_icp_gate_cache_alloc(cache, domain->len, &room);
    if (node == NULL) {
        return NULL;
    }

    node->key = hash;

    cn = (ngx_icp_gate_cache_node_t *) &node->color;

    cn->status = NGX_ICP_GATE_STATUS_NONE;
    cn->region = NGX_ICP_GATE_REGION_NONE;
    cn->len = (u_char) domain->len;
    cn->icp_len = 0;
    cn->icp_room = (u_char) room;
    cn->expires = 0;
    cn->locked = 0;
    cn->checked_at = 0;
    ngx_memcpy(cn->data, domain->data, domain->len);

    ngx_rbtree_insert(&cache->sh->rbtree, node);
    ngx_queue_insert_head(&cache->sh->queue, &cn->queue);

    return cn;
}


/* moves an entry to a node with room for a filing number of room bytes */

static ngx_icp_gate_cache_node_t *
ngx_icp_gate_cache_grow(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn, size_t room)
{
    ngx_rbtree_node_t          *node, *old;
    ngx_icp_gate_cache_node_t  *grown;

    old = (ngx_rbtree_node_t *)
              ((u_char *) cn - offsetof(ngx_rbtree_node_t, color));

    /* out of the LRU queue, so that making room cannot evict the entry */
    ngx_queue_remove(&cn->queue);

    node = ngx_icp_gate_cache_alloc(cache, cn->len, &room);

    if (node == NULL) {
        ngx_queue_insert_head(&cache->sh->queue, &cn->queue);
        return NULL;
    }

    node->key = old->key;

    grown = (ngx_icp_gate_cache_node_t *) &node->color;
    ngx_memcpy(grown, cn, offsetof(ngx_icp_gate_cache_node_t, data) + cn->len);
    grown->icp_room = (u_char) room;

    ngx_rbtree_delete(&cache->sh->rbtree, old);
    ngx_slab_free_locked(cache->shpool, old);

    ngx_rbtree_insert(&cache->sh->rbtree, node);
    ngx_queue_insert_head(&cache->sh->queue, &grown->queue);

    return grown;
}


/*
 * A node for a domain of len bytes and a filing number of *room bytes.  The
 * slab hands out powers of two: what the node would waste anyway becomes
 * room for the number, so a verdict seldom has to move its placeholder.
 */

static ngx_rbtree_node_t *
ngx_icp_gate_cache_alloc(ngx_icp_gate_cache_t *cache, size_t len,
    size_t *room)
{
    size_t                      size, slot;
    ngx_uint_t                  n, evicted;
    ngx_queue_t                *q;
    ngx_rbtree_node_t          *node;
    ngx_icp_gate_cache_node_t  *cn;

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_icp_gate_cache_node_t, data) + len;

    for (slot = 8; slot < size + *room; slot <<= 1) { /* void */ }

    if (slot <= ngx_pagesize / 2) {
        *room = ngx_min(slot - size, NGX_ICP_GATE_ICP_LEN);
    }

    node = ngx_slab_alloc_locked(cache->shpool, size + *room);

    /*
     * the zone is full: the least recently used entries go until one of
     * them leaves a slot of this size, or too many have gone
     */

    for (evicted = 0;
         node == NULL && evicted < NGX_ICP_GATE_CACHE_EVICT_MAX;
         evicted += NGX_ICP_GATE_CACHE_EVICT)
    {
        for (n = 0; n < NGX_ICP_GATE_CACHE_EVICT; n++) {
            if (ngx_queue_empty(&cache->sh->queue)) {
                break;
            }

            q = ngx_queue_last(&cache->sh->queue);
            cn = ngx_queue_data(q, ngx_icp_gate_cache_node_t, queue);

            ngx_icp_gate_cache_delete(cache, cn);
        }

        node = ngx_slab_alloc_locked(cache->shpool, size + *room);
    }

    return node;
}


static void
ngx_icp_gate_cache_delete(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_node_t *cn)
{
    ngx_rbtree_node_t  *node;

    node = (ngx_rbtree_node_t *)
               ((u_char *) cn - offsetof(ngx_rbtree_node_t, color));

    ngx_queue_remove(&cn->queue);
    ngx_rbtree_delete(&cache->sh->rbtree, node);
    ngx_slab_free_locked(cache->shpool, node);
}


static void
ngx_icp_gate_cache_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t          **p;
    ngx_icp_gate_cache_node_t   *cn, *cnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            cn = (ngx_icp_gate_cache_node_t *) &node->color;
            cnt = (ngx_icp_gate_cache_node_t *) &temp->color;

            p = (ngx_memn2cmp(cn->data, cnt->data, cn->len, cnt->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_int_t
ngx_icp_gate_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_icp_gate_cache_t  *ocache = data;

    size_t                 len;
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

    cache->sh = ngx_slab_alloc(cache->shpool, sizeof(ngx_icp_gate_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_icp_gate_cache_insert_value);

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
