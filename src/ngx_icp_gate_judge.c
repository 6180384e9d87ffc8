
/*
 * Copyright (C) icp_gate authors
 *
 * From a host to an outcome: the host's registrable domain, the block's
 * region, then the domain's verdict, waited for when none is known yet.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_judge.h"
#include "ngx_icp_gate_domain.h"


static ngx_int_t ngx_icp_gate_judge_wait(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j, ngx_pool_t *pool);
static void ngx_icp_gate_judge_verdict(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j, ngx_int_t rc);
static void ngx_icp_gate_refuse(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j, ngx_uint_t reason);


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


/* the reason a host is refused for before any lookup, by what it is */

static ngx_uint_t  ngx_icp_gate_host_reasons[] = {
    NGX_ICP_GATE_REASON_NONE,              /* NGX_ICP_GATE_HOST_VALID */
    NGX_ICP_GATE_REASON_NO_HOST,           /* NGX_ICP_GATE_HOST_MISSING */
    NGX_ICP_GATE_REASON_IP_LITERAL,        /* NGX_ICP_GATE_HOST_IP_LITERAL */
    NGX_ICP_GATE_REASON_INVALID_HOST       /* NGX_ICP_GATE_HOST_INVALID */
};


/*
 * NGX_OK: j->result holds the outcome, or, under dry_run, is still
 * NGX_ICP_GATE_RESULT_NONE while the verdict is looked up; NGX_AGAIN: the
 * waiter's handler runs once it is in (or icp_gate_wait ran out), until
 * ngx_icp_gate_judge_cancel()
 */

ngx_int_t
ngx_icp_gate_judge(ngx_icp_gate_conf_t *gcf, ngx_icp_gate_judgement_t *j,
    ngx_pool_t *pool)
{
    ngx_int_t   rc;
    ngx_uint_t  kind;

    kind = ngx_icp_gate_domain_registrable(pool, &j->host, &j->domain,
                                           &j->hash);

    /* a block that serves only overseas audiences needs no filing at all */

    if (gcf->region == NGX_ICP_GATE_REGION_OVERSEAS) {
        j->result = NGX_ICP_GATE_RESULT_EXEMPT;
        j->reason = NGX_ICP_GATE_REASON_OVERSEAS;
        return NGX_OK;
    }

    if (kind != NGX_ICP_GATE_HOST_VALID) {
        ngx_icp_gate_refuse(gcf, j, ngx_icp_gate_host_reasons[kind]);
        return NGX_OK;
    }

    rc = ngx_icp_gate_lookup(&j->domain, j->hash, &j->verdict);

    /* a hit tests rc once */

    if (rc != NGX_OK) {

        if (rc == NGX_AGAIN) {

            /*
             * a verdict too stale to answer alone: its refresh is waited for,
             * except where nothing may wait, which the stale verdict answers
             */

            if (gcf->wait && gcf->mode != NGX_ICP_GATE_MODE_DRY_RUN
                && ngx_icp_gate_judge_wait(gcf, j, pool) == NGX_OK)
            {
                return NGX_AGAIN;
            }

            rc = NGX_OK;

        } else if (rc == NGX_DECLINED && gcf->wait) {

            /*
             * a rollout never holds anyone: the outcome stays open, and the
             * would-be refusal is logged once the verdict is in
             */

            if (gcf->mode == NGX_ICP_GATE_MODE_DRY_RUN) {
                return NGX_OK;
            }

            if (ngx_icp_gate_judge_wait(gcf, j, pool) == NGX_OK) {
                return NGX_AGAIN;
            }
        }
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
    ngx_int_t               rc;
    ngx_icp_gate_verdict_t  v;

    if (gcf->region == NGX_ICP_GATE_REGION_OVERSEAS) {
        return NGX_DECLINED;
    }

    /*
     * NGX_AGAIN: the newest verdict the zone has, its refresh under way;
     * a session that ignored it would never see one a refresh brought
     */

    if (j->domain.len == 0) {
        return NGX_DECLINED;
    }

    rc = ngx_icp_gate_lookup(&j->domain, j->hash, &v);

    if (rc != NGX_OK && rc != NGX_AGAIN) {
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
    ngx_icp_gate_judge_verdict(gcf, j, j->waiter->rc);
}


/* a cached host never waits: the waiter comes from the pool when needed */

static ngx_int_t
ngx_icp_gate_judge_wait(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j, ngx_pool_t *pool)
{
    ngx_icp_gate_waiter_t  *w;

    w = j->waiter;

    if (w == NULL) {
        w = ngx_pcalloc(pool, sizeof(ngx_icp_gate_waiter_t));
        if (w == NULL) {
            return NGX_ERROR;
        }

        w->handler = j->handler;
        w->data = j->data;
        w->verdict = &j->verdict;
        w->timer.log = pool->log;

        j->waiter = w;
    }

    return ngx_icp_gate_lookup_wait(&j->domain, j->hash, w, gcf->wait);
}


static void
ngx_icp_gate_judge_verdict(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j, ngx_int_t rc)
{
    if (rc != NGX_OK) {
        /* what a lookup that failed left there is no filing number */
        j->verdict.icp_len = 0;

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

    /* the verdict of almost every request, asked first */

    if (j->verdict.status == NGX_ICP_GATE_STATUS_FILED) {
        j->result = NGX_ICP_GATE_RESULT_ALLOW;
        j->reason = NGX_ICP_GATE_REASON_NONE;
        return;
    }

    switch (j->verdict.status) {

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
