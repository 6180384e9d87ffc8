
/*
 * Copyright (C) icp_gate authors
 *
 * How a filing source's answer reads as a verdict: JSON Pointers to its
 * fields, value maps, the envelope that says the query itself succeeded,
 * and the HTTP statuses that mean "not filed".
 */


#ifndef _NGX_ICP_GATE_API_MAP_H_INCLUDED_
#define _NGX_ICP_GATE_API_MAP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_verdict.h"


/* a value's meaning beyond the status names: the lookup failed */
#define NGX_ICP_GATE_API_MAP_FAIL      100

/* a field's rule */
#define NGX_ICP_GATE_API_MAP_UNSET     0
#define NGX_ICP_GATE_API_MAP_VALUES    1    /* values map to names */
#define NGX_ICP_GATE_API_MAP_PRESENCE  2    /* non-empty: filed */
#define NGX_ICP_GATE_API_MAP_OFF       3

/* room for a line saying why an answer is no verdict */
#define NGX_ICP_GATE_API_MAP_WHY       320


typedef struct {
    ngx_str_t                   text;       /* as in the configuration */
    double                      number;
    ngx_uint_t                  is_number;  /* text is a JSON number */
    ngx_uint_t                  meaning;    /* a status, region, or FAIL */
} ngx_icp_gate_api_value_t;


typedef struct {
    ngx_str_t                   pointer;    /* as configured, for the log */
    ngx_array_t                *tokens;     /* of ngx_str_t, unescaped */
    ngx_array_t                *values;     /* NULL: the gate's own names */
    ngx_uint_t                  rule;
    ngx_uint_t                  absent;     /* meaning of no value */
    ngx_uint_t                  has_absent;
} ngx_icp_gate_api_field_t;


typedef struct {
    ngx_icp_gate_api_field_t    status;
    ngx_icp_gate_api_field_t    icp;
    ngx_icp_gate_api_field_t    region;
    ngx_icp_gate_api_field_t    domain;
    ngx_icp_gate_api_field_t    success;    /* the values that mean it */
    ngx_array_t                *unfiled;    /* HTTP statuses, ngx_uint_t */
    ngx_uint_t                  default_region;
} ngx_icp_gate_api_map_t;


char *ngx_icp_gate_api_map_field(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_icp_gate_api_map_success(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_icp_gate_api_map_unfiled(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_icp_gate_api_map_init(ngx_pool_t *pool,
    ngx_icp_gate_api_map_t *map);
char *ngx_icp_gate_api_map_pointer(ngx_pool_t *pool, ngx_str_t *text,
    ngx_icp_gate_api_field_t *field);

ngx_uint_t ngx_icp_gate_api_map_is_unfiled(ngx_icp_gate_api_map_t *map,
    ngx_uint_t code);
ngx_int_t ngx_icp_gate_api_map_answer(ngx_icp_gate_api_map_t *map,
    ngx_str_t *domain, u_char *body, size_t len, ngx_icp_gate_verdict_t *v,
    ngx_str_t *why);


#endif /* _NGX_ICP_GATE_API_MAP_H_INCLUDED_ */
