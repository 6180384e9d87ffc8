
/*
 * Copyright (C) icp_gate authors
 *
 * The HTTP gate: judges the host of every main request in the preaccess
 * phase, which "satisfy any" cannot skip, and refuses through nginx's
 * error pages.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_icp_gate_module.h"
#include "ngx_icp_gate_module.h"
#include "ngx_icp_gate_conf.h"
#include "ngx_icp_gate_judge.h"
#include "ngx_icp_gate_log.h"
#include "ngx_icp_gate_metrics.h"


typedef struct {
    ngx_icp_gate_conf_t         gate;
    ngx_uint_t                  status;
} ngx_http_icp_gate_loc_conf_t;


typedef struct {
    ngx_icp_gate_judgement_t    judgement;
    ngx_http_request_t         *request;
    ngx_icp_gate_conf_t        *judged_by;  /* NULL: no outcome yet */
} ngx_http_icp_gate_ctx_t;


static ngx_int_t ngx_http_icp_gate_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_http_icp_gate_stands(ngx_http_icp_gate_ctx_t *ctx,
    ngx_http_icp_gate_loc_conf_t *lcf);
static ngx_inline ngx_int_t ngx_http_icp_gate_act(ngx_http_request_t *r,
    ngx_http_icp_gate_ctx_t *ctx, ngx_http_icp_gate_loc_conf_t *lcf);
static ngx_int_t ngx_http_icp_gate_refuse(ngx_http_request_t *r,
    ngx_http_icp_gate_ctx_t *ctx, ngx_http_icp_gate_loc_conf_t *lcf);
static void ngx_http_icp_gate_log(ngx_http_request_t *r,
    ngx_http_icp_gate_ctx_t *ctx, ngx_http_icp_gate_loc_conf_t *lcf);
static void ngx_http_icp_gate_wake(ngx_icp_gate_waiter_t *w);
static void ngx_http_icp_gate_cleanup(void *data);
static ngx_inline ngx_http_icp_gate_ctx_t *ngx_http_icp_gate_create_ctx(
    ngx_http_request_t *r);
static ngx_inline ngx_http_icp_gate_ctx_t *ngx_http_icp_gate_get_ctx(
    ngx_http_request_t *r);
static ngx_http_icp_gate_ctx_t *ngx_http_icp_gate_find_ctx(
    ngx_http_request_t *r);

static ngx_int_t ngx_http_icp_gate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_icp_gate_add_variables(ngx_conf_t *cf);
static void *ngx_http_icp_gate_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_icp_gate_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_icp_gate_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_icp_gate_init(ngx_conf_t *cf);


#define NGX_HTTP_ICP_GATE_VAR_RESULT   0
#define NGX_HTTP_ICP_GATE_VAR_DOMAIN   1
#define NGX_HTTP_ICP_GATE_VAR_REASON   2
#define NGX_HTTP_ICP_GATE_VAR_ICP      3


static ngx_command_t  ngx_http_icp_gate_commands[] = {

    NGX_ICP_GATE_COMMANDS(
        NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF,
        NGX_HTTP_LOC_CONF_OFFSET, ngx_http_icp_gate_loc_conf_t),

    { ngx_string("icp_gate_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_icp_gate_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_icp_gate_loc_conf_t, status),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_icp_gate_module_ctx = {
    ngx_http_icp_gate_add_variables,       /* preconfiguration */
    ngx_http_icp_gate_init,                /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_icp_gate_create_loc_conf,     /* create location configuration */
    ngx_http_icp_gate_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_icp_gate_module = {
    NGX_MODULE_V1,
    &ngx_http_icp_gate_module_ctx,         /* module context */
    ngx_http_icp_gate_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_icp_gate_init_worker,              /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_icp_gate_vars[] = {

    { ngx_string("icp_gate_result"), NULL, ngx_http_icp_gate_variable,
      NGX_HTTP_ICP_GATE_VAR_RESULT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("icp_gate_domain"), NULL, ngx_http_icp_gate_variable,
      NGX_HTTP_ICP_GATE_VAR_DOMAIN, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("icp_gate_reason"), NULL, ngx_http_icp_gate_variable,
      NGX_HTTP_ICP_GATE_VAR_REASON, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("icp_gate_icp"), NULL, ngx_http_icp_gate_variable,
      NGX_HTTP_ICP_GATE_VAR_ICP, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_icp_gate_handler(ngx_http_request_t *r)
{
    ngx_http_icp_gate_ctx_t       *ctx;
    ngx_http_icp_gate_loc_conf_t  *lcf;

    if (r->main != r) {
        return NGX_DECLINED;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_icp_gate_module);

    ctx = ngx_http_icp_gate_get_ctx(r);

    if (ctx == NULL) {
        if (lcf->gate.mode == NGX_ICP_GATE_MODE_OFF) {
            return NGX_DECLINED;
        }

        ctx = ngx_http_icp_gate_create_ctx(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else if (ngx_icp_gate_judge_held(&ctx->judgement)) {
        return NGX_AGAIN;

    } else if (ctx->judged_by == NULL) {
        /* woken with a verdict */
        return ngx_http_icp_gate_act(r, ctx, lcf);

    } else if (ngx_http_icp_gate_stands(ctx, lcf)) {

        /*
         * judged before an internal redirect: a refused request stays
         * refused, but its error page goes through
         */

        if (ctx->judgement.result == NGX_ICP_GATE_RESULT_DENY
            && !r->error_page)
        {
            return lcf->status;
        }

        return NGX_DECLINED;

    } else {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "icp_gate: \"%V\" judged again after a redirect, "
                       "was %V", &ctx->judgement.host,
                       &ngx_icp_gate_result_names[ctx->judgement.result]);

        ctx->judged_by = NULL;
        ngx_icp_gate_judgement_reset(&ctx->judgement);
    }

    if (ngx_icp_gate_judge(&lcf->gate, &ctx->judgement, r->pool)
        == NGX_AGAIN)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "icp_gate: request held for \"%V\"",
                       &ctx->judgement.domain);

        /* notice a client that leaves while its domain is looked up */
        r->read_event_handler = ngx_http_test_reading;
        r->write_event_handler = ngx_http_request_empty_handler;

        return NGX_AGAIN;
    }

    return ngx_http_icp_gate_act(r, ctx, lcf);
}


/*
 * After an internal redirect (try_files, error_page, X-Accel-Redirect, a
 * named location, with any "rewrite ... last" on the way) the request
 * enters a location whose gate may be stricter than the one that judged
 * it.  A refusal stands everywhere, and so does any outcome where the new
 * location has no gate, or one set as the judging one was in everything
 * that decides an outcome (icp_gate, icp_gate_region, icp_gate_wait,
 * icp_gate_on_error; icp_gate_status and icp_gate_log only say how).
 * Anything else, an exemption, a dry_run, a verdict not in yet, a failed
 * lookup let through, is judged again under the new settings.
 */

static ngx_uint_t
ngx_http_icp_gate_stands(ngx_http_icp_gate_ctx_t *ctx,
    ngx_http_icp_gate_loc_conf_t *lcf)
{
    ngx_icp_gate_conf_t  *was, *now;

    was = ctx->judged_by;
    now = &lcf->gate;

    return ctx->judgement.result == NGX_ICP_GATE_RESULT_DENY
           || now->mode == NGX_ICP_GATE_MODE_OFF
           || (now->mode == was->mode
               && now->region == was->region
               && now->wait == was->wait
               && now->on_error == was->on_error);
}


/* inline: a request let through costs one branch past its count */

static ngx_inline ngx_int_t
ngx_http_icp_gate_act(ngx_http_request_t *r, ngx_http_icp_gate_ctx_t *ctx,
    ngx_http_icp_gate_loc_conf_t *lcf)
{
    ctx->judged_by = &lcf->gate;

    ngx_icp_gate_count(decisions[NGX_ICP_GATE_PROTO_HTTP]
                                [ctx->judgement.result]
                                [ctx->judgement.reason]);

    if (ctx->judgement.result == NGX_ICP_GATE_RESULT_ALLOW
        || ctx->judgement.result == NGX_ICP_GATE_RESULT_EXEMPT)
    {
        return NGX_DECLINED;
    }

    return ngx_http_icp_gate_refuse(r, ctx, lcf);
}


/* a refusal, or under dry_run one that would have been */

static ngx_int_t
ngx_http_icp_gate_refuse(ngx_http_request_t *r, ngx_http_icp_gate_ctx_t *ctx,
    ngx_http_icp_gate_loc_conf_t *lcf)
{
    if (ctx->judgement.result == NGX_ICP_GATE_RESULT_DENY) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "icp_gate: refused host \"%V\": %V",
                      &ctx->judgement.host,
                      &ngx_icp_gate_reason_names[ctx->judgement.reason]);

        ngx_http_icp_gate_log(r, ctx, lcf);

        return lcf->status;
    }

    /* dry_run, and dry_run before its verdict (NGX_ICP_GATE_RESULT_NONE) */

    ngx_http_icp_gate_log(r, ctx, lcf);

    return NGX_DECLINED;
}


static void
ngx_http_icp_gate_log(ngx_http_request_t *r, ngx_http_icp_gate_ctx_t *ctx,
    ngx_http_icp_gate_loc_conf_t *lcf)
{
    ngx_icp_gate_log_entry_t   entry;
    ngx_icp_gate_log_field_t   fields[3];

    if (lcf->gate.log == NULL) {
        return;
    }

    ngx_str_set(&entry.proto, "http");
    ngx_str_set(&entry.action, "request");
    entry.client = r->connection->addr_text;
    entry.fields = fields;
    entry.nfields = 3;

    ngx_str_set(&fields[0].name, "method");
    fields[0].value = r->method_name;

    /* the path only: query strings of live URLs carry signing secrets */

    ngx_str_set(&fields[1].name, "uri");
    fields[1].value = r->uri;

    ngx_str_set(&fields[2].name, "status");
    fields[2].value.data = NULL;
    fields[2].value.len = 0;
    fields[2].number = lcf->status;

    ngx_icp_gate_log_refusal(&lcf->gate, &ctx->judgement, &entry, r->pool,
                             r->connection->log);
}


/*
 * The RTMP gate refuses HTTP-FLV plays (nginx-http-flv-module) as HTTP
 * requests, with the status of their location.
 */

ngx_uint_t
ngx_http_icp_gate_refusal_status(ngx_http_request_t *r)
{
    ngx_http_icp_gate_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_icp_gate_module);

    return lcf->status;
}


/*
 * The RTMP gate refused an HTTP-FLV play of this request: the refusal is
 * kept here as the HTTP gate keeps its own, so that the error page the
 * request is answered through is served, not judged and logged again by a
 * gated location it is in.
 */

ngx_int_t
ngx_http_icp_gate_keep_refusal(ngx_http_request_t *r,
    ngx_icp_gate_judgement_t *j)
{
    ngx_http_icp_gate_ctx_t       *ctx;
    ngx_http_icp_gate_loc_conf_t  *lcf;

    ctx = ngx_http_icp_gate_get_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_http_icp_gate_create_ctx(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_icp_gate_module);

    /* the domain is in the connection's pool, which outlives the request */

    ctx->judgement.domain = j->domain;
    ctx->judgement.hash = j->hash;
    ctx->judgement.result = j->result;
    ctx->judgement.reason = j->reason;
    ctx->judgement.verdict = j->verdict;
    ctx->judged_by = &lcf->gate;

    return NGX_OK;
}


static void
ngx_http_icp_gate_wake(ngx_icp_gate_waiter_t *w)
{
    ngx_connection_t              *c;
    ngx_http_request_t            *r;
    ngx_http_icp_gate_ctx_t       *ctx;
    ngx_http_icp_gate_loc_conf_t  *lcf;

    ctx = w->data;
    r = ctx->request;
    c = r->connection;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_icp_gate_module);

    ngx_icp_gate_judge_resume(&lcf->gate, &ctx->judgement);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "icp_gate: request woken for \"%V\": %V",
                   &ctx->judgement.domain,
                   &ngx_icp_gate_result_names[ctx->judgement.result]);

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_icp_gate_cleanup(void *data)
{
    ngx_http_icp_gate_ctx_t  *ctx = data;

    ngx_icp_gate_judge_cancel(&ctx->judgement);
}


/*
 * The context is the data of a pool cleanup, which cancels a wait and is
 * how the context is found again after an internal redirect.  What
 * ngx_pool_cleanup_add() does, in one allocation instead of two: every
 * request of a gated location comes this way, inline.
 */

static ngx_inline ngx_http_icp_gate_ctx_t *
ngx_http_icp_gate_create_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_icp_gate_ctx_t  *ctx;

    cln = ngx_palloc(r->pool, sizeof(ngx_pool_cleanup_t)
                              + sizeof(ngx_http_icp_gate_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = (ngx_http_icp_gate_ctx_t *) (cln + 1);
    ctx->request = r;
    ctx->judged_by = NULL;

    cln->handler = ngx_http_icp_gate_cleanup;
    cln->data = ctx;
    cln->next = r->pool->cleanup;
    r->pool->cleanup = cln;

    ngx_http_set_ctx(r, ctx, ngx_http_icp_gate_module);

    ngx_icp_gate_judgement_init(&ctx->judgement, &r->headers_in.server,
                                ngx_http_icp_gate_wake, ctx);

    return ctx;
}


static ngx_inline ngx_http_icp_gate_ctx_t *
ngx_http_icp_gate_get_ctx(ngx_http_request_t *r)
{
    ngx_http_icp_gate_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_icp_gate_module);

    if (ctx == NULL && (r->internal || r->filter_finalize)) {
        ctx = ngx_http_icp_gate_find_ctx(r);
    }

    return ctx;
}


/* an internal redirect resets module contexts; the cleanup stays */

static ngx_http_icp_gate_ctx_t *
ngx_http_icp_gate_find_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_icp_gate_ctx_t  *ctx;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_icp_gate_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_icp_gate_module);
            return ctx;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_icp_gate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                 *s;
    ngx_http_icp_gate_ctx_t   *ctx;
    ngx_icp_gate_judgement_t  *j;

    ctx = ngx_http_icp_gate_get_ctx(r->main);

    if (ctx == NULL || ctx->judged_by == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    j = &ctx->judgement;

    switch (data) {

    case NGX_HTTP_ICP_GATE_VAR_RESULT:
        s = &ngx_icp_gate_result_names[j->result];
        break;

    case NGX_HTTP_ICP_GATE_VAR_DOMAIN:
        s = &j->domain;
        break;

    case NGX_HTTP_ICP_GATE_VAR_REASON:
        s = &ngx_icp_gate_reason_names[j->reason];
        break;

    default: /* NGX_HTTP_ICP_GATE_VAR_ICP */
        v->len = j->verdict.icp_len;
        v->data = j->verdict.icp;
        goto found;
    }

    v->len = s->len;
    v->data = s->data;

found:

    if (v->len == 0) {
        /* nginx copies variables with memcpy(): never hand it NULL */
        v->data = (u_char *) "";
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_icp_gate_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_icp_gate_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void *
ngx_http_icp_gate_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_icp_gate_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_icp_gate_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    ngx_icp_gate_conf_init(&conf->gate);
    conf->status = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_icp_gate_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_icp_gate_loc_conf_t  *prev = parent;
    ngx_http_icp_gate_loc_conf_t  *conf = child;

    ngx_icp_gate_conf_merge(&conf->gate, &prev->gate);
    ngx_conf_merge_uint_value(conf->status, prev->status, NGX_HTTP_FORBIDDEN);

    return NGX_CONF_OK;
}


static char *
ngx_http_icp_gate_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_icp_gate_loc_conf_t  *lcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (lcf->status != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);

    if (n < 400 || n > 599) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid status \"%V\" in \"icp_gate_status\", "
                           "expected 400 to 599", &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->status = n;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_icp_gate_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_icp_gate_handler;

    return NGX_OK;
}
