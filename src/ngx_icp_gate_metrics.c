
/*
 * Copyright (C) icp_gate authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_metrics.h"


/*
 * Slots for the workers of a node, old and new together during a reload:
 * a worker that finds none free counts for nobody, and says so once.
 */
#define NGX_ICP_GATE_METRICS_SLOTS     128


/* a slot on cache lines of its own */

typedef union {
    ngx_icp_gate_metrics_slot_t slot;
    u_char                      lines[(sizeof(ngx_icp_gate_metrics_slot_t)
                                       + 127) & ~127];
} ngx_icp_gate_metrics_line_t;


typedef struct {
    ngx_icp_gate_counters_t     retired;    /* of the workers that exited */
    ngx_icp_gate_metrics_line_t slots[NGX_ICP_GATE_METRICS_SLOTS];
} ngx_icp_gate_metrics_sh_t;


typedef struct {
    ngx_icp_gate_metrics_sh_t  *sh;
    ngx_slab_pool_t            *shpool;
} ngx_icp_gate_metrics_zone_t;


static ngx_int_t ngx_icp_gate_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_icp_gate_metrics_fold(ngx_icp_gate_counters_t *to,
    ngx_icp_gate_counters_t *from);
static ngx_uint_t ngx_icp_gate_metrics_alive(
    ngx_icp_gate_metrics_slot_t *slot);
static uint64_t ngx_icp_gate_metrics_started(ngx_pid_t pid);


static ngx_icp_gate_metrics_slot_t   ngx_icp_gate_metrics_none;

ngx_icp_gate_metrics_slot_t  *ngx_icp_gate_metrics =
    &ngx_icp_gate_metrics_none;

static ngx_icp_gate_metrics_zone_t  *ngx_icp_gate_metrics_zone;


/* the upper bounds of the buckets, in microseconds */

const uint64_t  ngx_icp_gate_api_bounds[NGX_ICP_GATE_BUCKETS] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000
};

const uint64_t  ngx_icp_gate_redis_bounds[NGX_ICP_GATE_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000,
    25000, 50000, 100000, 250000, 1000000
};


ngx_shm_zone_t *
ngx_icp_gate_metrics_add(ngx_conf_t *cf, void *tag)
{
    size_t           size;
    ngx_str_t        name;
    ngx_shm_zone_t  *shm_zone;

    ngx_str_set(&name, "icp_gate_metrics");

    /* the slab pool's own pages and headers fit in the spare ones */

    size = ngx_align(sizeof(ngx_icp_gate_metrics_sh_t), ngx_pagesize)
           + 8 * ngx_pagesize;

    shm_zone = ngx_shared_memory_add(cf, &name, size, tag);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data == NULL) {
        shm_zone->data = ngx_pcalloc(cf->pool,
                                     sizeof(ngx_icp_gate_metrics_zone_t));
        if (shm_zone->data == NULL) {
            return NULL;
        }

        shm_zone->init = ngx_icp_gate_metrics_init_zone;
    }

    return shm_zone;
}


static ngx_int_t
ngx_icp_gate_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_icp_gate_metrics_zone_t  *ozone = data;

    ngx_icp_gate_metrics_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {
        /* a reload keeps the counts: they are totals since the start */
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh = ngx_slab_calloc(zone->shpool,
                               sizeof(ngx_icp_gate_metrics_sh_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    return NGX_OK;
}


ngx_int_t
ngx_icp_gate_metrics_init_worker(ngx_cycle_t *cycle, ngx_shm_zone_t *shm_zone)
{
    uint64_t                      started;
    ngx_uint_t                    i;
    ngx_icp_gate_metrics_sh_t    *sh;
    ngx_icp_gate_metrics_slot_t  *slot, *free;

    ngx_icp_gate_metrics_zone = shm_zone->data;

    sh = ngx_icp_gate_metrics_zone->sh;
    free = NULL;
    started = ngx_icp_gate_metrics_started(ngx_pid);

    ngx_shmtx_lock(&ngx_icp_gate_metrics_zone->shpool->mutex);

    for (i = 0; i < NGX_ICP_GATE_METRICS_SLOTS; i++) {
        slot = &sh->slots[i].slot;

        /* a worker killed before it could give its slot back */

        if (slot->pid && !ngx_icp_gate_metrics_alive(slot)) {
            ngx_icp_gate_metrics_fold(&sh->retired, &slot->counters);
            ngx_memzero(slot, sizeof(ngx_icp_gate_metrics_slot_t));
        }

        if (slot->pid == 0 && free == NULL) {
            free = slot;
        }
    }

    if (free) {
        free->pid = ngx_pid;
        free->started = started;
        ngx_icp_gate_metrics = free;
    }

    ngx_shmtx_unlock(&ngx_icp_gate_metrics_zone->shpool->mutex);

    if (free == NULL) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "icp_gate: no room for this worker's metrics: "
                      "%d workers count already", NGX_ICP_GATE_METRICS_SLOTS);
    }

    return NGX_OK;
}


void
ngx_icp_gate_metrics_exit_worker(void)
{
    ngx_icp_gate_metrics_slot_t  *slot;

    slot = ngx_icp_gate_metrics;

    if (slot == &ngx_icp_gate_metrics_none) {
        return;
    }

    ngx_icp_gate_metrics = &ngx_icp_gate_metrics_none;

    ngx_shmtx_lock(&ngx_icp_gate_metrics_zone->shpool->mutex);

    ngx_icp_gate_metrics_fold(&ngx_icp_gate_metrics_zone->sh->retired,
                              &slot->counters);
    ngx_memzero(slot, sizeof(ngx_icp_gate_metrics_slot_t));

    ngx_shmtx_unlock(&ngx_icp_gate_metrics_zone->shpool->mutex);
}


/*
 * Under the mutex, so that a worker's counts are never seen both in its
 * slot and in the node's, nor in neither: a total never goes back
 */

ngx_int_t
ngx_icp_gate_metrics_sum(ngx_icp_gate_metrics_sum_t *sum)
{
    int64_t                      *to, *from;
    ngx_uint_t                    i, n;
    ngx_icp_gate_metrics_sh_t    *sh;
    ngx_icp_gate_metrics_slot_t  *slot;

    ngx_memzero(sum, sizeof(ngx_icp_gate_metrics_sum_t));

    if (ngx_icp_gate_metrics_zone == NULL) {
        return NGX_ERROR;
    }

    sh = ngx_icp_gate_metrics_zone->sh;

    ngx_shmtx_lock(&ngx_icp_gate_metrics_zone->shpool->mutex);

    sum->counters = sh->retired;

    for (i = 0; i < NGX_ICP_GATE_METRICS_SLOTS; i++) {
        slot = &sh->slots[i].slot;

        if (slot->pid == 0) {
            continue;
        }

        ngx_icp_gate_metrics_fold(&sum->counters, &slot->counters);

        /* what a dead worker had under way is under way no more */

        if (!ngx_icp_gate_metrics_alive(slot)) {
            continue;
        }

        sum->workers++;

        to = (int64_t *) &sum->gauges;
        from = (int64_t *) &slot->gauges;

        for (n = 0; n < sizeof(ngx_icp_gate_gauges_t) / sizeof(int64_t); n++)
        {
            to[n] += from[n];
        }
    }

    ngx_shmtx_unlock(&ngx_icp_gate_metrics_zone->shpool->mutex);

    return NGX_OK;
}


/* every field of the counters is a uint64_t */

static void
ngx_icp_gate_metrics_fold(ngx_icp_gate_counters_t *to,
    ngx_icp_gate_counters_t *from)
{
    uint64_t    *t, *f;
    ngx_uint_t   n;

    t = (uint64_t *) to;
    f = (uint64_t *) from;

    for (n = 0; n < sizeof(ngx_icp_gate_counters_t) / sizeof(uint64_t); n++) {
        t[n] += f[n];
    }
}


static ngx_uint_t
ngx_icp_gate_metrics_alive(ngx_icp_gate_metrics_slot_t *slot)
{
    if (kill(slot->pid, 0) == -1 && ngx_errno == NGX_ESRCH) {
        return 0;
    }

    /* a pid the system gave another process since */

    return slot->started == 0
           || ngx_icp_gate_metrics_started(slot->pid) == slot->started;
}


/* when a process started, in clock ticks since boot; 0: not known */

static uint64_t
ngx_icp_gate_metrics_started(ngx_pid_t pid)
{
    int        fd;
    u_char    *p, *last;
    ssize_t    n;
    uint64_t   ticks;
    u_char     name[sizeof("/proc//stat") + NGX_INT64_LEN];
    u_char     buf[1024];

    ngx_sprintf(name, "/proc/%P/stat%Z", pid);

    fd = open((char *) name, O_RDONLY);
    if (fd == -1) {
        return 0;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);

    if (n <= 0) {
        return 0;
    }

    /* the 22nd field, the 20th after the name, which may hold anything */

    last = buf + n;
    p = last;

    while (p > buf && p[-1] != ')') {
        p--;
    }

    for (n = 0; n < 20 && p < last; p++) {
        if (*p == ' ') {
            n++;
        }
    }

    for (ticks = 0; p < last && *p >= '0' && *p <= '9'; p++) {
        ticks = ticks * 10 + (*p - '0');
    }

    return ticks;
}


void
ngx_icp_gate_metrics_observe(ngx_icp_gate_histogram_t *h,
    const uint64_t *bounds, uint64_t us)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_ICP_GATE_BUCKETS && us > bounds[i]; i++) {
        /* void */
    }

    h->buckets[i]++;
    h->sum += us;
}


/* a monotonic clock in microseconds: Redis answers in less than a tick */

uint64_t
ngx_icp_gate_metrics_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
