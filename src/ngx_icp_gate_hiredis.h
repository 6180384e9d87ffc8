
/*
 * Copyright (C) icp_gate authors
 *
 * A hiredis async context driven by the nginx event loop: its socket
 * wrapped in an nginx connection, its read and write wishes as level-
 * triggered events.  hiredis owns and closes the socket.
 */


#ifndef _NGX_ICP_GATE_HIREDIS_H_INCLUDED_
#define _NGX_ICP_GATE_HIREDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>


/* argument n of a command's argv: a string literal, or a macro of one */
#define ngx_icp_gate_hiredis_arg(argv, argvlen, n, text)                \
    (argv)[n] = text; (argvlen)[n] = sizeof(text) - 1


/* before the connect callback is set: hiredis 0.14 adds a write event */
ngx_int_t ngx_icp_gate_hiredis_attach(redisAsyncContext *ac);


#endif /* _NGX_ICP_GATE_HIREDIS_H_INCLUDED_ */
