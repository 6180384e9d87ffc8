
/*
 * Copyright (C) icp_gate authors
 *
 * The node's invalidation channel, for the adapter's start and end.
 */


#ifndef _NGX_ICP_GATE_REDIS_CHANNEL_H_INCLUDED_
#define _NGX_ICP_GATE_REDIS_CHANNEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_redis_conn.h"


void ngx_icp_gate_redis_channel_init(ngx_cycle_t *cycle);
void ngx_icp_gate_redis_channel_done(void);


#endif /* _NGX_ICP_GATE_REDIS_CHANNEL_H_INCLUDED_ */
