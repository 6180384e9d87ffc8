
/*
 * Copyright (C) icp_gate authors
 */


#ifndef _NGX_ICP_GATE_API_H_INCLUDED_
#define _NGX_ICP_GATE_API_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_verdict.h"
#include "ngx_icp_gate_api_map.h"


#define NGX_ICP_GATE_API_GET       0
#define NGX_ICP_GATE_API_POST      1


typedef struct {
    ngx_str_t                   url;        /* "{domain}" in it or body */
    ngx_uint_t                  method;
    ngx_str_t                   body;       /* POST's, "{domain}" in it */
    ngx_array_t                *headers;    /* of ngx_keyval_t */
    ngx_msec_t                  timeout;
    ngx_int_t                   concurrency;    /* transfers at once */
    ngx_icp_gate_api_map_t      map;        /* how answers read */
} ngx_icp_gate_api_conf_t;


/* lookups that wait for a transfer, per transfer a worker runs at once */
#define NGX_ICP_GATE_API_QUEUE     16


/*
 * rc: NGX_OK with *v; NGX_ERROR: the API failed (it answered no verdict,
 * or stopped answering once connected), nothing may be cached from it;
 * NGX_DECLINED: this node could not ask it (a name, a connection, TLS, its
 * credentials refused, or the request not started), which says nothing of
 * the API to the fleet; NGX_BUSY: never sent, it waited its whole timeout
 * in the queue
 */
typedef void (*ngx_icp_gate_api_pt)(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v);


ngx_int_t ngx_icp_gate_api_init(ngx_cycle_t *cycle,
    ngx_icp_gate_api_conf_t *acf);
void ngx_icp_gate_api_done(void);
ngx_int_t ngx_icp_gate_api_fetch(ngx_str_t *domain,
    ngx_icp_gate_api_pt handler, void *data);


#endif /* _NGX_ICP_GATE_API_H_INCLUDED_ */
