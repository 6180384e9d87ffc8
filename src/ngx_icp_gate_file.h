
/*
 * Copyright (C) icp_gate authors
 *
 * The file tier (icp_gate_file): the filing verdicts a platform lists
 * itself, read by the master with the configuration and shared by every
 * worker as the master left them, read-only.
 */


#ifndef _NGX_ICP_GATE_FILE_H_INCLUDED_
#define _NGX_ICP_GATE_FILE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_verdict.h"


typedef struct {
    ngx_str_t                   name;
    uint64_t                    version;    /* its mtime, in microseconds */
    time_t                      mtime;
    ngx_uint_t                  n;
    u_char                     *records;    /* packed, see file.c */
    uint32_t                   *index;      /* offsets, in domain order */
} ngx_icp_gate_file_t;


/*
 * The domains whose verdict the file of a new configuration changed from
 * the previous one's (listed, no longer listed, or another verdict), for
 * the zone to forget; a generation that grows with each such change
 */
typedef struct {
    u_char                     *names;      /* a length byte, the name */
    ngx_uint_t                  n;
    ngx_uint_t                  generation;
} ngx_icp_gate_file_changes_t;


ngx_icp_gate_file_t *ngx_icp_gate_file_load(ngx_conf_t *cf, ngx_str_t *name);
ngx_int_t ngx_icp_gate_file_find(ngx_icp_gate_file_t *file,
    ngx_str_t *domain, ngx_icp_gate_verdict_t *v);
ngx_uint_t ngx_icp_gate_file_yields(ngx_icp_gate_file_t *file,
    ngx_icp_gate_verdict_t *v);
ngx_int_t ngx_icp_gate_file_commit(ngx_cycle_t *cycle,
    ngx_icp_gate_file_t *file, ngx_icp_gate_file_changes_t *changes);


#endif /* _NGX_ICP_GATE_FILE_H_INCLUDED_ */
