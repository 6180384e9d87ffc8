
/*
 * Copyright (C) icp_gate authors
 *
 * The engine: main-context directives shared by the HTTP and RTMP gates,
 * and the lookup of a domain's verdict in the shared cache, then Redis,
 * then the filing API.  Concurrent first lookups of one domain share one
 * "flight": within a worker by the flight tree, across workers by the
 * cache entry's update lock; the workers that do not hold it look at the
 * cache again until the verdict is there.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_icp_gate.h"
#include "ngx_icp_gate_api.h"
#include "ngx_icp_gate_cache.h"
#include "ngx_icp_gate_domain.h"
#include "ngx_icp_gate_redis.h"


/*
 * A worker waiting for another one's lookup looks again after a quarter of
 * the time it has waited, within these bounds: at most a quarter late, and
 * a slow filing API is not polled hundreds of times a second.
 */
#define NGX_ICP_GATE_POLL_MIN        2
#define NGX_ICP_GATE_POLL_MAX        20

/* how long a verdict that failed to refresh answers before a new try */
#define NGX_ICP_GATE_RETRY           5000


typedef struct {
    ngx_shm_zone_t             *zone;
    ngx_icp_gate_redis_conf_t   redis;
    ngx_icp_gate_api_conf_t     api;
    time_t                      ttl;
    time_t                      negative_ttl;
    ngx_msec_t                  local_ttl;
    ngx_flag_t                  used;
    ngx_flag_t                  default_zone;
} ngx_icp_gate_main_conf_t;


typedef struct {
    ngx_str_node_t              sn;
    ngx_queue_t                 waiters;
    ngx_event_t                 event;
    ngx_msec_t                  started;
    unsigned                    owner:1;
    u_char                      data[NGX_ICP_GATE_DOMAIN_LEN];
} ngx_icp_gate_flight_t;


static void *ngx_icp_gate_create_conf(ngx_cycle_t *cycle);
static char *ngx_icp_gate_init_conf(ngx_cycle_t *cycle, void *conf);
static char *ngx_icp_gate_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_icp_gate_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_icp_gate_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_icp_gate_use(ngx_conf_t *cf);
static ngx_int_t ngx_icp_gate_init_module(ngx_cycle_t *cycle);
static void ngx_icp_gate_exit_process(ngx_cycle_t *cycle);

static ngx_int_t ngx_icp_gate_lookup(ngx_str_t *domain,
    ngx_icp_gate_verdict_t *v, ngx_icp_gate_waiter_t *w, ngx_msec_t wait);
static void ngx_icp_gate_judge_verdict(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j, ngx_int_t rc);
static void ngx_icp_gate_refuse(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j, ngx_uint_t reason);
static void ngx_icp_gate_waiter_timeout(ngx_event_t *ev);

static ngx_icp_gate_flight_t *ngx_icp_gate_flight_find(ngx_str_t *domain);
static ngx_icp_gate_flight_t *ngx_icp_gate_flight_create(ngx_str_t *domain,
    ngx_uint_t owner);
static void ngx_icp_gate_flight_run(ngx_event_t *ev);
static void ngx_icp_gate_flight_fetch(ngx_icp_gate_flight_t *f);
static void ngx_icp_gate_flight_ask_api(ngx_icp_gate_flight_t *f,
    ngx_uint_t absent);
static void ngx_icp_gate_flight_redis_done(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v);
static void ngx_icp_gate_flight_api_done(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v);
static void ngx_icp_gate_flight_fail(ngx_icp_gate_flight_t *f);
static void ngx_icp_gate_flight_finish(ngx_icp_gate_flight_t *f,
    ngx_int_t rc, ngx_icp_gate_verdict_t *v);
static ngx_msec_t ngx_icp_gate_fresh_for(ngx_icp_gate_verdict_t *v);
static ngx_msec_t ngx_icp_gate_lock_for(void);


ngx_str_t  ngx_icp_gate_status_names[] = {
    ngx_null_string,
    ngx_string("filed"),
    ngx_string("pending"),
    ngx_string("revoked"),
    ngx_string("unfiled"),
    ngx_null_string
};


ngx_str_t  ngx_icp_gate_region_names[] = {
    ngx_null_string,
    ngx_string("mainland"),
    ngx_string("global"),
    ngx_string("overseas"),
    ngx_null_string
};


ngx_str_t  ngx_icp_gate_result_names[] = {
    ngx_null_string,
    ngx_string("allow"),
    ngx_string("deny"),
    ngx_string("exempt"),
    ngx_string("dry_run"),
    ngx_null_string
};


ngx_str_t  ngx_icp_gate_reason_names[] = {
    ngx_null_string,
    ngx_string("no_host"),
    ngx_string("ip_literal"),
    ngx_string("invalid_host"),
    ngx_string("overseas"),
    ngx_string("unfiled"),
    ngx_string("pending"),
    ngx_string("revoked"),
    ngx_string("lookup_failed"),
    ngx_null_string
};


ngx_conf_enum_t  ngx_icp_gate_modes[] = {
    { ngx_string("off"), NGX_ICP_GATE_MODE_OFF },
    { ngx_string("on"), NGX_ICP_GATE_MODE_ON },
    { ngx_string("dry_run"), NGX_ICP_GATE_MODE_DRY_RUN },
    { ngx_null_string, 0 }
};


ngx_conf_enum_t  ngx_icp_gate_regions[] = {
    { ngx_string("mainland"), NGX_ICP_GATE_REGION_MAINLAND },
    { ngx_string("global"), NGX_ICP_GATE_REGION_GLOBAL },
    { ngx_string("overseas"), NGX_ICP_GATE_REGION_OVERSEAS },
    { ngx_null_string, 0 }
};


ngx_conf_enum_t  ngx_icp_gate_on_errors[] = {
    { ngx_string("deny"), NGX_ICP_GATE_ON_ERROR_DENY },
    { ngx_string("allow"), NGX_ICP_GATE_ON_ERROR_ALLOW },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_icp_gate_commands[] = {

    { ngx_string("icp_gate_zone"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_icp_gate_zone,
      0,
      0,
      NULL },

    { ngx_string("icp_gate_redis"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_1MORE,
      ngx_icp_gate_redis,
      0,
      0,
      NULL },

    { ngx_string("icp_gate_redis_prefix"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, redis.prefix),
      NULL },

    { ngx_string("icp_gate_api"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_icp_gate_api,
      0,
      0,
      NULL },

    { ngx_string("icp_gate_api_header"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE2,
      ngx_conf_set_keyval_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, api.headers),
      NULL },

    { ngx_string("icp_gate_api_timeout"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, api.timeout),
      NULL },

    { ngx_string("icp_gate_ttl"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, ttl),
      NULL },

    { ngx_string("icp_gate_negative_ttl"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, negative_ttl),
      NULL },

    { ngx_string("icp_gate_local_ttl"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, local_ttl),
      NULL },

      ngx_null_command
};


static ngx_core_module_t  ngx_icp_gate_module_ctx = {
    ngx_string("icp_gate"),
    ngx_icp_gate_create_conf,
    ngx_icp_gate_init_conf
};


ngx_module_t  ngx_icp_gate_module = {
    NGX_MODULE_V1,
    &ngx_icp_gate_module_ctx,              /* module context */
    ngx_icp_gate_commands,                 /* module directives */
    NGX_CORE_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_icp_gate_init_module,              /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_icp_gate_exit_process,             /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_icp_gate_main_conf_t  *ngx_icp_gate_main;
static ngx_icp_gate_cache_t      *ngx_icp_gate_cache;
static ngx_rbtree_t               ngx_icp_gate_flights;
static ngx_rbtree_node_t          ngx_icp_gate_flights_sentinel;
static ngx_uint_t                 ngx_icp_gate_exiting;


/* host: as the client sent it, NULL data when it sent none */

void
ngx_icp_gate_judgement_init(ngx_icp_gate_judgement_t *j, ngx_str_t *host,
    ngx_icp_gate_waiter_pt handler, void *data, ngx_log_t *log)
{
    j->host = *host;

    if (j->host.data == NULL) {
        ngx_str_set(&j->host, "");
    }

    j->waiter.handler = handler;
    j->waiter.data = data;
    j->waiter.timer.log = log;
}


/*
 * NGX_OK: j->result holds the verdict; NGX_AGAIN: the waiter's handler runs
 * once it is in (or icp_gate_wait ran out), until ngx_icp_gate_judge_cancel()
 */

ngx_int_t
ngx_icp_gate_judge(ngx_icp_gate_conf_t *gcf, ngx_icp_gate_judgement_t *j,
    ngx_pool_t *pool)
{
    ngx_int_t   rc;
    ngx_uint_t  reason;

    reason = ngx_icp_gate_domain_registrable(pool, &j->host, &j->domain);

    /* a block that serves only overseas audiences needs no filing at all */

    if (gcf->region == NGX_ICP_GATE_REGION_OVERSEAS) {
        j->result = NGX_ICP_GATE_RESULT_EXEMPT;
        j->reason = NGX_ICP_GATE_REASON_OVERSEAS;
        return NGX_OK;
    }

    if (reason != NGX_ICP_GATE_REASON_NONE) {
        ngx_icp_gate_refuse(gcf, j, reason);
        return NGX_OK;
    }

    rc = ngx_icp_gate_lookup(&j->domain, &j->verdict, &j->waiter, gcf->wait);

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    ngx_icp_gate_judge_verdict(gcf, j, rc);

    return NGX_OK;
}


/*
 * A live session's periodic look: the cache, refreshed in the background
 * when expired, never waited on; without a verdict the old one stands.
 */

ngx_int_t
ngx_icp_gate_judge_again(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j)
{
    ngx_icp_gate_verdict_t  v;

    if (gcf->region == NGX_ICP_GATE_REGION_OVERSEAS) {
        return NGX_DECLINED;
    }

    if (j->domain.len == 0
        || ngx_icp_gate_lookup(&j->domain, &v, NULL, 0) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    j->verdict = v;
    ngx_icp_gate_judge_verdict(gcf, j, NGX_OK);

    return NGX_OK;
}


void
ngx_icp_gate_judge_resume(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j)
{
    ngx_icp_gate_judge_verdict(gcf, j, j->waiter.rc);
}


void
ngx_icp_gate_judge_cancel(ngx_icp_gate_judgement_t *j)
{
    ngx_icp_gate_waiter_t  *w;

    w = &j->waiter;

    if (w->waiting) {
        ngx_queue_remove(&w->queue);
        w->waiting = 0;
    }

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }
}


ngx_uint_t
ngx_icp_gate_name_lookup(ngx_str_t *names, u_char *data, size_t len)
{
    ngx_uint_t  i;

    for (i = 1; names[i].len; i++) {
        if (names[i].len == len && ngx_strncmp(names[i].data, data, len) == 0)
        {
            return i;
        }
    }

    return 0;
}


/*
 * A filing number from the API or Redis goes into headers and logs through
 * $icp_gate_icp: one with control characters, or too long, is not kept
 */

void
ngx_icp_gate_verdict_set_icp(ngx_icp_gate_verdict_t *v, u_char *data,
    size_t len)
{
    size_t  i;

    v->icp_len = 0;

    if (len >= NGX_ICP_GATE_ICP_LEN) {
        return;
    }

    for (i = 0; i < len; i++) {
        if (data[i] < 0x20 || data[i] == 0x7f) {
            return;
        }
    }

    ngx_memcpy(v->icp, data, len);
    v->icp_len = len;
}


/* ngx_conf_set_enum_slot() that names the directive and its values */

char *
ngx_icp_gate_conf_set_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char           *p;
    ngx_str_t        *value;
    ngx_uint_t       *field;
    ngx_conf_enum_t  *e;
    u_char            values[128];

    field = (ngx_uint_t *) ((char *) conf + cmd->offset);

    if (*field != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p = values;

    for (e = cmd->post; e->name.len; e++) {
        if (e->name.len == value[1].len
            && ngx_strcmp(e->name.data, value[1].data) == 0)
        {
            *field = e->value;
            return NGX_CONF_OK;
        }

        p = ngx_slprintf(p, values + sizeof(values), "%s\"%V\"",
                         p == values ? "" : e[1].name.len ? ", " : " or ",
                         &e->name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\", expected %*s",
                       &value[1], &cmd->name, p - values, values);

    return NGX_CONF_ERROR;
}


char *
ngx_icp_gate_conf_set_mode(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char        *rv;
    ngx_uint_t  *mode;

    rv = ngx_icp_gate_conf_set_enum(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    mode = (ngx_uint_t *) ((char *) conf + cmd->offset);

    if (*mode != NGX_ICP_GATE_MODE_OFF && ngx_icp_gate_use(cf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_icp_gate_conf_set_log(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t         *value;
    ngx_open_file_t  **file;

    file = (ngx_open_file_t **) ((char *) conf + cmd->offset);

    if (*file != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        *file = NULL;
        return NGX_CONF_OK;
    }

    /* opened, and reopened on "nginx -s reopen", with nginx's own logs */

    *file = ngx_conf_open_file(cf->cycle, &value[1]);
    if (*file == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


void
ngx_icp_gate_conf_init(ngx_icp_gate_conf_t *gcf)
{
    gcf->mode = NGX_CONF_UNSET_UINT;
    gcf->region = NGX_CONF_UNSET_UINT;
    gcf->wait = NGX_CONF_UNSET_MSEC;
    gcf->on_error = NGX_CONF_UNSET_UINT;
    gcf->log = NGX_CONF_UNSET_PTR;
    gcf->recheck = NGX_CONF_UNSET_MSEC;
}


void
ngx_icp_gate_conf_merge(ngx_icp_gate_conf_t *conf, ngx_icp_gate_conf_t *prev)
{
    ngx_conf_merge_uint_value(conf->mode, prev->mode, NGX_ICP_GATE_MODE_OFF);
    ngx_conf_merge_uint_value(conf->region, prev->region,
                              NGX_ICP_GATE_REGION_MAINLAND);
    ngx_conf_merge_msec_value(conf->wait, prev->wait, 3000);
    ngx_conf_merge_uint_value(conf->on_error, prev->on_error,
                              NGX_ICP_GATE_ON_ERROR_DENY);
    ngx_conf_merge_ptr_value(conf->log, prev->log, NULL);
    ngx_conf_merge_msec_value(conf->recheck, prev->recheck, 60000);
}


static ngx_int_t
ngx_icp_gate_lookup(ngx_str_t *domain, ngx_icp_gate_verdict_t *v,
    ngx_icp_gate_waiter_t *w, ngx_msec_t wait)
{
    ngx_int_t               rc;
    ngx_uint_t              flags;
    ngx_icp_gate_flight_t  *f;

    f = ngx_icp_gate_flight_find(domain);

    rc = ngx_icp_gate_cache_lookup(ngx_icp_gate_cache, domain,
                                   f ? 0 : ngx_icp_gate_lock_for(), v, &flags);

    if (rc == NGX_OK) {

        if (flags & NGX_ICP_GATE_CACHE_LOCKED) {
            /* expired: the old verdict answers while it is refreshed */

            if (ngx_icp_gate_flight_create(domain, 1) == NULL) {
                ngx_icp_gate_cache_release(ngx_icp_gate_cache, domain,
                                           NGX_ICP_GATE_RETRY);
            }
        }

        return NGX_OK;
    }

    if (f == NULL) {

        /*
         * without the lock another worker is asking already; when the
         * zone cannot hold even a placeholder, this worker asks alone
         */

        f = ngx_icp_gate_flight_create(domain,
                                       rc == NGX_ERROR
                                       || (flags & NGX_ICP_GATE_CACHE_LOCKED));
        if (f == NULL) {
            if (flags & NGX_ICP_GATE_CACHE_LOCKED) {
                ngx_icp_gate_cache_release(ngx_icp_gate_cache, domain, 0);
            }

            return NGX_ERROR;
        }
    }

    if (w == NULL || wait == 0) {
        return NGX_DECLINED;
    }

    w->rc = NGX_ERROR;
    w->verdict = v;
    w->waiting = 1;
    ngx_queue_insert_tail(&f->waiters, &w->queue);

    w->timer.handler = ngx_icp_gate_waiter_timeout;
    w->timer.data = w;
    ngx_add_timer(&w->timer, wait);

    return NGX_AGAIN;
}


static void
ngx_icp_gate_judge_verdict(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j, ngx_int_t rc)
{
    if (rc != NGX_OK) {
        if (gcf->on_error == NGX_ICP_GATE_ON_ERROR_ALLOW) {
            j->result = NGX_ICP_GATE_RESULT_ALLOW;
            j->reason = NGX_ICP_GATE_REASON_LOOKUP_FAILED;
            return;
        }

        ngx_icp_gate_refuse(gcf, j, NGX_ICP_GATE_REASON_LOOKUP_FAILED);
        return;
    }

    if (j->verdict.region == NGX_ICP_GATE_REGION_OVERSEAS) {
        j->result = NGX_ICP_GATE_RESULT_EXEMPT;
        j->reason = NGX_ICP_GATE_REASON_OVERSEAS;
        return;
    }

    switch (j->verdict.status) {

    case NGX_ICP_GATE_STATUS_FILED:
        j->result = NGX_ICP_GATE_RESULT_ALLOW;
        j->reason = NGX_ICP_GATE_REASON_NONE;
        return;

    case NGX_ICP_GATE_STATUS_PENDING:
        ngx_icp_gate_refuse(gcf, j, NGX_ICP_GATE_REASON_PENDING);
        return;

    case NGX_ICP_GATE_STATUS_REVOKED:
        ngx_icp_gate_refuse(gcf, j, NGX_ICP_GATE_REASON_REVOKED);
        return;

    default:
        ngx_icp_gate_refuse(gcf, j, NGX_ICP_GATE_REASON_UNFILED);
        return;
    }
}


static void
ngx_icp_gate_refuse(ngx_icp_gate_conf_t *gcf, ngx_icp_gate_judgement_t *j,
    ngx_uint_t reason)
{
    j->reason = reason;
    j->result = (gcf->mode == NGX_ICP_GATE_MODE_DRY_RUN)
                ? NGX_ICP_GATE_RESULT_DRY_RUN : NGX_ICP_GATE_RESULT_DENY;
}


static void
ngx_icp_gate_waiter_timeout(ngx_event_t *ev)
{
    ngx_icp_gate_waiter_t  *w = ev->data;

    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "icp_gate: no verdict within icp_gate_wait");

    ngx_queue_remove(&w->queue);
    w->waiting = 0;
    w->rc = NGX_ERROR;

    w->handler(w);
}


static ngx_icp_gate_flight_t *
ngx_icp_gate_flight_find(ngx_str_t *domain)
{
    uint32_t  hash;

    if (ngx_icp_gate_flights.root == ngx_icp_gate_flights.sentinel) {
        return NULL;
    }

    hash = ngx_crc32_long(domain->data, domain->len);

    return (ngx_icp_gate_flight_t *)
               ngx_str_rbtree_lookup(&ngx_icp_gate_flights, domain, hash);
}


static ngx_icp_gate_flight_t *
ngx_icp_gate_flight_create(ngx_str_t *domain, ngx_uint_t owner)
{
    ngx_icp_gate_flight_t  *f;

    f = ngx_calloc(sizeof(ngx_icp_gate_flight_t), ngx_cycle->log);
    if (f == NULL) {
        return NULL;
    }

    ngx_memcpy(f->data, domain->data, domain->len);
    f->sn.str.data = f->data;
    f->sn.str.len = domain->len;
    f->sn.node.key = ngx_crc32_long(domain->data, domain->len);

    ngx_rbtree_insert(&ngx_icp_gate_flights, &f->sn.node);
    ngx_queue_init(&f->waiters);

    f->owner = owner;
    f->started = ngx_current_msec;

    /* the first step runs from the event loop, never inside a lookup */

    f->event.handler = ngx_icp_gate_flight_run;
    f->event.data = f;
    f->event.log = ngx_cycle->log;
    f->event.cancelable = 1;

    ngx_add_timer(&f->event, 0);

    return f;
}


static void
ngx_icp_gate_flight_run(ngx_event_t *ev)
{
    ngx_icp_gate_flight_t  *f = ev->data;

    ngx_int_t               rc;
    ngx_msec_t              delay;
    ngx_uint_t              flags;
    ngx_icp_gate_verdict_t  v;

    if (f->owner) {
        ngx_icp_gate_flight_fetch(f);
        return;
    }

    rc = ngx_icp_gate_cache_lookup(ngx_icp_gate_cache, &f->sn.str,
                                   ngx_icp_gate_lock_for(), &v, &flags);

    if (rc == NGX_OK) {
        if (flags & NGX_ICP_GATE_CACHE_LOCKED) {
            /* expired already: the next lookup refreshes it */
            ngx_icp_gate_cache_release(ngx_icp_gate_cache, &f->sn.str, 0);
        }

        ngx_icp_gate_flight_finish(f, NGX_OK, &v);
        return;
    }

    if (rc == NGX_ERROR || (flags & NGX_ICP_GATE_CACHE_LOCKED)) {
        /* the worker that was asking gave up or died: take over */
        f->owner = 1;
        ngx_icp_gate_flight_fetch(f);
        return;
    }

    if (ngx_queue_empty(&f->waiters)) {
        ngx_icp_gate_flight_finish(f, NGX_ERROR, NULL);
        return;
    }

    delay = (ngx_current_msec - f->started) / 4;
    delay = ngx_max(delay, NGX_ICP_GATE_POLL_MIN);
    delay = ngx_min(delay, NGX_ICP_GATE_POLL_MAX);

    ngx_add_timer(&f->event, delay);
}


static void
ngx_icp_gate_flight_fetch(ngx_icp_gate_flight_t *f)
{
    if (ngx_icp_gate_main->redis.name.len == 0) {
        ngx_icp_gate_flight_ask_api(f, 1);
        return;
    }

    if (ngx_icp_gate_redis_get(&f->sn.str, ngx_icp_gate_flight_redis_done, f)
        != NGX_OK)
    {
        ngx_icp_gate_flight_ask_api(f, 0);
    }
}


static void
ngx_icp_gate_flight_ask_api(ngx_icp_gate_flight_t *f, ngx_uint_t absent)
{
    ngx_icp_gate_verdict_t  v;

    if (ngx_icp_gate_main->api.url.len) {
        if (ngx_icp_gate_api_fetch(&f->sn.str, ngx_icp_gate_flight_api_done, f)
            != NGX_OK)
        {
            ngx_icp_gate_flight_fail(f);
        }

        return;
    }

    if (!absent) {
        ngx_icp_gate_flight_fail(f);
        return;
    }

    /* with no filing API, a domain nobody wrote down is not filed */

    ngx_memzero(&v, sizeof(ngx_icp_gate_verdict_t));
    v.status = NGX_ICP_GATE_STATUS_UNFILED;
    v.checked_at = ngx_time();

    ngx_icp_gate_cache_store(ngx_icp_gate_cache, &f->sn.str, &v,
                             ngx_icp_gate_fresh_for(&v));

    ngx_icp_gate_flight_finish(f, NGX_OK, &v);
}


static void
ngx_icp_gate_flight_redis_done(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v)
{
    ngx_icp_gate_flight_t  *f = data;

    if (ngx_icp_gate_exiting) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_icp_gate_flight_ask_api(f, rc == NGX_DECLINED);
        return;
    }

    ngx_icp_gate_cache_store(ngx_icp_gate_cache, &f->sn.str, v,
                             ngx_icp_gate_fresh_for(v));

    ngx_icp_gate_flight_finish(f, NGX_OK, v);
}


static void
ngx_icp_gate_flight_api_done(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v)
{
    ngx_icp_gate_flight_t  *f = data;

    time_t  ttl;

    if (ngx_icp_gate_exiting) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_icp_gate_flight_fail(f);
        return;
    }

    if (ngx_icp_gate_main->redis.name.len) {
        ttl = (v->status == NGX_ICP_GATE_STATUS_FILED)
              ? ngx_icp_gate_main->ttl : ngx_icp_gate_main->negative_ttl;

        ngx_icp_gate_redis_put(&f->sn.str, v, ttl);
    }

    ngx_icp_gate_cache_store(ngx_icp_gate_cache, &f->sn.str, v,
                             ngx_icp_gate_fresh_for(v));

    ngx_icp_gate_flight_finish(f, NGX_OK, v);
}


static void
ngx_icp_gate_flight_fail(ngx_icp_gate_flight_t *f)
{
    if (f->owner) {
        ngx_icp_gate_cache_release(ngx_icp_gate_cache, &f->sn.str,
                                   NGX_ICP_GATE_RETRY);
    }

    ngx_icp_gate_flight_finish(f, NGX_ERROR, NULL);
}


static void
ngx_icp_gate_flight_finish(ngx_icp_gate_flight_t *f, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v)
{
    ngx_queue_t             waiters, *q;
    ngx_icp_gate_waiter_t  *w;

    /*
     * the flight goes before anyone wakes: a woken request may finish,
     * or look the same domain up again
     */

    ngx_rbtree_delete(&ngx_icp_gate_flights, &f->sn.node);

    ngx_queue_init(&waiters);

    if (!ngx_queue_empty(&f->waiters)) {
        ngx_queue_add(&waiters, &f->waiters);
    }

    if (f->event.timer_set) {
        ngx_del_timer(&f->event);
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

        w->handler(w);
    }
}


static ngx_msec_t
ngx_icp_gate_fresh_for(ngx_icp_gate_verdict_t *v)
{
    ngx_msec_t  fresh;

    fresh = (v->status == NGX_ICP_GATE_STATUS_FILED)
            ? (ngx_msec_t) ngx_icp_gate_main->ttl * 1000
            : (ngx_msec_t) ngx_icp_gate_main->negative_ttl * 1000;

    /* with Redis, the local copy only stands in for the Redis entry */

    if (ngx_icp_gate_main->redis.name.len) {
        fresh = ngx_min(fresh, ngx_icp_gate_main->local_ttl);
    }

    return fresh;
}


static ngx_msec_t
ngx_icp_gate_lock_for(void)
{
    ngx_msec_t  t;

    t = 1000;

    if (ngx_icp_gate_main->redis.name.len) {
        t += ngx_icp_gate_main->redis.timeout;
    }

    if (ngx_icp_gate_main->api.url.len) {
        t += ngx_icp_gate_main->api.timeout;
    }

    return t;
}


static void *
ngx_icp_gate_create_conf(ngx_cycle_t *cycle)
{
    ngx_icp_gate_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cycle->pool, sizeof(ngx_icp_gate_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->zone = NULL;
     *     mcf->redis = { 0 };
     *     mcf->api.url = { 0, NULL };
     *     mcf->api.headers = NULL;
     *     mcf->used = 0;
     */

    mcf->api.timeout = NGX_CONF_UNSET_MSEC;
    mcf->ttl = NGX_CONF_UNSET;
    mcf->negative_ttl = NGX_CONF_UNSET;
    mcf->local_ttl = NGX_CONF_UNSET_MSEC;

    return mcf;
}


static char *
ngx_icp_gate_init_conf(ngx_cycle_t *cycle, void *conf)
{
    ngx_icp_gate_main_conf_t  *mcf = conf;

    ngx_conf_init_msec_value(mcf->api.timeout, 3000);
    ngx_conf_init_value(mcf->ttl, 86400);
    ngx_conf_init_value(mcf->negative_ttl, 1800);
    ngx_conf_init_msec_value(mcf->local_ttl, 60000);

    if (mcf->redis.prefix.data == NULL) {
        ngx_str_set(&mcf->redis.prefix, "icp:");
    }

    if (mcf->ttl <= 0 || mcf->negative_ttl <= 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"icp_gate_ttl\" and \"icp_gate_negative_ttl\" "
                      "must be positive");
        return NGX_CONF_ERROR;
    }

    if (mcf->api.timeout == 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"icp_gate_api_timeout\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (mcf->redis.prefix.len > 128) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"icp_gate_redis_prefix\" is longer than 128 bytes");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_icp_gate_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_icp_gate_main_conf_t  *mcf = conf;

    u_char     *p;
    ssize_t     size;
    ngx_str_t  *value, name, s;

    if (mcf->zone) {
        return mcf->default_zone
               ? "must come before the first \"icp_gate\" directive"
               : "is duplicate";
    }

    value = cf->args->elts;

    p = (u_char *) ngx_strchr(value[1].data, ':');

    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\" in \"icp_gate_zone\", "
                           "expected NAME:SIZE", &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\" in \"icp_gate_zone\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" in \"icp_gate_zone\" is too small",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    mcf->zone = ngx_icp_gate_cache_add(cf, &name, size, &ngx_icp_gate_module);
    if (mcf->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_icp_gate_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_icp_gate_main_conf_t  *mcf = conf;

    if (mcf->redis.name.len) {
        return "is duplicate";
    }

    return ngx_icp_gate_redis_parse(cf, &mcf->redis);
}


static char *
ngx_icp_gate_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_icp_gate_main_conf_t  *mcf = conf;

    ngx_str_t  *value;

    if (mcf->api.url.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strncasecmp(value[1].data, (u_char *) "http://", 7) != 0
        && ngx_strncasecmp(value[1].data, (u_char *) "https://", 8) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"icp_gate_api\", "
                           "expected http:// or https://", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_strstr(value[1].data, "{domain}") == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "URL \"%V\" in \"icp_gate_api\" has no "
                           "\"{domain}\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    mcf->api.url = value[1];

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_icp_gate_use(ngx_conf_t *cf)
{
    ngx_str_t                  name;
    ngx_icp_gate_main_conf_t  *mcf;

    mcf = (ngx_icp_gate_main_conf_t *)
              ngx_get_conf(cf->cycle->conf_ctx, ngx_icp_gate_module);

    mcf->used = 1;

    if (mcf->zone) {
        return NGX_OK;
    }

    ngx_str_set(&name, "icp_gate");

    mcf->zone = ngx_icp_gate_cache_add(cf, &name, 10 * 1024 * 1024,
                                       &ngx_icp_gate_module);
    if (mcf->zone == NULL) {
        return NGX_ERROR;
    }

    mcf->default_zone = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_icp_gate_init_module(ngx_cycle_t *cycle)
{
    ngx_icp_gate_main_conf_t  *mcf;

    mcf = (ngx_icp_gate_main_conf_t *)
              ngx_get_conf(cycle->conf_ctx, ngx_icp_gate_module);

    if (!mcf->used) {
        return NGX_OK;
    }

    /* loaded once in the master, so every worker shares the pages */

    return ngx_icp_gate_domain_init(cycle->log);
}


/*
 * Called from the init_process of the protocol modules: core modules come
 * before the event modules, so the engine's own init_process would run
 * before the worker has connections or timers.
 */

ngx_int_t
ngx_icp_gate_init_worker(ngx_cycle_t *cycle)
{
    ngx_icp_gate_main_conf_t  *mcf;

    /* nor in the cache manager and loader, which never judge */

    if (ngx_icp_gate_main
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return NGX_OK;
    }

    mcf = (ngx_icp_gate_main_conf_t *)
              ngx_get_conf(cycle->conf_ctx, ngx_icp_gate_module);

    if (!mcf->used) {
        return NGX_OK;
    }

    ngx_icp_gate_main = mcf;
    ngx_icp_gate_cache = mcf->zone->data;
    ngx_icp_gate_exiting = 0;

    ngx_rbtree_init(&ngx_icp_gate_flights, &ngx_icp_gate_flights_sentinel,
                    ngx_str_rbtree_insert_value);

    if (mcf->redis.name.len
        && ngx_icp_gate_redis_init(cycle, &mcf->redis) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (mcf->api.url.len
        && ngx_icp_gate_api_init(cycle, &mcf->api) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_icp_gate_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_icp_gate_main == NULL) {
        return;
    }

    /* callbacks that run while connections close must start nothing */

    ngx_icp_gate_exiting = 1;

    if (ngx_icp_gate_main->redis.name.len) {
        ngx_icp_gate_redis_done();
    }

    if (ngx_icp_gate_main->api.url.len) {
        ngx_icp_gate_api_done();
    }
}
