
/*
 * Copyright (C) icp_gate authors
 *
 * A host name resolved without blocking the worker: getaddrinfo_a() asks
 * the system's resolver (so /etc/hosts and nsswitch.conf count, as they do
 * for every other program on the host) in a thread of its own, and a
 * timer looks for the answer.
 */


#ifndef _NGX_ICP_GATE_RESOLVE_H_INCLUDED_
#define _NGX_ICP_GATE_RESOLVE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct ngx_icp_gate_resolve_s  ngx_icp_gate_resolve_t;

/* rc: NGX_OK with the first address, as text without the port; NGX_ERROR */
typedef void (*ngx_icp_gate_resolve_pt)(void *data, ngx_int_t rc,
    ngx_str_t *addr);


ngx_icp_gate_resolve_t *ngx_icp_gate_resolve(ngx_str_t *host,
    ngx_msec_t timeout, ngx_icp_gate_resolve_pt handler, void *data);
void ngx_icp_gate_resolve_cancel(ngx_icp_gate_resolve_t *r);
ngx_uint_t ngx_icp_gate_resolve_needed(ngx_str_t *host);


/* "[::1]" as ngx_parse_url() leaves an IPv6 address: bare, as hiredis wants */

static ngx_inline void
ngx_icp_gate_resolve_unbracket(ngx_str_t *host)
{
    if (host->len > 2 && host->data[0] == '['
        && host->data[host->len - 1] == ']')
    {
        host->data++;
        host->len -= 2;
    }
}


#endif /* _NGX_ICP_GATE_RESOLVE_H_INCLUDED_ */
