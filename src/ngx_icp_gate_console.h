
/*
 * Copyright (C) icp_gate authors
 *
 * What an operator asks of a node: its metrics, and what it thinks of a
 * domain (and, told to, forgets it).  The HTTP module serves them.
 */


#ifndef _NGX_ICP_GATE_CONSOLE_H_INCLUDED_
#define _NGX_ICP_GATE_CONSOLE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct ngx_icp_gate_console_s  ngx_icp_gate_console_t;

/* status: of the HTTP answer (200, 400, 502); b NULL: none could be made */
typedef void (*ngx_icp_gate_console_pt)(void *data, ngx_uint_t status,
    ngx_buf_t *b);


typedef struct {
    ngx_str_t                   host;       /* as the operator wrote it */
    unsigned                    probe:1;    /* ask the filing API too */
    unsigned                    purge:1;
    unsigned                    redis:1;    /* purge the Redis hash too */
} ngx_icp_gate_console_ask_t;


ngx_buf_t *ngx_icp_gate_console_metrics(ngx_pool_t *pool, ngx_uint_t json);

ngx_int_t ngx_icp_gate_console_domain(ngx_icp_gate_console_ask_t *ask,
    ngx_pool_t *pool, ngx_log_t *log, ngx_icp_gate_console_pt handler,
    void *data, ngx_icp_gate_console_t **console);
void ngx_icp_gate_console_cancel(ngx_icp_gate_console_t *console);


#endif /* _NGX_ICP_GATE_CONSOLE_H_INCLUDED_ */
