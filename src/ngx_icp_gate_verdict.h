
/*
 * Copyright (C) icp_gate authors
 *
 * The vocabulary every layer shares: a filing verdict, the names Redis and
 * the filing API give its status and region, and the hash domains are
 * kept under.  It depends on nothing of icp_gate.
 */


#ifndef _NGX_ICP_GATE_VERDICT_H_INCLUDED_
#define _NGX_ICP_GATE_VERDICT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_ICP_GATE_DOMAIN_LEN     253
#define NGX_ICP_GATE_ICP_LEN        96


/* filing status, as the filing API and Redis spell it */
#define NGX_ICP_GATE_STATUS_NONE       0
#define NGX_ICP_GATE_STATUS_FILED      1
#define NGX_ICP_GATE_STATUS_PENDING    2
#define NGX_ICP_GATE_STATUS_REVOKED    3
#define NGX_ICP_GATE_STATUS_UNFILED    4

#define NGX_ICP_GATE_REGION_NONE       0
#define NGX_ICP_GATE_REGION_MAINLAND   1
#define NGX_ICP_GATE_REGION_GLOBAL     2
#define NGX_ICP_GATE_REGION_OVERSEAS   3

/* who wrote a verdict down: the hash's "source" in Redis */
#define NGX_ICP_GATE_SOURCE_NONE       0
#define NGX_ICP_GATE_SOURCE_API        1
#define NGX_ICP_GATE_SOURCE_IMPORT     2
#define NGX_ICP_GATE_SOURCE_OPERATOR   3    /* anything else */
#define NGX_ICP_GATE_SOURCE_FILE       4    /* icp_gate_file, never Redis */

/* the outcome of a judgement, as $icp_gate_result spells it */
#define NGX_ICP_GATE_RESULT_NONE       0
#define NGX_ICP_GATE_RESULT_ALLOW      1
#define NGX_ICP_GATE_RESULT_DENY       2
#define NGX_ICP_GATE_RESULT_EXEMPT     3
#define NGX_ICP_GATE_RESULT_DRY_RUN    4
#define NGX_ICP_GATE_RESULTS           5

/* why, as $icp_gate_reason and the rejection log spell it */
#define NGX_ICP_GATE_REASON_NONE           0
#define NGX_ICP_GATE_REASON_NO_HOST        1
#define NGX_ICP_GATE_REASON_IP_LITERAL     2
#define NGX_ICP_GATE_REASON_INVALID_HOST   3
#define NGX_ICP_GATE_REASON_OVERSEAS       4
#define NGX_ICP_GATE_REASON_UNFILED        5
#define NGX_ICP_GATE_REASON_PENDING        6
#define NGX_ICP_GATE_REASON_REVOKED        7
#define NGX_ICP_GATE_REASON_LOOKUP_FAILED  8
#define NGX_ICP_GATE_REASONS               9


/*
 * A verdict's version orders it against every other verdict of its domain:
 * the Redis time, in microseconds, of the read that brought it, or, for a
 * filing API answer, of the look in Redis that came before the question;
 * 0 when Redis was not asked.  A node's clock never orders verdicts.
 */

typedef struct {
    uint32_t                    status;     /* four words: a verdict */
    uint32_t                    region;     /* stays 128 bytes */
    uint32_t                    source;
    uint32_t                    icp_len;
    time_t                      checked_at;
    uint64_t                    version;
    u_char                      icp[NGX_ICP_GATE_ICP_LEN];
} ngx_icp_gate_verdict_t;


/*
 * The hash hosts and domains are kept under, in the per-worker memo, the
 * flights and the shared zone.  Its key is random, the zone's (each worker
 * takes it at start, ngx_icp_gate_cache_use_key(), so all workers of a
 * node hash alike), so that nobody can pick names that share a bucket.
 * NH, the hash of UMAC, over 8-byte words: two different names of as many
 * words have the same sum for at most one key in 2^32; the sum and the
 * length are then multiplied by a random odd number, whose top bits pick
 * a bucket.  A word costs a multiply and a few adds, as it did unkeyed.
 */

#define NGX_ICP_GATE_HASH_MAX       256     /* bytes the key covers once */

typedef struct {
    uint64_t                    mult;       /* odd */
    uint32_t                    key[NGX_ICP_GATE_HASH_MAX / 4];
} ngx_icp_gate_hash_key_t;


extern ngx_icp_gate_hash_key_t  ngx_icp_gate_hash_key;


uint32_t ngx_icp_gate_hash_long(u_char *p, size_t len);
void ngx_icp_gate_hash_init(uint64_t seed);


/*
 * len at most NGX_ICP_GATE_HASH_MAX.  The last eight bytes of a length not
 * a multiple of eight are a word of their own, under the key's last word,
 * which no full word of such a length reaches.
 */

static ngx_inline uint64_t
ngx_icp_gate_hash_nh(u_char *p, size_t len, uint32_t *k)
{
    size_t    i;
    uint64_t  sum, w;

    sum = 0;

    /* a word and its two halves of the key are as far in: one index */

    for (i = 0; i + 8 <= len; i += 8) {
        ngx_memcpy(&w, p + i, 8);
        sum += (uint64_t) ((uint32_t) w + k[i / 4])
               * (uint32_t) ((uint32_t) (w >> 32) + k[i / 4 + 1]);
    }

    if ((len & 7) == 0) {
        return sum;
    }

    if (len >= 8) {
        /* some of them hashed already */
        ngx_memcpy(&w, p + len - 8, 8);

    } else {
        for (w = 0, i = len; i; i--) {
            w = (w << 8) | p[i - 1];
        }
    }

    k += NGX_ICP_GATE_HASH_MAX / 4 - 2;

    return sum + (uint64_t) ((uint32_t) w + k[0])
                 * (uint32_t) ((uint32_t) (w >> 32) + k[1]);
}


static ngx_inline uint32_t
ngx_icp_gate_hash(u_char *p, size_t len)
{
    uint64_t  sum;

    if (len > NGX_ICP_GATE_HASH_MAX) {
        return ngx_icp_gate_hash_long(p, len);
    }

    sum = ngx_icp_gate_hash_nh(p, len, ngx_icp_gate_hash_key.key) + len;

    return (uint32_t) ((sum * ngx_icp_gate_hash_key.mult) >> 32);
}


/* the same len bytes: eight at a time, without a call, for short keys */

static ngx_inline ngx_uint_t
ngx_icp_gate_equal(u_char *a, u_char *b, size_t len)
{
    uint64_t  x, y;

    if (len < 8) {
        for ( /* void */ ; len; len--) {
            if (*a++ != *b++) {
                return 0;
            }
        }

        return 1;
    }

    for ( ;; ) {
        if (len <= 8) {
            /* the last eight bytes, some of them compared already */
            a -= 8 - len;
            b -= 8 - len;
        }

        ngx_memcpy(&x, a, 8);
        ngx_memcpy(&y, b, 8);

        if (x != y) {
            return 0;
        }

        if (len <= 8) {
            return 1;
        }

        a += 8;
        b += 8;
        len -= 8;
    }
}


extern ngx_str_t  ngx_icp_gate_status_names[];
extern ngx_str_t  ngx_icp_gate_region_names[];
extern ngx_str_t  ngx_icp_gate_source_names[];


ngx_uint_t ngx_icp_gate_verdict_name(ngx_str_t *names, u_char *data,
    size_t len);
void ngx_icp_gate_verdict_set_icp(ngx_icp_gate_verdict_t *v, u_char *data,
    size_t len);


#endif /* _NGX_ICP_GATE_VERDICT_H_INCLUDED_ */
