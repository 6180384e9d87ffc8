
/*
 * Copyright (C) icp_gate authors
 *
 * What the protocol modules need of the engine's core module.
 */


#ifndef _NGX_ICP_GATE_MODULE_H_INCLUDED_
#define _NGX_ICP_GATE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


extern ngx_module_t  ngx_icp_gate_module;


ngx_int_t ngx_icp_gate_use(ngx_conf_t *cf);
ngx_int_t ngx_icp_gate_init_worker(ngx_cycle_t *cycle);


#endif /* _NGX_ICP_GATE_MODULE_H_INCLUDED_ */
