
/*
 * Copyright (C) icp_gate authors
 */


#ifndef _NGX_ICP_GATE_DOMAIN_H_INCLUDED_
#define _NGX_ICP_GATE_DOMAIN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* what ngx_icp_gate_domain_registrable() makes of a host */
#define NGX_ICP_GATE_HOST_VALID        0
#define NGX_ICP_GATE_HOST_MISSING      1
#define NGX_ICP_GATE_HOST_IP_LITERAL   2
#define NGX_ICP_GATE_HOST_INVALID      3


ngx_int_t ngx_icp_gate_domain_init(ngx_log_t *log);
void ngx_icp_gate_domain_forget(void);
ngx_uint_t ngx_icp_gate_domain_registrable(ngx_pool_t *pool, ngx_str_t *host,
    ngx_str_t *domain, uint32_t *domain_hash);
ngx_int_t ngx_icp_gate_domain_from_url(ngx_str_t *url, ngx_str_t *host);


#endif /* _NGX_ICP_GATE_DOMAIN_H_INCLUDED_ */
