
/*
 * Copyright (C) icp_gate authors
 *
 * An nginx of its own for a program linked with the objects of an nginx
 * build, without nginx's main(): icp-gate-import and the unit tests
 * (t/unit/units.c).  It sets up what the engine's lower layers read: a log
 * to stderr, a cycle, the process id, the page and slab sizes, the clock.
 */


#ifndef _NGX_ICP_GATE_STANDALONE_H_INCLUDED_
#define _NGX_ICP_GATE_STANDALONE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct {
    ngx_open_file_t             file;
    ngx_log_t                   log;
    ngx_cycle_t                 cycle;
} ngx_icp_gate_standalone_t;


static void
ngx_icp_gate_standalone_init(ngx_icp_gate_standalone_t *sa)
{
    ngx_uint_t  n;

    ngx_memzero(sa, sizeof(ngx_icp_gate_standalone_t));

    sa->file.fd = ngx_stderr;

    sa->log.file = &sa->file;
    sa->log.log_level = NGX_LOG_ERR;

    sa->cycle.log = &sa->log;
    ngx_cycle = &sa->cycle;

    /* 0 would make the zone's lock look free whoever holds it */
    ngx_pid = getpid();

    ngx_pagesize = getpagesize();
    for (n = ngx_pagesize; n >>= 1; ngx_pagesize_shift++) { /* void */ }
    ngx_slab_sizes_init();
    ngx_cacheline_size = NGX_CPU_CACHE_LINE;

    ngx_time_init();
}


#endif /* _NGX_ICP_GATE_STANDALONE_H_INCLUDED_ */
