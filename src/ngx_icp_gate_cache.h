
/*
 * Copyright (C) icp_gate authors
 */


#ifndef _NGX_ICP_GATE_CACHE_H_INCLUDED_
#define _NGX_ICP_GATE_CACHE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_verdict.h"


/* ngx_icp_gate_cache_lookup() flags */
#define NGX_ICP_GATE_CACHE_FRESH    0x01
#define NGX_ICP_GATE_CACHE_LOCKED   0x02
#define NGX_ICP_GATE_CACHE_FAILED   0x04    /* a lookup failed a while ago */
#define NGX_ICP_GATE_CACHE_STALE    0x08    /* past stale-while-revalidate */

/* ngx_icp_gate_cache_store() flags */
#define NGX_ICP_GATE_CACHE_READ     0x01    /* from Redis, asked at the mark */
#define NGX_ICP_GATE_CACHE_RELEASE  0x02    /* the caller holds the lock */


typedef struct ngx_icp_gate_cache_s  ngx_icp_gate_cache_t;

/*
 * Where the news stood when a lookup began, or a verdict was asked of
 * Redis: counts of the changes Redis told, of the purges and of the times
 * every copy expired, not a clock, whose milliseconds cannot order a read
 * and a change of the same one
 */
typedef struct {
    ngx_uint_t                  told;
    ngx_uint_t                  purges;
    ngx_uint_t                  epoch;
} ngx_icp_gate_cache_mark_t;


/* an entry as the domain console shows it */
typedef struct {
    ngx_icp_gate_verdict_t      verdict;    /* status NONE: none yet */
    ngx_msec_int_t              fresh;      /* ms left, < 0: past */
    time_t                      usable;     /* Unix time: its last second */
    ngx_uint_t                  looked_up;  /* a refresh under way */
    size_t                      chunk;      /* bytes of the zone it takes */
} ngx_icp_gate_cache_entry_t;


typedef struct {
    size_t                      size;
    size_t                      free;       /* in whole free pages */
    ngx_uint_t                  entries;
} ngx_icp_gate_cache_stats_t;


/* domain NULL: any, the zone no longer knows which */
typedef void (*ngx_icp_gate_cache_changes_pt)(void *data, ngx_str_t *domain);


ngx_shm_zone_t *ngx_icp_gate_cache_add(ngx_conf_t *cf, ngx_str_t *name,
    size_t size, void *tag);
/* hash: ngx_icp_gate_hash() of the domain */

ngx_int_t ngx_icp_gate_cache_peek(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash, ngx_msec_t stale,
    ngx_icp_gate_verdict_t *v);
ngx_int_t ngx_icp_gate_cache_lookup(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash, ngx_msec_t lock_for, ngx_msec_t stale,
    ngx_icp_gate_verdict_t *v, ngx_uint_t *flags);
ngx_int_t ngx_icp_gate_cache_store(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash, ngx_icp_gate_verdict_t *v,
    ngx_msec_t fresh_for, time_t usable_for, ngx_icp_gate_cache_mark_t *mark,
    ngx_uint_t flags);
ngx_int_t ngx_icp_gate_cache_spend(ngx_icp_gate_cache_t *cache,
    ngx_uint_t rate);
void ngx_icp_gate_cache_release(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash, ngx_msec_t retry_after,
    ngx_icp_gate_cache_mark_t *mark);
void ngx_icp_gate_cache_init_worker(ngx_icp_gate_cache_t *cache,
    ngx_msec_t stale);
void ngx_icp_gate_cache_use_key(ngx_icp_gate_cache_t *cache);
void ngx_icp_gate_cache_join(ngx_icp_gate_cache_t *cache,
    ngx_uint_t generation);
ngx_uint_t ngx_icp_gate_cache_bucket(ngx_icp_gate_cache_t *cache,
    uint32_t hash);
void ngx_icp_gate_cache_mark(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_mark_t *mark);
ngx_uint_t ngx_icp_gate_cache_epoch(ngx_icp_gate_cache_t *cache);
void ngx_icp_gate_cache_news(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash);
void ngx_icp_gate_cache_told(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash);
ngx_uint_t ngx_icp_gate_cache_purged(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash, ngx_icp_gate_cache_mark_t *mark);
void ngx_icp_gate_cache_changes(ngx_icp_gate_cache_t *cache,
    ngx_uint_t *seen, ngx_icp_gate_cache_changes_pt handler, void *data);
ngx_int_t ngx_icp_gate_cache_holds(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash);
void ngx_icp_gate_cache_expire_all(ngx_icp_gate_cache_t *cache);
ngx_int_t ngx_icp_gate_cache_listen(ngx_icp_gate_cache_t *cache);
ngx_uint_t ngx_icp_gate_cache_joins(ngx_icp_gate_cache_t *cache);
void ngx_icp_gate_cache_heard(ngx_icp_gate_cache_t *cache, ngx_uint_t joins,
    ngx_uint_t give_up);
void ngx_icp_gate_cache_unheard(ngx_icp_gate_cache_t *cache);
ngx_int_t ngx_icp_gate_cache_handed_over(ngx_icp_gate_cache_t *cache,
    ngx_uint_t busy);
void ngx_icp_gate_cache_unlisten(ngx_icp_gate_cache_t *cache,
    ngx_uint_t unsure);
void ngx_icp_gate_cache_expire(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash);
ngx_int_t ngx_icp_gate_cache_purge(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash);
void ngx_icp_gate_cache_overtaken(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash, uint64_t version);
ngx_int_t ngx_icp_gate_cache_inspect(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash, ngx_icp_gate_cache_entry_t *e);
void ngx_icp_gate_cache_stats(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_stats_t *st);
void ngx_icp_gate_cache_extend(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_icp_gate_verdict_t *v, ngx_msec_t fresh_for);


#endif /* _NGX_ICP_GATE_CACHE_H_INCLUDED_ */
