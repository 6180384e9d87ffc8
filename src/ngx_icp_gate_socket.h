
/*
 * Copyright (C) icp_gate authors
 *
 * Sockets that hiredis and libcurl own: nginx only watches them.  The
 * library opens and closes the descriptor; the nginx connection around it
 * is released, never closed.
 */


#ifndef _NGX_ICP_GATE_SOCKET_H_INCLUDED_
#define _NGX_ICP_GATE_SOCKET_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


/*
 * The data of an event no socket owns (a timer's): with "error_log ...
 * debug" nginx reads a descriptor from its data where ngx_connection_t
 * keeps its fd, and finds -1 here.
 */
extern void  *ngx_icp_gate_timer_ident[];


void ngx_icp_gate_timer_init(ngx_event_t *ev, ngx_event_handler_pt handler,
    ngx_log_t *log);
ngx_connection_t *ngx_icp_gate_socket_wrap(ngx_socket_t fd,
    ngx_event_handler_pt read, ngx_event_handler_pt write, void *data);
void ngx_icp_gate_socket_want(ngx_event_t *ev, ngx_uint_t want);
void ngx_icp_gate_socket_forget(ngx_connection_t *c, ngx_uint_t closed);
void ngx_icp_gate_socket_release(ngx_connection_t *c, ngx_uint_t closed);


#endif /* _NGX_ICP_GATE_SOCKET_H_INCLUDED_ */
