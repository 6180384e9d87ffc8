
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


typedef struct ngx_icp_gate_cache_s  ngx_icp_gate_cache_t;

/*
 * Where the news stood when a verdict was asked of Redis: a count of the
 * changes told and of the times every copy expired, not a clock, whose
 * milliseconds cannot order a read and a change of the same one
 */
typedef struct {
    ngx_uint_t                  changes;
    ngx_uint_t                  expiries;
} ngx_icp_gate_cache_mark_t;


/* an entry as the domain console shows it */
typedef struct {
    ngx_icp_gate_verdict_t      verdict;    /* status NONE: none yet */
    ngx_msec_int_t              fresh;      /* ms left, < 0: past */
    time_t                      usable;     /* Unix time: its last second */
    ngx_uint_t                  looked_up;  /* a refresh under way */
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
    ngx_str_t *domain,
    uint32_t hash, ngx_icp_gate_verdict_t *v, ngx_msec_t fresh_for,
    time_t usable_for, ngx_icp_gate_cache_mark_t *read);
ngx_int_t ngx_icp_gate_cache_spend(ngx_icp_gate_cache_t *cache,
    ngx_uint_t rate);
void ngx_icp_gate_cache_release(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash, ngx_msec_t retry_after);
void ngx_icp_gate_cache_mark(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_mark_t *mark);
void ngx_icp_gate_cache_changed(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash);
void ngx_icp_gate_cache_changes(ngx_icp_gate_cache_t *cache,
    ngx_uint_t *seen, ngx_icp_gate_cache_changes_pt handler, void *data);
ngx_int_t ngx_icp_gate_cache_holds(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash);
void ngx_icp_gate_cache_expire_all(ngx_icp_gate_cache_t *cache);
void ngx_icp_gate_cache_expire(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash);
ngx_int_t ngx_icp_gate_cache_purge(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash, ngx_msec_t stale);
ngx_int_t ngx_icp_gate_cache_inspect(ngx_icp_gate_cache_t *cache,
    ngx_str_t *domain, uint32_t hash, ngx_icp_gate_cache_entry_t *e);
void ngx_icp_gate_cache_stats(ngx_icp_gate_cache_t *cache,
    ngx_icp_gate_cache_stats_t *st);
void ngx_icp_gate_cache_extend(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    uint32_t hash, ngx_icp_gate_verdict_t *v, ngx_msec_t fresh_for);


#endif /* _NGX_ICP_GATE_CACHE_H_INCLUDED_ */
