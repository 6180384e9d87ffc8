
/*
 * Copyright (C) icp_gate authors
 *
 * The node's metrics in Prometheus's text format (0.0.4) or in JSON, and
 * the domain console: what each tier holds of a domain, what the filing
 * API says of it now, and the purge of a domain's copies.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_icp_gate_console.h"
#include "ngx_icp_gate_metrics.h"
#include "ngx_icp_gate_lookup.h"
#include "ngx_icp_gate_domain.h"
#include "ngx_icp_gate_judge.h"
#include "ngx_icp_gate_log.h"
#include "ngx_icp_gate_socket.h"


/* room for every series: the decisions are at most 135 lines */
#define NGX_ICP_GATE_CONSOLE_METRICS_LEN   65536

/* bytes of the operator's host an error log line shows */
#define NGX_ICP_GATE_CONSOLE_HOST_LOG      256

/* a verdict in JSON, its filing number escaped, and the rest */
#define NGX_ICP_GATE_CONSOLE_VERDICT_LEN                                      \
    (NGX_ICP_GATE_ICP_LEN * 6 + 320)


/* the metrics, written in one format or the other */

typedef struct {
    u_char                     *pos;
    u_char                     *end;
    ngx_uint_t                  json;
    ngx_uint_t                  families;
    ngx_uint_t                  samples;    /* of the family */
} ngx_icp_gate_writer_t;


/* a label's name and value */

typedef struct {
    char                       *name;
    u_char                     *value;
} ngx_icp_gate_label_t;


/* what a tier Redis or the API answered */

typedef struct {
    ngx_icp_gate_console_t     *console;
    ngx_int_t                   rc;         /* NGX_ABORT: not asked, NGX_AGAIN:
                                               no answer yet */
    ngx_icp_gate_verdict_t      verdict;
} ngx_icp_gate_console_tier_t;


struct ngx_icp_gate_console_s {
    ngx_icp_gate_console_pt     handler;    /* NULL once cancelled */
    void                       *data;
    ngx_pool_t                 *pool;
    ngx_log_t                  *log;
    ngx_event_t                 done;       /* the answer, from the loop */
    ngx_uint_t                  pending;    /* Redis and API answers */
    unsigned                    answered:1; /* at its deadline */

    ngx_str_t                   host;
    ngx_str_t                   domain;
    uint32_t                    hash;
    unsigned                    probe:1;
    unsigned                    purge:1;
    unsigned                    purge_redis:1;

    ngx_int_t                   zone_rc;
    ngx_icp_gate_cache_entry_t  zone;
    ngx_icp_gate_console_tier_t redis;
    ngx_icp_gate_console_tier_t api;

    u_char                      text[1];    /* host, then domain */
};


static void ngx_icp_gate_console_family(ngx_icp_gate_writer_t *w,
    char *name, char *type, char *help);
static void ngx_icp_gate_console_sample(ngx_icp_gate_writer_t *w,
    char *name, ngx_icp_gate_label_t *labels, ngx_uint_t n, int64_t value);
static void ngx_icp_gate_console_family_end(ngx_icp_gate_writer_t *w);
static void ngx_icp_gate_console_histogram(ngx_icp_gate_writer_t *w,
    char *name, char *help, ngx_icp_gate_histogram_t *h,
    const uint64_t *bounds);
static u_char *ngx_icp_gate_console_seconds(u_char *p, u_char *end,
    uint64_t us);
static void ngx_icp_gate_console_decisions(ngx_icp_gate_writer_t *w,
    ngx_icp_gate_metrics_sum_t *sum);
static void ngx_icp_gate_console_lookups(ngx_icp_gate_writer_t *w,
    ngx_icp_gate_metrics_sum_t *sum);
static void ngx_icp_gate_console_by(ngx_icp_gate_writer_t *w, char *name,
    char *type, char *help, char *label, char **values, uint64_t *counts,
    int64_t *gauges, ngx_uint_t n);
static void ngx_icp_gate_console_one(ngx_icp_gate_writer_t *w, char *name,
    char *type, char *help, int64_t value);

static ngx_int_t ngx_icp_gate_console_asked(ngx_icp_gate_console_tier_t *tier,
    ngx_int_t rc);
static void ngx_icp_gate_console_tier_answered(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v);
static void ngx_icp_gate_console_api_answered(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v);
static void ngx_icp_gate_console_redis_deleted(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v);
static void ngx_icp_gate_console_answered(ngx_icp_gate_console_t *con);
static void ngx_icp_gate_console_ready(ngx_icp_gate_console_t *con);
static void ngx_icp_gate_console_finish(ngx_event_t *ev);
static void ngx_icp_gate_console_log(ngx_icp_gate_console_t *con);
static char *ngx_icp_gate_console_purged(ngx_int_t zone_rc);
static char *ngx_icp_gate_console_deleted(ngx_int_t redis_rc);
static ngx_buf_t *ngx_icp_gate_console_render(ngx_icp_gate_console_t *con,
    ngx_uint_t *status);
static u_char *ngx_icp_gate_console_verdict(u_char *p, char *name,
    ngx_int_t rc, ngx_icp_gate_verdict_t *v);


static char  *ngx_icp_gate_proto_names[] = { "http", "rtmp", "http_flv" };
static char  *ngx_icp_gate_tier_names[] = { "zone", "redis", "api" };
static char  *ngx_icp_gate_outcome_names[] = {
    "hit", "stale", "miss", "error"
};

static char  *ngx_icp_gate_api_failure_names[] = {
    "timeout", "connect", "transfer", "status", "body", "queue", "budget"
};


/* the outcomes each tier can have: zone all four, redis three, api two */
static ngx_uint_t  ngx_icp_gate_tier_outcomes[] = { 0xf, 0xd, 0x9 };


ngx_buf_t *
ngx_icp_gate_console_metrics(ngx_pool_t *pool, ngx_uint_t json)
{
    ngx_buf_t                   *b;
    ngx_icp_gate_writer_t        w;
    ngx_icp_gate_metrics_sum_t   sum;
    ngx_icp_gate_lookup_conf_t  *lcf;
    ngx_icp_gate_cache_stats_t   zone;

    b = ngx_create_temp_buf(pool, NGX_ICP_GATE_CONSOLE_METRICS_LEN);
    if (b == NULL) {
        return NULL;
    }

    if (ngx_icp_gate_metrics_sum(&sum) != NGX_OK) {
        return NULL;
    }

    lcf = ngx_icp_gate_lookup_conf;
    ngx_icp_gate_cache_stats(ngx_icp_gate_cache, &zone);

    w.pos = b->pos;
    w.end = b->end;
    w.json = json;
    w.families = 0;

    if (json) {
        *w.pos++ = '{';
    }

    ngx_icp_gate_console_decisions(&w, &sum);
    ngx_icp_gate_console_lookups(&w, &sum);

    ngx_icp_gate_console_one(&w, "icp_gate_lookups_in_flight", "gauge",
                             "Domains being looked up in Redis or the "
                             "filing API.", sum.gauges.flights);

    if (lcf->api.url.len) {
        ngx_icp_gate_console_histogram(&w,
                             "icp_gate_api_request_duration_seconds",
                             "Filing API requests, sent to answered.",
                             &sum.counters.api_seconds,
                             ngx_icp_gate_api_bounds);

        ngx_icp_gate_console_by(&w, "icp_gate_api_failures_total", "counter",
                                "Filing API lookups without a verdict.",
                                "kind", ngx_icp_gate_api_failure_names,
                                sum.counters.api_failures, NULL,
                                NGX_ICP_GATE_API_FAILURES);

        ngx_icp_gate_console_one(&w, "icp_gate_api_requests_running",
                                 "gauge", "Filing API transfers under way.",
                                 sum.gauges.api_running);

        ngx_icp_gate_console_one(&w, "icp_gate_api_requests_queued", "gauge",
                                 "Filing API requests waiting for a "
                                 "transfer.", sum.gauges.api_queued);
    }

    if (lcf->redis.name.len) {
        /* at rest, Redis is up as long as no connection found it down */

        ngx_icp_gate_console_one(&w, "icp_gate_redis_up", "gauge",
                                 "1 when a worker has a connection to "
                                 "Redis ready, or all that are not are "
                                 "closed at rest.",
                                 sum.gauges.redis_ready > 0
                                 || (sum.gauges.redis_idle > 0
                                     && sum.gauges.redis_failing == 0));

        ngx_icp_gate_console_one(&w, "icp_gate_redis_connections", "gauge",
                                 "Connections to Redis ready, of every "
                                 "worker.", sum.gauges.redis_ready);

        ngx_icp_gate_console_one(&w, "icp_gate_redis_connections_idle",
                                 "gauge", "Connections to Redis closed at "
                                 "rest, opened again when needed.",
                                 sum.gauges.redis_idle);

        ngx_icp_gate_console_one(&w, "icp_gate_redis_connections_failing",
                                 "gauge", "Connections to Redis lost or "
                                 "failed, not set up again yet.",
                                 sum.gauges.redis_failing);

        ngx_icp_gate_console_one(&w, "icp_gate_redis_reconnects_total",
                                 "counter", "Connections to Redis lost or "
                                 "failed, each opened again.",
                                 (int64_t) sum.counters.redis_reconnects);

        ngx_icp_gate_console_histogram(&w,
                             "icp_gate_redis_command_duration_seconds",
                             "Redis commands, sent to answered.",
                             &sum.counters.redis_seconds,
                             ngx_icp_gate_redis_bounds);

        ngx_icp_gate_console_one(&w, "icp_gate_redis_timeouts_total",
                                 "counter", "Redis commands not answered "
                                 "within the timeout.",
                                 (int64_t) sum.counters.redis_timeouts);
    }

    ngx_icp_gate_console_one(&w, "icp_gate_zone_size_bytes", "gauge",
                             "Size of the shared-memory zone.",
                             (int64_t) zone.size);
    ngx_icp_gate_console_one(&w, "icp_gate_zone_used_bytes", "gauge",
                             "Bytes of the zone in pages not free.",
                             (int64_t) (zone.size - zone.free));
    ngx_icp_gate_console_one(&w, "icp_gate_zone_entries", "gauge",
                             "Domains in the zone.", (int64_t) zone.entries);
    ngx_icp_gate_console_one(&w, "icp_gate_zone_evictions_total", "counter",
                             "Domains evicted to make room.",
                             (int64_t) sum.counters.zone_evictions);

    ngx_icp_gate_console_by(&w, "icp_gate_live_sessions", "gauge",
                            "Live sessions the gate watches.", "proto",
                            ngx_icp_gate_proto_names + 1, NULL,
                            sum.gauges.live + 1, NGX_ICP_GATE_PROTOS - 1);

    ngx_icp_gate_console_by(&w, "icp_gate_live_dropped_total", "counter",
                            "Live sessions closed because their domain "
                            "lost its filing.", "proto",
                            ngx_icp_gate_proto_names + 1,
                            sum.counters.live_dropped + 1, NULL,
                            NGX_ICP_GATE_PROTOS - 1);

    ngx_icp_gate_console_one(&w, "icp_gate_admin_purges_total", "counter",
                             "Domains purged through icp_gate_admin.",
                             (int64_t) sum.counters.admin_purges);

    ngx_icp_gate_console_one(&w, "icp_gate_workers", "gauge",
                             "Worker processes counting.",
                             (int64_t) sum.workers);

    if (json && w.pos + 2 <= w.end) {
        *w.pos++ = '}';
        *w.pos++ = LF;
    }

    b->last = w.pos;

    return b;
}


static void
ngx_icp_gate_console_decisions(ngx_icp_gate_writer_t *w,
    ngx_icp_gate_metrics_sum_t *sum)
{
    uint64_t              n;
    ngx_uint_t            proto, result, reason;
    ngx_icp_gate_label_t  labels[3];

    ngx_icp_gate_console_family(w, "icp_gate_decisions_total", "counter",
                                "Requests and sessions judged, by "
                                "outcome; result \"open\": let through by "
                                "dry_run before the verdict.");

    labels[0].name = "proto";
    labels[1].name = "result";
    labels[2].name = "reason";

    for (proto = 0; proto < NGX_ICP_GATE_PROTOS; proto++) {
        for (result = 0; result < NGX_ICP_GATE_RESULTS; result++) {
            for (reason = 0; reason < NGX_ICP_GATE_REASONS; reason++) {

                n = sum->counters.decisions[proto][result][reason];

                if (n == 0) {
                    continue;
                }

                labels[0].value = (u_char *) ngx_icp_gate_proto_names[proto];
                labels[1].value = result
                                  ? ngx_icp_gate_result_names[result].data
                                  : (u_char *) "open";
                labels[2].value = reason
                                  ? ngx_icp_gate_reason_names[reason].data
                                  : (u_char *) "none";

                ngx_icp_gate_console_sample(w, "icp_gate_decisions_total",
                                            labels, 3, (int64_t) n);
            }
        }
    }

    ngx_icp_gate_console_family_end(w);
}


static void
ngx_icp_gate_console_lookups(ngx_icp_gate_writer_t *w,
    ngx_icp_gate_metrics_sum_t *sum)
{
    ngx_uint_t            tier, outcome;
    ngx_icp_gate_label_t  labels[2];

    ngx_icp_gate_console_family(w, "icp_gate_lookups_total", "counter",
                                "Verdicts asked of each tier, by "
                                "outcome.");

    labels[0].name = "tier";
    labels[1].name = "outcome";

    for (tier = 0; tier < NGX_ICP_GATE_TIERS; tier++) {
        for (outcome = 0; outcome < NGX_ICP_GATE_OUTCOMES; outcome++) {

            if (!(ngx_icp_gate_tier_outcomes[tier] & (1 << outcome))) {
                continue;
            }

            labels[0].value = (u_char *) ngx_icp_gate_tier_names[tier];
            labels[1].value = (u_char *) ngx_icp_gate_outcome_names[outcome];

            ngx_icp_gate_console_sample(w, "icp_gate_lookups_total", labels,
                                        2, (int64_t) sum->counters
                                                   .lookups[tier][outcome]);
        }
    }

    ngx_icp_gate_console_family_end(w);
}


/* a family with one label: counts, or else gauges */

static void
ngx_icp_gate_console_by(ngx_icp_gate_writer_t *w, char *name, char *type,
    char *help, char *label, char **values, uint64_t *counts,
    int64_t *gauges, ngx_uint_t n)
{
    ngx_uint_t            i;
    ngx_icp_gate_label_t  l;

    ngx_icp_gate_console_family(w, name, type, help);

    l.name = label;

    for (i = 0; i < n; i++) {
        l.value = (u_char *) values[i];

        ngx_icp_gate_console_sample(w, name, &l, 1,
                                    counts ? (int64_t) counts[i] : gauges[i]);
    }

    ngx_icp_gate_console_family_end(w);
}


static void
ngx_icp_gate_console_one(ngx_icp_gate_writer_t *w, char *name, char *type,
    char *help, int64_t value)
{
    ngx_icp_gate_console_family(w, name, type, help);
    ngx_icp_gate_console_sample(w, name, NULL, 0, value);
    ngx_icp_gate_console_family_end(w);
}


static void
ngx_icp_gate_console_family(ngx_icp_gate_writer_t *w, char *name,
    char *type, char *help)
{
    if (w->json) {
        w->pos = ngx_slprintf(w->pos, w->end, "%s\"%s\":",
                              w->families ? "," : "", name);

    } else {
        w->pos = ngx_slprintf(w->pos, w->end, "# HELP %s %s\n# TYPE %s %s\n",
                              name, help, name, type);
    }

    w->families++;
    w->samples = 0;
}


/* labels NULL: a family of one value, a plain number in JSON */

static void
ngx_icp_gate_console_sample(ngx_icp_gate_writer_t *w, char *name,
    ngx_icp_gate_label_t *labels, ngx_uint_t n, int64_t value)
{
    ngx_uint_t  i;

    if (!w->json) {
        w->pos = ngx_slprintf(w->pos, w->end, "%s", name);

        for (i = 0; i < n; i++) {
            w->pos = ngx_slprintf(w->pos, w->end, "%s%s=\"%s\"",
                                  i ? "," : "{", labels[i].name,
                                  labels[i].value);
        }

        w->pos = ngx_slprintf(w->pos, w->end, "%s %L\n", n ? "}" : "",
                              value);
        return;
    }

    if (labels == NULL) {
        w->pos = ngx_slprintf(w->pos, w->end, "%L", value);
        return;
    }

    w->pos = ngx_slprintf(w->pos, w->end, "%s{", w->samples ? "," : "[");

    for (i = 0; i < n; i++) {
        w->pos = ngx_slprintf(w->pos, w->end, "\"%s\":\"%s\",",
                              labels[i].name, labels[i].value);
    }

    w->pos = ngx_slprintf(w->pos, w->end, "\"value\":%L}", value);

    w->samples++;
}


static void
ngx_icp_gate_console_family_end(ngx_icp_gate_writer_t *w)
{
    if (w->json && w->samples) {
        w->pos = ngx_slprintf(w->pos, w->end, "]");

    } else if (w->json && w->pos[-1] == ':') {
        /* a labelled family with no sample yet */
        w->pos = ngx_slprintf(w->pos, w->end, "[]");
    }
}


static void
ngx_icp_gate_console_histogram(ngx_icp_gate_writer_t *w, char *name,
    char *help, ngx_icp_gate_histogram_t *h, const uint64_t *bounds)
{
    uint64_t    count;
    ngx_uint_t  i;

    ngx_icp_gate_console_family(w, name, "histogram", help);

    if (w->json) {
        w->pos = ngx_slprintf(w->pos, w->end, "{\"buckets\":{");
    }

    count = 0;

    for (i = 0; i <= NGX_ICP_GATE_BUCKETS; i++) {
        count += h->buckets[i];

        if (w->json) {
            w->pos = ngx_slprintf(w->pos, w->end, "%s\"", i ? "," : "");

        } else {
            w->pos = ngx_slprintf(w->pos, w->end, "%s_bucket{le=\"", name);
        }

        if (i < NGX_ICP_GATE_BUCKETS) {
            w->pos = ngx_icp_gate_console_seconds(w->pos, w->end, bounds[i]);

        } else {
            w->pos = ngx_slprintf(w->pos, w->end, "+Inf");
        }

        w->pos = ngx_slprintf(w->pos, w->end,
                              w->json ? "\":%uL" : "\"} %uL\n", count);
    }

    if (w->json) {
        w->pos = ngx_slprintf(w->pos, w->end, "},\"sum\":");
        w->pos = ngx_icp_gate_console_seconds(w->pos, w->end, h->sum);
        w->pos = ngx_slprintf(w->pos, w->end, ",\"count\":%uL}", count);
        return;
    }

    w->pos = ngx_slprintf(w->pos, w->end, "%s_sum ", name);
    w->pos = ngx_icp_gate_console_seconds(w->pos, w->end, h->sum);
    w->pos = ngx_slprintf(w->pos, w->end, "\n%s_count %uL\n", name, count);
}


/* microseconds as seconds, without trailing zeros: 0.0025, 1, 2.5 */

static u_char *
ngx_icp_gate_console_seconds(u_char *p, u_char *end, uint64_t us)
{
    u_char  *last;
    u_char   frac[8];

    p = ngx_slprintf(p, end, "%uL", us / 1000000);

    if (us % 1000000 == 0) {
        return p;
    }

    last = ngx_sprintf(frac, ".%06uL", us % 1000000);

    while (last[-1] == '0') {
        last--;
    }

    return ngx_slprintf(p, end, "%*s", (size_t) (last - frac), frac);
}


/*
 * The domain console: NGX_AGAIN, and the handler gets the answer from the
 * event loop, unless ngx_icp_gate_console_cancel() comes first; NGX_ERROR
 */

ngx_int_t
ngx_icp_gate_console_domain(ngx_icp_gate_console_ask_t *ask,
    ngx_pool_t *pool, ngx_log_t *log, ngx_icp_gate_console_pt handler,
    void *data, ngx_icp_gate_console_t **console)
{
    uint32_t                     hash;
    ngx_str_t                    domain;
    ngx_uint_t                   kind;
    ngx_icp_gate_console_t      *con;
    ngx_icp_gate_lookup_conf_t  *lcf;

    lcf = ngx_icp_gate_lookup_conf;

    kind = ngx_icp_gate_domain_registrable(pool, &ask->host, &domain, &hash);

    if (kind != NGX_ICP_GATE_HOST_VALID) {
        domain.len = 0;
    }

    con = ngx_calloc(sizeof(ngx_icp_gate_console_t) + ask->host.len
                     + domain.len, log);
    if (con == NULL) {
        return NGX_ERROR;
    }

    con->handler = handler;
    con->data = data;
    con->pool = pool;
    con->log = log;
    con->probe = ask->probe;
    con->purge = ask->purge;
    con->purge_redis = ask->redis;
    con->zone_rc = NGX_DECLINED;
    con->redis.console = con;
    con->redis.rc = NGX_ABORT;
    con->api.console = con;
    con->api.rc = NGX_ABORT;

    con->host.data = con->text;
    con->host.len = ask->host.len;
    ngx_memcpy(con->host.data, ask->host.data, ask->host.len);

    con->domain.data = con->text + ask->host.len;
    con->domain.len = domain.len;
    ngx_memcpy(con->domain.data, domain.data, domain.len);

    con->hash = hash;

    /*
     * a deadline past any answer, which a worker's graceful exit waits for
     * too: it answers what has come by then
     */

    ngx_icp_gate_timer_init(&con->done, ngx_icp_gate_console_finish, log);
    con->done.cancelable = 0;

    ngx_add_timer(&con->done, lcf->redis.timeout
                              + 2 * lcf->api.timeout + 1000);

    *console = con;

    if (con->domain.len == 0) {
        ngx_icp_gate_console_ready(con);
        return NGX_AGAIN;
    }

    if (con->purge) {

        /*
         * Redis first, and the zone only once Redis has confirmed: a lookup
         * between the two would bring the copy back, and a purge of the
         * zone alone would be undone as soon as Redis is read again.  The
         * purge's mark in Redis outlives any verdict written before it.
         */

        if (con->purge_redis && lcf->redis.name.len) {
            con->zone_rc = NGX_ABORT;

            (void) ngx_icp_gate_console_asked(&con->redis,
                       ngx_icp_gate_redis_delete(&con->domain,
                           1000 * ngx_max(lcf->ttl, lcf->negative_ttl),
                           ngx_icp_gate_console_redis_deleted, &con->redis));

            if (con->pending == 0) {
                ngx_icp_gate_console_ready(con);
            }

            return NGX_AGAIN;
        }

        con->zone_rc = ngx_icp_gate_lookup_purge(&con->domain, con->hash);

        ngx_icp_gate_console_ready(con);
        return NGX_AGAIN;
    }

    con->zone_rc = ngx_icp_gate_cache_inspect(ngx_icp_gate_cache,
                                              &con->domain, con->hash,
                                              &con->zone);

    if (lcf->redis.name.len) {
        (void) ngx_icp_gate_console_asked(&con->redis,
                   ngx_icp_gate_redis_get(&con->domain,
                                          ngx_icp_gate_console_tier_answered,
                                          &con->redis));
    }

    if (con->probe && lcf->api.url.len) {
        (void) ngx_icp_gate_console_asked(&con->api,
                   ngx_icp_gate_api_fetch(&con->domain,
                                          ngx_icp_gate_console_api_answered,
                                          &con->api));
    }

    if (con->pending == 0) {
        ngx_icp_gate_console_ready(con);
    }

    return NGX_AGAIN;
}


/* the client left: what was asked is still done, and logged */

void
ngx_icp_gate_console_cancel(ngx_icp_gate_console_t *con)
{
    con->handler = NULL;
    con->pool = NULL;
    con->log = ngx_cycle->log;
    con->done.log = ngx_cycle->log;
}


/* rc: whether the tier's command or request could be sent */

static ngx_int_t
ngx_icp_gate_console_asked(ngx_icp_gate_console_tier_t *tier, ngx_int_t rc)
{
    if (rc != NGX_OK) {
        tier->rc = NGX_ERROR;
        return NGX_ERROR;
    }

    tier->rc = NGX_AGAIN;
    tier->console->pending++;

    return NGX_OK;
}


static void
ngx_icp_gate_console_tier_answered(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v)
{
    ngx_icp_gate_console_tier_t  *tier = data;

    tier->rc = rc;

    if (rc == NGX_OK) {
        tier->verdict = *v;
    }

    ngx_icp_gate_console_answered(tier->console);
}


/* the API's NGX_DECLINED: this node could not ask, no "absent" */

static void
ngx_icp_gate_console_api_answered(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v)
{
    ngx_icp_gate_console_tier_answered(data,
                                       (rc == NGX_DECLINED) ? NGX_ERROR : rc,
                                       v);
}


static void
ngx_icp_gate_console_redis_deleted(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v)
{
    ngx_icp_gate_console_tier_t  *tier = data;

    ngx_icp_gate_console_t       *con;

    con = tier->console;

    /*
     * a reply that is no count of keys deleted is a failure too; so is a
     * delete not answered by its deadline, which Redis may run yet: the
     * zone keeps its copy, and the answer says the purge failed
     */

    tier->rc = (rc == NGX_DONE || rc == NGX_DECLINED) ? rc : NGX_ERROR;

    if (tier->rc != NGX_ERROR && !con->answered) {
        con->zone_rc = ngx_icp_gate_lookup_purge(&con->domain, con->hash);
    }

    ngx_icp_gate_console_answered(con);
}


/* an answer that came after the deadline answered for it is let go */

static void
ngx_icp_gate_console_answered(ngx_icp_gate_console_t *con)
{
    if (--con->pending) {
        return;
    }

    if (con->answered) {
        ngx_free(con);
        return;
    }

    ngx_icp_gate_console_ready(con);
}


static void
ngx_icp_gate_console_ready(ngx_icp_gate_console_t *con)
{
    ngx_del_timer(&con->done);
    ngx_post_event(&con->done, &ngx_posted_events);
}


static void
ngx_icp_gate_console_finish(ngx_event_t *ev)
{
    ngx_buf_t               *b;
    ngx_uint_t               status;
    ngx_icp_gate_console_t  *con;

    con = (ngx_icp_gate_console_t *)
              ((u_char *) ev - offsetof(ngx_icp_gate_console_t, done));

    /* at the deadline: a tier that has not answered failed */

    if (con->pending) {
        if (con->redis.rc == NGX_AGAIN) {
            con->redis.rc = NGX_ERROR;
        }

        if (con->api.rc == NGX_AGAIN) {
            con->api.rc = NGX_ERROR;
        }
    }

    ngx_icp_gate_console_log(con);

    if (con->handler) {
        b = ngx_icp_gate_console_render(con, &status);
        con->handler(con->data, status, b);
    }

    if (con->pending) {
        con->answered = 1;
        con->handler = NULL;
        return;
    }

    ngx_free(con);
}


/* the host is the operator's text: escaped, so it cannot forge a line */

static void
ngx_icp_gate_console_log(ngx_icp_gate_console_t *con)
{
    u_char  *last;
    u_char   host[NGX_ICP_GATE_CONSOLE_HOST_LOG * 6];

    last = ngx_icp_gate_log_escape(host, con->host.data,
                                   ngx_min(con->host.len,
                                           NGX_ICP_GATE_CONSOLE_HOST_LOG));

    if (con->domain.len == 0) {
        ngx_log_error(NGX_LOG_NOTICE, con->log, 0,
                      "icp_gate: admin %s refused: \"%*s\" is not a host "
                      "that can be filed", con->purge ? "purge" : "lookup",
                      last - host, host);
        return;
    }

    if (con->purge) {
        ngx_icp_gate_count(admin_purges);

        ngx_log_error(NGX_LOG_NOTICE, con->log, 0,
                      "icp_gate: admin purged \"%V\" (host \"%*s\"): zone "
                      "%s, redis %s", &con->domain, last - host, host,
                      ngx_icp_gate_console_purged(con->zone_rc),
                      ngx_icp_gate_console_deleted(con->redis.rc));
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, con->log, 0,
                  "icp_gate: admin looked up \"%V\" (host \"%*s\")%s",
                  &con->domain, last - host, host,
                  con->probe ? ", asking the filing API" : "");
}


/* what a purge did, in the log as in the answer */

static char *
ngx_icp_gate_console_purged(ngx_int_t zone_rc)
{
    switch (zone_rc) {

    case NGX_OK:
        return "purged";

    case NGX_DECLINED:
        return "absent";

    default:                    /* Redis failed: nothing was purged */
        return "kept";
    }
}


static char *
ngx_icp_gate_console_deleted(ngx_int_t redis_rc)
{
    switch (redis_rc) {

    case NGX_DONE:
        return "deleted";

    case NGX_DECLINED:
        return "absent";

    case NGX_ABORT:             /* not asked to: no redis=1 */
        return "kept";

    default:
        return "failed";
    }
}


static ngx_buf_t *
ngx_icp_gate_console_render(ngx_icp_gate_console_t *con, ngx_uint_t *status)
{
    u_char     *p;
    ngx_buf_t  *b;

    *status = 500;

    b = ngx_create_temp_buf(con->pool,
                            ngx_icp_gate_log_escape_len(con->host.data,
                                                        con->host.len)
                            + con->domain.len
                            + 4 * NGX_ICP_GATE_CONSOLE_VERDICT_LEN);
    if (b == NULL) {
        return NULL;
    }

    *status = 200;

    p = ngx_sprintf(b->last, "{");
    p = ngx_icp_gate_log_member(p, "host", &con->host);

    if (con->domain.len == 0) {
        *status = 400;
        p = ngx_sprintf(p, ",\"error\":\"not a host that can be filed\"}\n");
        b->last = p;
        return b;
    }

    *p++ = ',';
    p = ngx_icp_gate_log_member(p, "domain", &con->domain);

    if (con->purge) {
        if (con->redis.rc == NGX_ERROR) {
            *status = 502;
        }

        p = ngx_sprintf(p, ",\"action\":\"purge\",\"zone\":\"%s\","
                        "\"redis\":\"%s\"}\n",
                        ngx_icp_gate_console_purged(con->zone_rc),
                        ngx_icp_gate_console_deleted(con->redis.rc));
        b->last = p;
        return b;
    }

    p = ngx_sprintf(p, ",\"zone\":");

    if (con->zone_rc != NGX_OK
        || con->zone.verdict.status == NGX_ICP_GATE_STATUS_NONE)
    {
        p = ngx_sprintf(p, "null");

    } else {
        p = ngx_icp_gate_console_verdict(p, NULL, NGX_OK, &con->zone.verdict);
        p--;    /* its '}' */

        p = ngx_sprintf(p, ",\"fresh_for\":%.3f,\"usable_for\":%T,"
                        "\"refreshing\":%s}",
                        (double) con->zone.fresh / 1000,
                        con->zone.usable - ngx_time(),
                        con->zone.looked_up ? "true" : "false");
    }

    p = ngx_icp_gate_console_verdict(p, "redis", con->redis.rc,
                                     &con->redis.verdict);

    if (con->probe) {
        p = ngx_icp_gate_console_verdict(p, "api", con->api.rc,
                                         &con->api.verdict);
    }

    p = ngx_sprintf(p, "}\n");

    b->last = p;

    return b;
}


/*
 * name NULL: the verdict's object alone; rc NGX_ABORT: the tier is not
 * configured (or not asked), NGX_DECLINED: it has no verdict
 */

static u_char *
ngx_icp_gate_console_verdict(u_char *p, char *name, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v)
{
    ngx_str_t  icp;

    if (name) {
        p = ngx_sprintf(p, ",\"%s\":", name);
    }

    switch (rc) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        return ngx_sprintf(p, "null");

    case NGX_ABORT:
        return ngx_sprintf(p, "{\"error\":\"not configured\"}");

    default:
        return ngx_sprintf(p, "{\"error\":\"no answer in time, or a bad "
                           "one: see the error log\"}");
    }

    p = ngx_sprintf(p, "{\"status\":\"%V\",",
                    &ngx_icp_gate_status_names[v->status]);

    if (v->icp_len) {
        icp.data = v->icp;
        icp.len = v->icp_len;
        p = ngx_icp_gate_log_member(p, "icp", &icp);
        *p++ = ',';
    }

    if (v->region != NGX_ICP_GATE_REGION_NONE) {
        p = ngx_sprintf(p, "\"region\":\"%V\",",
                        &ngx_icp_gate_region_names[v->region]);
    }

    return ngx_sprintf(p, "\"source\":\"%V\",\"checked_at\":%T,\"age\":%T,"
                       "\"version\":%uL}",
                       &ngx_icp_gate_source_names[v->source], v->checked_at,
                       v->checked_at ? ngx_time() - v->checked_at : 0,
                       v->version);
}
