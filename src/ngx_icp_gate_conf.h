
/*
 * Copyright (C) icp_gate authors
 *
 * The gate directives the HTTP and RTMP modules share: each embeds an
 * ngx_icp_gate_conf_t in its block configuration and lists
 * NGX_ICP_GATE_COMMANDS in its command table.
 */


#ifndef _NGX_ICP_GATE_CONF_H_INCLUDED_
#define _NGX_ICP_GATE_CONF_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_judge.h"


extern ngx_conf_enum_t  ngx_icp_gate_modes[];
extern ngx_conf_enum_t  ngx_icp_gate_regions[];
extern ngx_conf_enum_t  ngx_icp_gate_on_errors[];


/*
 * The directives of a gate, for a protocol module whose block configuration
 * of type "type" embeds an ngx_icp_gate_conf_t named "gate".
 */

#define NGX_ICP_GATE_COMMANDS(contexts, offset, type)                         \
                                                                              \
    { ngx_string("icp_gate"),                                                 \
      contexts|NGX_CONF_TAKE1,                                                \
      ngx_icp_gate_conf_set_mode,                                             \
      offset,                                                                 \
      offsetof(type, gate.mode),                                              \
      &ngx_icp_gate_modes },                                                  \
                                                                              \
    { ngx_string("icp_gate_region"),                                          \
      contexts|NGX_CONF_TAKE1,                                                \
      ngx_icp_gate_conf_set_enum,                                             \
      offset,                                                                 \
      offsetof(type, gate.region),                                            \
      &ngx_icp_gate_regions },                                                \
                                                                              \
    { ngx_string("icp_gate_wait"),                                            \
      contexts|NGX_CONF_TAKE1,                                                \
      ngx_conf_set_msec_slot,                                                 \
      offset,                                                                 \
      offsetof(type, gate.wait),                                              \
      NULL },                                                                 \
                                                                              \
    { ngx_string("icp_gate_on_error"),                                        \
      contexts|NGX_CONF_TAKE1,                                                \
      ngx_icp_gate_conf_set_enum,                                             \
      offset,                                                                 \
      offsetof(type, gate.on_error),                                          \
      &ngx_icp_gate_on_errors },                                              \
                                                                              \
    { ngx_string("icp_gate_log"),                                             \
      contexts|NGX_CONF_TAKE1,                                                \
      ngx_icp_gate_conf_set_log,                                              \
      offset,                                                                 \
      offsetof(type, gate.log),                                               \
      NULL }


char *ngx_icp_gate_conf_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_icp_gate_conf_set_mode(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_icp_gate_conf_set_log(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_icp_gate_conf_init(ngx_icp_gate_conf_t *gcf);
void ngx_icp_gate_conf_merge(ngx_icp_gate_conf_t *conf,
    ngx_icp_gate_conf_t *prev);


#endif /* _NGX_ICP_GATE_CONF_H_INCLUDED_ */
