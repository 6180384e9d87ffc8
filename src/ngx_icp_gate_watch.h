
/*
 * Copyright (C) icp_gate authors
 *
 * Domains whose verdict changed in Redis: the node's invalidation channel
 * in, every worker's watchers (live sessions to check again) out.
 */


#ifndef _NGX_ICP_GATE_WATCH_H_INCLUDED_
#define _NGX_ICP_GATE_WATCH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_lookup.h"


/* domain NULL: any domain may have changed */
typedef void (*ngx_icp_gate_watch_pt)(ngx_str_t *domain);


ngx_int_t ngx_icp_gate_watch_init(ngx_cycle_t *cycle,
    ngx_icp_gate_lookup_conf_t *lcf);
void ngx_icp_gate_watch_done(void);
ngx_int_t ngx_icp_gate_watch_add(ngx_icp_gate_watch_pt handler);


#endif /* _NGX_ICP_GATE_WATCH_H_INCLUDED_ */
