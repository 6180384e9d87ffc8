
/*
 * Copyright (C) icp_gate authors
 *
 * A hiredis async context driven by the nginx event loop: its socket
 * wrapped in an nginx connection, its read and write wishes as level-
 * triggered events.  hiredis owns and closes the socket.
 *
 * Every reply is checked as hiredis reads it, before any of hiredis's own
 * logic sees it: one too large to hold, one that answers no command, and a
 * pub/sub message of a shape hiredis 0.14 asserts on (or, in 1.x, reads as
 * if it were well formed) close the connection instead, as a protocol
 * error would.
 */


#ifndef _NGX_ICP_GATE_HIREDIS_H_INCLUDED_
#define _NGX_ICP_GATE_HIREDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>


/*
 * The biggest replies a server may send: one array (an invalidation of
 * every key one command changed is the longest of ours), one string (a
 * verdict's field, a key, a sentinel's message: a few hundred bytes), one
 * reply as held in memory, its objects, pointers and strings together
 */
#define NGX_ICP_GATE_HIREDIS_ELEMENTS_MAX  131072
#define NGX_ICP_GATE_HIREDIS_STRING_MAX    (1024 * 1024)
#define NGX_ICP_GATE_HIREDIS_REPLY_MAX     (16 * 1024 * 1024)

/* a malformed reply is logged when none was in this long before (ms) */
#define NGX_ICP_GATE_HIREDIS_EPISODE       60000


/* argument n of a command's argv: a string literal, or a macro of one */
#define ngx_icp_gate_hiredis_arg(argv, argvlen, n, text)                \
    (argv)[n] = text; (argvlen)[n] = sizeof(text) - 1


/* the malformed replies of one kind of connection, to be logged once */
typedef struct {
    ngx_msec_t                  last;
    unsigned                    seen:1;
} ngx_icp_gate_hiredis_episode_t;


/* the worker begins a graceful exit; the context may be freed in it */
typedef void (*ngx_icp_gate_hiredis_exit_pt)(redisAsyncContext *ac);


/* before the connect callback is set: hiredis 0.14 adds a write event */
ngx_int_t ngx_icp_gate_hiredis_attach(redisAsyncContext *ac);
void ngx_icp_gate_hiredis_on_exit(redisAsyncContext *ac,
    ngx_icp_gate_hiredis_exit_pt handler);
u_char *ngx_icp_gate_hiredis_malformed(const redisAsyncContext *ac);
ngx_uint_t ngx_icp_gate_hiredis_episode(ngx_icp_gate_hiredis_episode_t *ep);
const char *ngx_icp_gate_hiredis_type(int type);


#endif /* _NGX_ICP_GATE_HIREDIS_H_INCLUDED_ */
