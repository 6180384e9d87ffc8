
/*
 * Copyright (C) icp_gate authors
 *
 * The verdicts in Redis, for the adapter's other parts: the hash's format,
 * the store's start and end in a worker.
 */


#ifndef _NGX_ICP_GATE_REDIS_STORE_H_INCLUDED_
#define _NGX_ICP_GATE_REDIS_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_redis_conn.h"


void ngx_icp_gate_redis_store_init(void);
void ngx_icp_gate_redis_store_done(void);
ngx_int_t ngx_icp_gate_redis_parse_hash(redisReply *reply,
    ngx_icp_gate_verdict_t *v);


#endif /* _NGX_ICP_GATE_REDIS_STORE_H_INCLUDED_ */
