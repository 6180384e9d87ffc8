
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


/*
 * "source" of a hash in Redis: anything else is an operator's; and of a
 * verdict from icp_gate_file, which no hash has
 */

ngx_str_t  ngx_icp_gate_source_names[] = {
    ngx_string("none"),
    ngx_string("api"),
    ngx_string("import"),
    ngx_string("operator"),
    ngx_string("file"),
    ngx_null_string
};


/*
 * The key hashes are made with: a zone's, once a worker took it.  Before,
 * in a program that takes none (icp-gate-import, whose memo of hosts is
 * all it hashes for), only a fixed multiplier: a hash, but no keyed one.
 */

ngx_icp_gate_hash_key_t  ngx_icp_gate_hash_key = {
    0x9e3779b97f4a7c15ULL, { 0 }
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


/*
 * Longer than any name: the key covers each NGX_ICP_GATE_HASH_MAX bytes in
 * turn, and the multiplier chains them
 */

uint32_t
ngx_icp_gate_hash_long(u_char *p, size_t len)
{
    size_t    n;
    uint64_t  h;

    for (h = len; len; p += n, len -= n) {
        n = ngx_min(len, NGX_ICP_GATE_HASH_MAX);

        h = (h + ngx_icp_gate_hash_nh(p, n, ngx_icp_gate_hash_key.key))
            * ngx_icp_gate_hash_key.mult;
    }

    return (uint32_t) (h >> 32);
}


/*
 * A key drawn from a seed, the same for the same seed: for the unit tests,
 * which want the same buckets every run.  Each word is the seed's step of
 * a Weyl sequence through murmur3's 64-bit finalizer.
 */

void
ngx_icp_gate_hash_init(uint64_t seed)
{
    uint64_t    x;
    ngx_uint_t  i;

    for (i = 0; i <= NGX_ICP_GATE_HASH_MAX / 8; i++) {
        x = seed + (i + 1) * 0x9e3779b97f4a7c15ULL;
        x = (x ^ (x >> 33)) * 0xff51afd7ed558ccdULL;
        x = (x ^ (x >> 33)) * 0xc4ceb9fe1a85ec53ULL;
        x ^= x >> 33;

        if (i == NGX_ICP_GATE_HASH_MAX / 8) {
            ngx_icp_gate_hash_key.mult = x | 1;

        } else {
            ngx_icp_gate_hash_key.key[2 * i] = (uint32_t) x;
            ngx_icp_gate_hash_key.key[2 * i + 1] = (uint32_t) (x >> 32);
        }
    }
}
