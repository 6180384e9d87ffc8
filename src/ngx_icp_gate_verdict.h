
/*
 * Copyright (C) icp_gate authors
 *
 * The vocabulary every layer shares: a filing verdict, the names Redis and
 * the filing API give its status and region, and the hash domains are
 * kept under.  It depends on nothing of icp_gate.
 */


#ifndef _NGX_ICP_GATE_VERDICT_H_INCLUDED_
#define _NGX_ICP_GATE_VERDICT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_ICP_GATE_DOMAIN_LEN     253
#define NGX_ICP_GATE_ICP_LEN        96


/* filing status, as the filing API and Redis spell it */
#define NGX_ICP_GATE_STATUS_NONE       0
#define NGX_ICP_GATE_STATUS_FILED      1
#define NGX_ICP_GATE_STATUS_PENDING    2
#define NGX_ICP_GATE_STATUS_REVOKED    3
#define NGX_ICP_GATE_STATUS_UNFILED    4

#define NGX_ICP_GATE_REGION_NONE       0
#define NGX_ICP_GATE_REGION_MAINLAND   1
#define NGX_ICP_GATE_REGION_GLOBAL     2
#define NGX_ICP_GATE_REGION_OVERSEAS   3


typedef struct {
    ngx_uint_t                  status;
    ngx_uint_t                  region;
    time_t                      checked_at;
    size_t                      icp_len;
    u_char                      icp[NGX_ICP_GATE_ICP_LEN];
} ngx_icp_gate_verdict_t;


extern ngx_str_t  ngx_icp_gate_status_names[];
extern ngx_str_t  ngx_icp_gate_region_names[];


ngx_uint_t ngx_icp_gate_verdict_name(ngx_str_t *names, u_char *data,
    size_t len);
void ngx_icp_gate_verdict_set_icp(ngx_icp_gate_verdict_t *v, u_char *data,
    size_t len);


#endif /* _NGX_ICP_GATE_VERDICT_H_INCLUDED_ */
