
/*
 * Copyright (C) icp_gate authors
 *
 * The judgement of a host under a gate's configuration: what a protocol
 * module asks of the engine, and the outcome it acts on.
 */


#ifndef _NGX_ICP_GATE_JUDGE_H_INCLUDED_
#define _NGX_ICP_GATE_JUDGE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_verdict.h"
#include "ngx_icp_gate_lookup.h"


/* icp_gate off | on | dry_run */
#define NGX_ICP_GATE_MODE_OFF          0
#define NGX_ICP_GATE_MODE_ON           1
#define NGX_ICP_GATE_MODE_DRY_RUN      2

#define NGX_ICP_GATE_ON_ERROR_DENY     0
#define NGX_ICP_GATE_ON_ERROR_ALLOW    1


/* what a gate block asks of a judgement: its gate directives */

typedef struct {
    ngx_uint_t                  mode;
    ngx_uint_t                  region;
    ngx_msec_t                  wait;
    ngx_uint_t                  on_error;
    ngx_open_file_t            *log;
} ngx_icp_gate_conf_t;


typedef struct {
    ngx_str_t                   host;
    ngx_str_t                   domain;
    uint32_t                    hash;       /* of the domain */
    ngx_uint_t                  result;
    ngx_uint_t                  reason;
    ngx_icp_gate_verdict_t      verdict;

    /* who is told once a held judgement has its verdict */
    ngx_icp_gate_waiter_pt      handler;
    void                       *data;
    ngx_icp_gate_waiter_t      *waiter;     /* allocated on the first wait */
} ngx_icp_gate_judgement_t;


#define ngx_icp_gate_judge_held(j)  ((j)->waiter && (j)->waiter->waiting)

/* dry_run let it through before its verdict was known */
#define ngx_icp_gate_judge_open(j)  ((j)->result == NGX_ICP_GATE_RESULT_NONE)


extern ngx_str_t  ngx_icp_gate_result_names[];
extern ngx_str_t  ngx_icp_gate_reason_names[];


/*
 * No outcome: before the first judgement, and before the host is judged
 * again under another block's gate (an HTTP request after an internal
 * redirect), which keeps the waiter, idle since its verdict came
 */

static ngx_inline void
ngx_icp_gate_judgement_reset(ngx_icp_gate_judgement_t *j)
{
    ngx_str_null(&j->domain);
    j->result = NGX_ICP_GATE_RESULT_NONE;
    j->reason = NGX_ICP_GATE_REASON_NONE;
    j->verdict.icp_len = 0;
}


/*
 * host: as the client sent it, NULL data when it sent none; handler(data)
 * is told when a judgement held for a verdict has it
 */

static ngx_inline void
ngx_icp_gate_judgement_init(ngx_icp_gate_judgement_t *j, ngx_str_t *host,
    ngx_icp_gate_waiter_pt handler, void *data)
{
    j->host = *host;

    if (j->host.data == NULL) {
        ngx_str_set(&j->host, "");
    }

    ngx_icp_gate_judgement_reset(j);
    j->handler = handler;
    j->data = data;
    j->waiter = NULL;
}


/* every request's cleanup, held or not: inline */

static ngx_inline void
ngx_icp_gate_judge_cancel(ngx_icp_gate_judgement_t *j)
{
    if (j->waiter) {
        ngx_icp_gate_lookup_cancel(j->waiter);
    }
}


ngx_int_t ngx_icp_gate_judge(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j, ngx_pool_t *pool);
ngx_int_t ngx_icp_gate_judge_again(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j);
void ngx_icp_gate_judge_resume(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j);


#endif /* _NGX_ICP_GATE_JUDGE_H_INCLUDED_ */
