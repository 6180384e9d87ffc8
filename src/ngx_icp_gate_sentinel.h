
/*
 * Copyright (C) icp_gate authors
 *
 * Where the Redis master is, as Redis Sentinel says: the sentinels are
 * asked in turn (SENTINEL get-master-addr-by-name), the one that answers
 * is then listened to for +switch-master, and they are asked again
 * whenever the Redis adapter finds the master gone or not a master.
 */


#ifndef _NGX_ICP_GATE_SENTINEL_H_INCLUDED_
#define _NGX_ICP_GATE_SENTINEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_ICP_GATE_SENTINELS_MAX  8


typedef struct {
    ngx_str_t                   host;       /* NUL-terminated */
    in_port_t                   port;
    ngx_flag_t                  resolve;    /* host is a name */
} ngx_icp_gate_sentinel_addr_t;


typedef struct {
    ngx_icp_gate_sentinel_addr_t  addrs[NGX_ICP_GATE_SENTINELS_MAX];
    ngx_uint_t                  naddrs;     /* 0: no Sentinel */
    ngx_str_t                   master;     /* its name there */
    ngx_str_t                   password;   /* of the sentinels */
    ngx_msec_t                  timeout;
} ngx_icp_gate_sentinel_conf_t;


/* the master is at host:port (host NUL-terminated, valid during the call) */
typedef void (*ngx_icp_gate_sentinel_pt)(ngx_str_t *host, in_port_t port);


char *ngx_icp_gate_sentinel_parse(ngx_conf_t *cf, ngx_str_t *list,
    ngx_icp_gate_sentinel_conf_t *scf);
void ngx_icp_gate_sentinel_init(ngx_icp_gate_sentinel_conf_t *scf,
    ngx_icp_gate_sentinel_pt handler);
void ngx_icp_gate_sentinel_ask(void);
void ngx_icp_gate_sentinel_done(void);


#endif /* _NGX_ICP_GATE_SENTINEL_H_INCLUDED_ */
