
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


/* the arguments of a script on a domain's keys, and room for numbers */
#define NGX_ICP_GATE_REDIS_ARGS  24

typedef struct {
    const char                 *argv[NGX_ICP_GATE_REDIS_ARGS];
    size_t                      argvlen[NGX_ICP_GATE_REDIS_ARGS];
    ngx_uint_t                  argc;
    u_char                     *next;
    u_char                      key[NGX_ICP_GATE_REDIS_KEY_LEN];
    u_char                      lock[NGX_ICP_GATE_REDIS_KEY_LEN];
    u_char                      purged[NGX_ICP_GATE_REDIS_KEY_LEN];
    u_char                      owner[NGX_ICP_GATE_REDIS_OWNER_LEN];
    u_char                      numbers[4 * NGX_INT64_LEN];
} ngx_icp_gate_redis_argv_t;


void ngx_icp_gate_redis_store_init(void);
void ngx_icp_gate_redis_store_done(void);
void ngx_icp_gate_redis_script(ngx_icp_gate_redis_argv_t *a,
    const char *script, size_t len, ngx_str_t *domain);
void ngx_icp_gate_redis_arg(ngx_icp_gate_redis_argv_t *a, const char *data,
    size_t len, uint64_t n);
ngx_int_t ngx_icp_gate_redis_parse_hash(redisReply *reply,
    ngx_icp_gate_verdict_t *v);
uint64_t ngx_icp_gate_redis_parse_timed(redisReply *reply,
    redisReply **what);


#endif /* _NGX_ICP_GATE_REDIS_STORE_H_INCLUDED_ */
