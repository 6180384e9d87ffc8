
/*
 * Copyright (C) icp_gate authors
 *
 * A domain's verdict from the tiers: the shared zone, Redis, the filing
 * API, with one flight per domain however many ask at once.
 */


#ifndef _NGX_ICP_GATE_LOOKUP_H_INCLUDED_
#define _NGX_ICP_GATE_LOOKUP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_icp_gate_verdict.h"
#include "ngx_icp_gate_redis.h"
#include "ngx_icp_gate_api.h"
#include "ngx_icp_gate_cache.h"
#include "ngx_icp_gate_file.h"
#include "ngx_icp_gate_metrics.h"


typedef struct ngx_icp_gate_waiter_s  ngx_icp_gate_waiter_t;

typedef void (*ngx_icp_gate_waiter_pt)(ngx_icp_gate_waiter_t *w);

struct ngx_icp_gate_waiter_s {
    ngx_queue_t                 queue;
    ngx_event_t                 timer;
    ngx_icp_gate_waiter_pt      handler;
    void                       *data;
    ngx_int_t                   rc;
    ngx_icp_gate_verdict_t     *verdict;    /* filled in when rc is NGX_OK */
    void                       *flight;     /* waited for */
    unsigned                    waiting:1;
};


typedef struct {
    ngx_shm_zone_t             *zone;
    ngx_icp_gate_redis_conf_t   redis;
    ngx_icp_gate_api_conf_t     api;
    time_t                      ttl;
    time_t                      negative_ttl;
    ngx_msec_t                  local_ttl;
    ngx_msec_t                  stale;          /* while-revalidate */
    ngx_msec_t                  error_ttl;      /* a failure remembered */
    ngx_uint_t                  api_rate;       /* 1/1000 a second, 0: any */
    ngx_icp_gate_file_t        *file;           /* NULL: none */
    ngx_icp_gate_file_changes_t file_changes;   /* since the last one */
} ngx_icp_gate_lookup_conf_t;


ngx_int_t ngx_icp_gate_lookup_init(ngx_cycle_t *cycle,
    ngx_icp_gate_lookup_conf_t *lcf);
void ngx_icp_gate_lookup_done(void);
ngx_int_t ngx_icp_gate_lookup_miss(ngx_str_t *domain, uint32_t hash,
    ngx_icp_gate_verdict_t *v);
ngx_int_t ngx_icp_gate_lookup_wait(ngx_str_t *domain, uint32_t hash,
    ngx_icp_gate_waiter_t *w, ngx_msec_t wait);
void ngx_icp_gate_lookup_cancel(ngx_icp_gate_waiter_t *w);
void ngx_icp_gate_lookup_refresh(ngx_str_t *domain, uint32_t hash);
ngx_uint_t ngx_icp_gate_lookup_refreshing(void);
void ngx_icp_gate_lookup_changed(ngx_str_t *domain, uint32_t hash);
ngx_int_t ngx_icp_gate_lookup_purge(ngx_str_t *domain, uint32_t hash);


/* the lookups' settings and zone: the hit path below, the console */
extern ngx_icp_gate_lookup_conf_t  *ngx_icp_gate_lookup_conf;
extern ngx_icp_gate_cache_t        *ngx_icp_gate_cache;


/*
 * NGX_OK: *v holds the verdict; NGX_DECLINED: none yet, a flight is
 * asking for it (ngx_icp_gate_lookup_wait() waits for it); NGX_AGAIN: *v
 * holds a verdict past icp_gate_stale_while_revalidate, to be waited for
 * the same way (the waiter gets this one if the refresh fails); NGX_ERROR:
 * none can be had.
 *
 * Inline, because every gated request comes this way: a verdict the zone
 * has is read with no lock, no shared write and no frame of its own.
 */

static ngx_inline ngx_int_t
ngx_icp_gate_lookup(ngx_str_t *domain, uint32_t hash,
    ngx_icp_gate_verdict_t *v)
{
    if (ngx_icp_gate_cache_peek(ngx_icp_gate_cache, domain, hash,
                                ngx_icp_gate_lookup_conf->stale, v)
        != NGX_OK)
    {
        return ngx_icp_gate_lookup_miss(domain, hash, v);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: \"%V\" is %V in the zone", domain,
                   &ngx_icp_gate_status_names[v->status]);

    ngx_icp_gate_count_lookup(NGX_ICP_GATE_TIER_ZONE,
                              NGX_ICP_GATE_OUTCOME_HIT);

    return NGX_OK;
}


#endif /* _NGX_ICP_GATE_LOOKUP_H_INCLUDED_ */
