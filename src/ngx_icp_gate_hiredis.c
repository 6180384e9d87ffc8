
/*
 * Copyright (C) icp_gate authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_icp_gate_hiredis.h"
#include "ngx_icp_gate_socket.h"


static void ngx_icp_gate_hiredis_read_handler(ngx_event_t *rev);
static void ngx_icp_gate_hiredis_write_handler(ngx_event_t *wev);
static void ngx_icp_gate_hiredis_add_read(void *privdata);
static void ngx_icp_gate_hiredis_del_read(void *privdata);
static void ngx_icp_gate_hiredis_add_write(void *privdata);
static void ngx_icp_gate_hiredis_del_write(void *privdata);
static void ngx_icp_gate_hiredis_cleanup(void *privdata);


ngx_int_t
ngx_icp_gate_hiredis_attach(redisAsyncContext *ac)
{
    ngx_connection_t  *nc;

    nc = ngx_icp_gate_socket_wrap(ac->c.fd, ngx_icp_gate_hiredis_read_handler,
                                  ngx_icp_gate_hiredis_write_handler, ac);
    if (nc == NULL) {
        return NGX_ERROR;
    }

    ac->ev.data = nc;
    ac->ev.addRead = ngx_icp_gate_hiredis_add_read;
    ac->ev.delRead = ngx_icp_gate_hiredis_del_read;
    ac->ev.addWrite = ngx_icp_gate_hiredis_add_write;
    ac->ev.delWrite = ngx_icp_gate_hiredis_del_write;
    ac->ev.cleanup = ngx_icp_gate_hiredis_cleanup;

    return NGX_OK;
}


static void
ngx_icp_gate_hiredis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t  *c = rev->data;

    redisAsyncHandleRead(c->data);
}


static void
ngx_icp_gate_hiredis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t  *c = wev->data;

    redisAsyncHandleWrite(c->data);
}


static void
ngx_icp_gate_hiredis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_icp_gate_socket_want(c->read, 1);
}


static void
ngx_icp_gate_hiredis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_icp_gate_socket_want(c->read, 0);
}


static void
ngx_icp_gate_hiredis_add_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_icp_gate_socket_want(c->write, 1);
}


static void
ngx_icp_gate_hiredis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_icp_gate_socket_want(c->write, 0);
}


/* hiredis closes the socket after this, while it is still open */

static void
ngx_icp_gate_hiredis_cleanup(void *privdata)
{
    ngx_icp_gate_socket_release(privdata, 0);
}
