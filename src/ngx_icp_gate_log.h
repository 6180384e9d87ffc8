
/*
 * Copyright (C) icp_gate authors
 */


#ifndef _NGX_ICP_GATE_LOG_H_INCLUDED_
#define _NGX_ICP_GATE_LOG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_judge.h"


/* a protocol's own field: a string, or a number when value.data is NULL */
typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   value;
    ngx_int_t                   number;
} ngx_icp_gate_log_field_t;


typedef struct {
    ngx_str_t                   proto;
    ngx_str_t                   action;
    ngx_str_t                   client;
    ngx_icp_gate_log_field_t   *fields;
    ngx_uint_t                  nfields;
} ngx_icp_gate_log_entry_t;


void ngx_icp_gate_log_refusal(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j, ngx_icp_gate_log_entry_t *entry,
    ngx_pool_t *pool, ngx_log_t *log);
size_t ngx_icp_gate_log_escape_len(u_char *src, size_t len);
u_char *ngx_icp_gate_log_escape(u_char *dst, u_char *src, size_t len);
u_char *ngx_icp_gate_log_member(u_char *p, char *name, ngx_str_t *value);


#endif /* _NGX_ICP_GATE_LOG_H_INCLUDED_ */
