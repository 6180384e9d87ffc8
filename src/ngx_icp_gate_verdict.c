
/*
 * Copyright (C) icp_gate authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_verdict.h"


ngx_str_t  ngx_icp_gate_status_names[] = {
    ngx_null_string,
    ngx_string("filed"),
    ngx_string("pending"),
    ngx_string("revoked"),
    ngx_string("unfiled"),
    ngx_null_string
};


ngx_str_t  ngx_icp_gate_region_names[] = {
    ngx_null_string,
    ngx_string("mainland"),
    ngx_string("global"),
    ngx_string("overseas"),
    ngx_null_string
};


/* "source" of a hash in Redis: anything else is an operator's */

ngx_str_t  ngx_icp_gate_source_names[] = {
    ngx_string("none"),
    ngx_string("api"),
    ngx_string("import"),
    ngx_string("operator"),
    ngx_null_string
};


/* the index of a name in one of the tables above, 0 for none */

ngx_uint_t
ngx_icp_gate_verdict_name(ngx_str_t *names, u_char *data, size_t len)
{
    ngx_uint_t  i;

    for (i = 1; names[i].len; i++) {
        if (names[i].len == len && ngx_strncmp(names[i].data, data, len) == 0)
        {
            return i;
        }
    }

    return 0;
}


/*
 * A filing number from the API or Redis goes into headers and logs through
 * $icp_gate_icp: one with control characters, or too long, is not kept
 */

void
ngx_icp_gate_verdict_set_icp(ngx_icp_gate_verdict_t *v, u_char *data,
    size_t len)
{
    size_t  i;

    v->icp_len = 0;

    if (len >= NGX_ICP_GATE_ICP_LEN) {
        return;
    }

    for (i = 0; i < len; i++) {
        if (data[i] < 0x20 || data[i] == 0x7f) {
            return;
        }
    }

    ngx_memcpy(v->icp, data, len);
    v->icp_len = len;
}
