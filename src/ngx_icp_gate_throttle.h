
/*
 * Copyright (C) icp_gate authors
 *
 * A warning about something that may happen thousands of times a second
 * (a full queue, a spent budget, requests that waited too long) is written
 * at most once a second, with how many times it happened since.
 */


#ifndef _NGX_ICP_GATE_THROTTLE_H_INCLUDED_
#define _NGX_ICP_GATE_THROTTLE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct {
    ngx_uint_t                  count;
    time_t                      logged;
} ngx_icp_gate_throttle_t;


/* counts one more; returns the count to warn of now, or 0: not yet */

static ngx_inline ngx_uint_t
ngx_icp_gate_throttle(ngx_icp_gate_throttle_t *t)
{
    ngx_uint_t  n;

    t->count++;

    if (t->logged == ngx_time()) {
        return 0;
    }

    n = t->count;
    t->count = 0;
    t->logged = ngx_time();

    return n;
}


#endif /* _NGX_ICP_GATE_THROTTLE_H_INCLUDED_ */
