
/*
 * Copyright (C) icp_gate authors
 *
 * The node's counters, for icp_gate_metrics.  Each worker counts in a slot
 * of its own in shared memory, with plain additions: no lock, no atomic,
 * and no cache line another worker writes.  A worker that exits adds its
 * counters to the node's and gives its slot back; the slot of one that
 * died is taken back by the next worker that starts.
 */


#ifndef _NGX_ICP_GATE_METRICS_H_INCLUDED_
#define _NGX_ICP_GATE_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_verdict.h"


#define NGX_ICP_GATE_PROTO_HTTP        0
#define NGX_ICP_GATE_PROTO_RTMP        1
#define NGX_ICP_GATE_PROTO_HTTP_FLV    2
#define NGX_ICP_GATE_PROTOS            3

#define NGX_ICP_GATE_TIER_ZONE         0
#define NGX_ICP_GATE_TIER_REDIS        1
#define NGX_ICP_GATE_TIER_API          2
#define NGX_ICP_GATE_TIERS             3

/* a verdict; one past its time, answering while refreshed; none; failed */
#define NGX_ICP_GATE_OUTCOME_HIT       0
#define NGX_ICP_GATE_OUTCOME_STALE     1
#define NGX_ICP_GATE_OUTCOME_MISS      2
#define NGX_ICP_GATE_OUTCOME_ERROR     3
#define NGX_ICP_GATE_OUTCOMES          4

/* why the filing API gave no verdict */
#define NGX_ICP_GATE_API_FAIL_TIMEOUT   0
#define NGX_ICP_GATE_API_FAIL_CONNECT   1   /* resolve or connect */
#define NGX_ICP_GATE_API_FAIL_TRANSFER  2   /* any other transfer error */
#define NGX_ICP_GATE_API_FAIL_STATUS    3   /* neither 200 nor 404 */
#define NGX_ICP_GATE_API_FAIL_BODY      4   /* a 200 that says nothing */
#define NGX_ICP_GATE_API_FAIL_QUEUE     5   /* never sent: the queue */
#define NGX_ICP_GATE_API_FAIL_BUDGET    6   /* never sent: icp_gate_api_rate */
#define NGX_ICP_GATE_API_FAILURES       7

#define NGX_ICP_GATE_BUCKETS           12   /* and +Inf */


typedef struct {
    uint64_t                    buckets[NGX_ICP_GATE_BUCKETS + 1];
    uint64_t                    sum;        /* microseconds */
} ngx_icp_gate_histogram_t;


/* what only grows: added to the node's when a worker exits */

typedef struct {
    uint64_t                    decisions[NGX_ICP_GATE_PROTOS]
                                         [NGX_ICP_GATE_RESULTS]
                                         [NGX_ICP_GATE_REASONS];
    uint64_t                    lookups[NGX_ICP_GATE_TIERS]
                                       [NGX_ICP_GATE_OUTCOMES];
    uint64_t                    api_failures[NGX_ICP_GATE_API_FAILURES];
    ngx_icp_gate_histogram_t    api_seconds;
    ngx_icp_gate_histogram_t    redis_seconds;
    uint64_t                    redis_reconnects;
    uint64_t                    redis_timeouts;
    uint64_t                    zone_evictions;
    uint64_t                    live_dropped[NGX_ICP_GATE_PROTOS];
    uint64_t                    admin_purges;
} ngx_icp_gate_counters_t;


/* what goes up and down: gone with its worker */

typedef struct {
    int64_t                     redis_ready;    /* connections */
    int64_t                     redis_idle;     /* closed, at rest */
    int64_t                     redis_failing;  /* lost, not back yet */
    int64_t                     flights;        /* lookups in flight */
    int64_t                     api_running;
    int64_t                     api_queued;
    int64_t                     live[NGX_ICP_GATE_PROTOS];
} ngx_icp_gate_gauges_t;


typedef struct {
    ngx_pid_t                   pid;        /* 0: free */
    uint64_t                    started;    /* its start, to tell a reused
                                               pid from it */
    ngx_icp_gate_counters_t     counters;
    ngx_icp_gate_gauges_t       gauges;
} ngx_icp_gate_metrics_slot_t;


/* the node's, summed over its workers */

typedef struct {
    ngx_icp_gate_counters_t     counters;
    ngx_icp_gate_gauges_t       gauges;
    ngx_uint_t                  workers;
} ngx_icp_gate_metrics_sum_t;


/* this worker's slot; one of its own until it has one */
extern ngx_icp_gate_metrics_slot_t  *ngx_icp_gate_metrics;

extern const uint64_t  ngx_icp_gate_api_bounds[NGX_ICP_GATE_BUCKETS];
extern const uint64_t  ngx_icp_gate_redis_bounds[NGX_ICP_GATE_BUCKETS];


#define ngx_icp_gate_count(field)       ngx_icp_gate_metrics->counters.field++
#define ngx_icp_gate_count_n(field, n)                                        \
    ngx_icp_gate_metrics->counters.field += n
#define ngx_icp_gate_gauge(field, n)    ngx_icp_gate_metrics->gauges.field += n

#define ngx_icp_gate_count_lookup(tier, outcome)                              \
    ngx_icp_gate_metrics->counters.lookups[tier][outcome]++


ngx_shm_zone_t *ngx_icp_gate_metrics_add(ngx_conf_t *cf, void *tag);
ngx_int_t ngx_icp_gate_metrics_init_worker(ngx_cycle_t *cycle,
    ngx_shm_zone_t *shm_zone);
void ngx_icp_gate_metrics_exit_worker(void);
ngx_int_t ngx_icp_gate_metrics_sum(ngx_icp_gate_metrics_sum_t *sum);

void ngx_icp_gate_metrics_observe(ngx_icp_gate_histogram_t *h,
    const uint64_t *bounds, uint64_t us);
uint64_t ngx_icp_gate_metrics_now(void);


#endif /* _NGX_ICP_GATE_METRICS_H_INCLUDED_ */
