
/*
 * Copyright (C) icp_gate authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_icp_gate_socket.h"


void  *ngx_icp_gate_timer_ident[] = { NULL, NULL, NULL, (void *) -1 };


/* a timer of ours: no exiting worker waits for it */

void
ngx_icp_gate_timer_init(ngx_event_t *ev, ngx_event_handler_pt handler,
    ngx_log_t *log)
{
    ev->handler = handler;
    ev->data = ngx_icp_gate_timer_ident;
    ev->log = log;
    ev->cancelable = 1;
}


/* NULL when the worker is out of connections */

ngx_connection_t *
ngx_icp_gate_socket_wrap(ngx_socket_t fd, ngx_event_handler_pt read,
    ngx_event_handler_pt write, void *data)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(fd, ngx_cycle->log);
    if (c == NULL) {
        return NULL;
    }

    c->data = data;
    c->read->handler = read;
    c->write->handler = write;
    c->read->log = c->log;
    c->write->log = c->log;

    return c;
}


/*
 * level-triggered: hiredis reads at most 16K a call and curl reads what
 * it wants, either would stall on a larger answer under edge-triggered
 * events
 */

void
ngx_icp_gate_socket_want(ngx_event_t *ev, ngx_uint_t want)
{
    ngx_int_t  event;

    event = ev->write ? NGX_WRITE_EVENT : NGX_READ_EVENT;

    if (want && !ev->active) {
        (void) ngx_add_event(ev, event, NGX_LEVEL_EVENT);

    } else if (!want && ev->active) {
        (void) ngx_del_event(ev, event, 0);
    }
}


/*
 * Stops watching the socket.  "closed": the library closed the descriptor
 * already, so the kernel took it out of epoll, and its number may name
 * another socket by now, which must be left alone.
 */

void
ngx_icp_gate_socket_forget(ngx_connection_t *c, ngx_uint_t closed)
{
    ngx_uint_t  flags;

    flags = closed ? NGX_CLOSE_EVENT : 0;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, flags);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }
}


/* the descriptor stays the library's to close: never ngx_close_connection */

void
ngx_icp_gate_socket_release(ngx_connection_t *c, ngx_uint_t closed)
{
    ngx_icp_gate_socket_forget(c, closed);

    ngx_free_connection(c);

    c->fd = (ngx_socket_t) -1;
}
