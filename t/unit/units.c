
/*
 * Copyright (C) icp_gate authors
 *
 * Unit tests of the engine's pure parts, linked against the objects of the
 * built nginx (t/12-units.t builds and runs this): host reduction, tcUrl
 * parsing, the filing API's answers, the rejection log's escaping, the
 * verdict cache in a zone of its own.  Hashes use a key drawn from a fixed
 * seed, so that every run fills the same buckets.
 * Prints TAP; "units reduce" instead reduces each line of its input and
 * prints "KIND DOMAIN" a line, for a comparison with the Public Suffix
 * List's own algorithm (t/unit/psl.py).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_verdict.h"
#include "ngx_icp_gate_api.h"
#include "ngx_icp_gate_cache.h"
#include "ngx_icp_gate_domain.h"
#include "ngx_icp_gate_log.h"
#include "../../util/ngx_icp_gate_standalone.h"


typedef struct {
    char        *host;
    ngx_uint_t   kind;
    char        *domain;
} unit_host_t;


typedef struct {
    char        *body;
    ngx_int_t    rc;
    ngx_uint_t   status;
    ngx_uint_t   region;
    char        *icp;
} unit_answer_t;


static void unit_ok(int pass, const char *fmt, ...);
static int unit_reduce(ngx_pool_t *pool);
static void unit_hosts(ngx_pool_t *pool);
static void unit_host_bytes(ngx_pool_t *pool);
static void unit_urls(void);
static void unit_answers(ngx_pool_t *pool);
static void unit_pointers(ngx_pool_t *pool);
static void unit_escape(void);
static void unit_cache(ngx_pool_t *pool);
static void unit_cache_peek(ngx_pool_t *pool);
static void unit_cache_order(ngx_pool_t *pool);
static void unit_cache_key(ngx_pool_t *pool);
static void unit_cache_chain(ngx_pool_t *pool);
static void unit_cache_chunks(ngx_pool_t *pool);
static ngx_uint_t unit_cache_census(ngx_shm_zone_t *zone, ngx_uint_t rounds,
    ngx_uint_t *kept, ngx_uint_t *used);
static ngx_icp_gate_cache_t *unit_cache_colliders(ngx_pool_t *pool,
    char *format, ngx_uint_t n, ngx_str_t *names);
static ngx_shm_zone_t *unit_cache_zone(ngx_pool_t *pool, size_t size,
    ngx_shm_zone_t *reused);
static void unit_cache_verdict(ngx_icp_gate_verdict_t *v, char *icp);
static ngx_int_t unit_cache_get(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    ngx_msec_t lock_for, ngx_icp_gate_verdict_t *v, ngx_uint_t *flags);
static void unit_cache_put(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    ngx_icp_gate_verdict_t *v);


/* a filing number of the usual length: "京ICP备12345678号-1" */
static char  unit_icp[] = "\xe4\xba\xac" "ICP\xe5\xa4\x87" "12345678"
                          "\xe5\x8f\xb7" "-1";

/* longer than the room a placeholder's slab slot leaves */
static char  unit_icp_long[] = "\xe7\xb2\xa4" "ICP\xe5\xa4\x87"
                               "2023000001\xe5\x8f\xb7" "-12 "
                               "(as an API might spell it, with a note)";


/* entries in 128, 256 and 512-byte chunks: the domain's length, a number */
static struct {
    char        *format;
    char        *icp;
} unit_chunk_kinds[] = {
    { "s%ui.cn", "" },
    { "medium-sized-domain-name-of-the-%uith-kind.cn", unit_icp },
    { "a-long-name-%ui-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
      "xxxxxxxxxxxxxxxxxxxxxxx.cn", unit_icp_long }
};


static char  *unit_host_kinds[] = {
    "valid", "missing", "ip_literal", "invalid"
};


static ngx_uint_t  unit_n;
static ngx_uint_t  unit_failed;


static unit_host_t  unit_host_cases[] = {
    { "live.example.com", NGX_ICP_GATE_HOST_VALID, "example.com" },
    { "a.b.example.com.cn", NGX_ICP_GATE_HOST_VALID, "example.com.cn" },
    { "LIVE.Example.COM:8080", NGX_ICP_GATE_HOST_VALID, "example.com" },
    { "example.com.", NGX_ICP_GATE_HOST_VALID, "example.com" },
    { "x.y.gov.cn", NGX_ICP_GATE_HOST_VALID, "y.gov.cn" },
    { "push.example.co.uk", NGX_ICP_GATE_HOST_VALID, "example.co.uk" },
    /* a private-section suffix (github.io) is no public suffix here */
    { "user.github.io", NGX_ICP_GATE_HOST_VALID, "github.io" },
    { "\xe7\x9b\xb4\xe6\x92\xad.\xe4\xbe\x8b\xe5\xad\x90.\xe4\xb8\xad"
      "\xe5\x9b\xbd", NGX_ICP_GATE_HOST_VALID, "xn--fsqu00a.xn--fiqs8s" },
    { "B\xc3\xbc" "cher.de", NGX_ICP_GATE_HOST_VALID, "xn--bcher-kva.de" },
    { "", NGX_ICP_GATE_HOST_MISSING, "" },
    { "com.cn", NGX_ICP_GATE_HOST_INVALID, "" },
    { "cn", NGX_ICP_GATE_HOST_INVALID, "" },
    { "localhost", NGX_ICP_GATE_HOST_INVALID, "" },
    { ".", NGX_ICP_GATE_HOST_INVALID, "" },
    { ":80", NGX_ICP_GATE_HOST_INVALID, "" },
    { "a..b.cn", NGX_ICP_GATE_HOST_INVALID, "" },
    { "-a.cn", NGX_ICP_GATE_HOST_INVALID, "" },
    { "a-.cn", NGX_ICP_GATE_HOST_INVALID, "" },
    { "under_score.cn", NGX_ICP_GATE_HOST_INVALID, "" },
    { "x.cn:80a", NGX_ICP_GATE_HOST_INVALID, "" },
    { "\xff.cn", NGX_ICP_GATE_HOST_INVALID, "" },
    { "127.0.0.1", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "127.0.0.1:1935", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "1.2.3", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "0x7f.0.0.1", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "[::1]", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "[2001:db8::1]:443", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "::1", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "[::1", NGX_ICP_GATE_HOST_INVALID, "" },
    { "[zz::1]", NGX_ICP_GATE_HOST_INVALID, "" },
    /* the WHATWG URL parser's IPv4 forms: a last label of digits or 0x */
    { "0x7f.0x0.0x0.0x1", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "0X7F000001", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "017700000001", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "127.1", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "1.0x2", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "a.0x", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "a.0xcafe.", NGX_ICP_GATE_HOST_IP_LITERAL, "" },
    { "a.0xg", NGX_ICP_GATE_HOST_VALID, "a.0xg" },
    { "x.0x7f.cn", NGX_ICP_GATE_HOST_VALID, "0x7f.cn" },
    /* a wildcard rule's bare parent is registrable, as the list says */
    { "kobe.jp", NGX_ICP_GATE_HOST_VALID, "kobe.jp" },
    { "nom.br", NGX_ICP_GATE_HOST_VALID, "nom.br" },
    { "sch.uk", NGX_ICP_GATE_HOST_VALID, "sch.uk" },
    { "www.kobe.jp", NGX_ICP_GATE_HOST_INVALID, "" },
    { "a.b.kobe.jp", NGX_ICP_GATE_HOST_VALID, "a.b.kobe.jp" },
    { "city.kobe.jp", NGX_ICP_GATE_HOST_VALID, "city.kobe.jp" },
    { "www.city.kobe.jp", NGX_ICP_GATE_HOST_VALID, "city.kobe.jp" },
    { "ck", NGX_ICP_GATE_HOST_INVALID, "" },
    { "a.ck", NGX_ICP_GATE_HOST_INVALID, "" },
    { "x.www.ck", NGX_ICP_GATE_HOST_VALID, "www.ck" },
    /* the deepest rules, and more labels than any rule has */
    { "pvt.k12.ma.us", NGX_ICP_GATE_HOST_INVALID, "" },
    { "b.x.pvt.k12.ma.us", NGX_ICP_GATE_HOST_VALID, "x.pvt.k12.ma.us" },
    { "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.x.pvt.k12.ma.us",
      NGX_ICP_GATE_HOST_VALID, "x.pvt.k12.ma.us" },
    /* 126 labels under a filed domain; 127, the most 253 bytes hold */
    { "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"
      ".a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"
      ".a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"
      ".a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.f.cn",
      NGX_ICP_GATE_HOST_VALID, "f.cn" },
    { "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"
      ".a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"
      ".a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"
      ".a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a",
      NGX_ICP_GATE_HOST_VALID, "a.a" },
    { NULL, 0, NULL }
};


static unit_answer_t  unit_answer_cases[] = {
    { "{\"domain\":\"example.com\",\"status\":\"filed\","
      "\"icp\":\"ICP-1\",\"region\":\"mainland\"}",
      NGX_OK, NGX_ICP_GATE_STATUS_FILED, NGX_ICP_GATE_REGION_MAINLAND,
      "ICP-1" },
    { "{\"status\":\"pending\"}", NGX_OK, NGX_ICP_GATE_STATUS_PENDING,
      NGX_ICP_GATE_REGION_NONE, "" },
    { "{\"status\":\"revoked\",\"extra\":[1,2,3]}", NGX_OK,
      NGX_ICP_GATE_STATUS_REVOKED, NGX_ICP_GATE_REGION_NONE, "" },
    { "{\"status\":\"unfiled\",\"region\":\"overseas\"}", NGX_OK,
      NGX_ICP_GATE_STATUS_UNFILED, NGX_ICP_GATE_REGION_OVERSEAS, "" },
    { "{\"status\":\"filed\",\"region\":\"mars\",\"icp\":7}", NGX_OK,
      NGX_ICP_GATE_STATUS_FILED, NGX_ICP_GATE_REGION_NONE, "" },
    { "{\"status\":\"filed\",\"icp\":\"X\\r\\nSet-Cookie: a=1\"}", NGX_OK,
      NGX_ICP_GATE_STATUS_FILED, NGX_ICP_GATE_REGION_NONE, "" },
    { "{\"status\":\"FILED\"}", NGX_ERROR, 0, 0, NULL },
    { "{\"status\":\"maybe\"}", NGX_ERROR, 0, 0, NULL },
    { "{\"status\":1}", NGX_ERROR, 0, 0, NULL },
    { "{\"icp\":\"x\"}", NGX_ERROR, 0, 0, NULL },
    { "[\"filed\"]", NGX_ERROR, 0, 0, NULL },
    { "\"filed\"", NGX_ERROR, 0, 0, NULL },
    { "{\"status\": \"filed\"", NGX_ERROR, 0, 0, NULL },
    { "", NGX_ERROR, 0, 0, NULL },
    { "{\"status\":\"filed\"} trailing", NGX_ERROR, 0, 0, NULL },
    { NULL, 0, 0, 0, NULL }
};


int
main(int argc, char **argv)
{
    ngx_pool_t                 *pool;
    ngx_icp_gate_standalone_t   sa;

    ngx_icp_gate_standalone_init(&sa);

    /* a unit that hangs (a lock taken where none may be) fails */
    alarm(60);

    if (ngx_crc32_table_init() != NGX_OK) {
        printf("Bail out! no crc32 table\n");
        return 1;
    }

    pool = ngx_create_pool(16384, &sa.log);
    if (pool == NULL || ngx_icp_gate_domain_init(&sa.log) != NGX_OK) {
        printf("Bail out! no pool or no public suffix list\n");
        return 1;
    }

    ngx_icp_gate_hash_init(0);

    if (argc > 1 && ngx_strcmp(argv[1], "reduce") == 0) {
        return unit_reduce(pool);
    }

    unit_hosts(pool);
    unit_host_bytes(pool);
    unit_urls();
    unit_answers(pool);
    unit_pointers(pool);
    unit_escape();
    unit_cache(pool);
    unit_cache_peek(pool);
    unit_cache_order(pool);
    unit_cache_key(pool);
    unit_cache_chain(pool);
    unit_cache_chunks(pool);

    printf("1..%lu\n", (unsigned long) unit_n);

    ngx_destroy_pool(pool);

    return unit_failed ? 1 : 0;
}


static void
unit_ok(int pass, const char *fmt, ...)
{
    va_list  args;

    unit_n++;

    if (!pass) {
        unit_failed++;
    }

    printf("%sok %lu - ", pass ? "" : "not ", (unsigned long) unit_n);

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    printf("\n");
}


static void
unit_hosts(ngx_pool_t *pool)
{
    uint32_t      hash;
    ngx_str_t     host, domain;
    ngx_uint_t    kind, round;
    unit_host_t  *c;

    /* twice: the second round answers from the per-worker memo */

    for (round = 0; round < 2; round++) {
        for (c = unit_host_cases; c->host; c++) {
            host.data = (u_char *) c->host;
            host.len = ngx_strlen(c->host);

            kind = ngx_icp_gate_domain_registrable(pool, &host, &domain,
                                                   &hash);

            unit_ok(kind == c->kind
                    && domain.len == ngx_strlen(c->domain)
                    && ngx_strncmp(domain.data, c->domain, domain.len) == 0
                    && (domain.len == 0
                        || hash == ngx_icp_gate_hash(domain.data,
                                                     domain.len)),
                    "host \"%s\" -> \"%.*s\" (%s)%s", c->host,
                    (int) domain.len, domain.data,
                    unit_host_kinds[kind],
                    round ? ", from the memo" : "");
        }
    }
}


/* hosts that are no C strings: a NUL, other control bytes, no data */

#define unit_bytes(s)  s, sizeof(s) - 1

static void
unit_host_bytes(ngx_pool_t *pool)
{
    uint32_t    hash;
    ngx_str_t   host, domain;
    ngx_uint_t  i, kind;

    static struct {
        char        *data;
        size_t       len;
        ngx_uint_t   kind;
        char        *name;
    } cases[] = {
        { unit_bytes("a.filed.cn\0.x"), NGX_ICP_GATE_HOST_INVALID, "a NUL" },
        { unit_bytes("\xe4\xbe\x8b.cn\0.filed.cn"), NGX_ICP_GATE_HOST_INVALID,
          "a NUL after UTF-8" },
        { unit_bytes("\xe4\xbe\x8b.filed.cn\0"), NGX_ICP_GATE_HOST_INVALID,
          "a NUL at the end" },
        { unit_bytes("a\x01" "b.cn"), NGX_ICP_GATE_HOST_INVALID, "a \\x01" },
        { unit_bytes("\xe4\xbe\x8b\x1f.cn"), NGX_ICP_GATE_HOST_INVALID,
          "UTF-8 and a \\x1f" },
        { unit_bytes("a.cn\x7f"), NGX_ICP_GATE_HOST_INVALID, "a DEL" },
        { unit_bytes("[::1\0]"), NGX_ICP_GATE_HOST_INVALID,
          "a NUL in brackets" },
        { unit_bytes("a.cn:80\0"), NGX_ICP_GATE_HOST_INVALID,
          "a NUL after the port" },
        { NULL, 0, NGX_ICP_GATE_HOST_MISSING, "no data at all" }
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        host.data = (u_char *) cases[i].data;
        host.len = cases[i].len;

        kind = ngx_icp_gate_domain_registrable(pool, &host, &domain, &hash);

        unit_ok(kind == cases[i].kind && domain.len == 0,
                "host with %s -> %s", cases[i].name, unit_host_kinds[kind]);
    }
}


/* each line of stdin reduced: "KIND DOMAIN", the domain empty if none */

static int
unit_reduce(ngx_pool_t *pool)
{
    char       *line;
    size_t      size;
    ssize_t     n;
    uint32_t    hash;
    ngx_str_t   host, domain;
    ngx_uint_t  kind;

    line = NULL;
    size = 0;

    while ((n = getline(&line, &size, stdin)) != -1) {
        if (n > 0 && line[n - 1] == '\n') {
            n--;
        }

        host.data = (u_char *) line;
        host.len = n;

        kind = ngx_icp_gate_domain_registrable(pool, &host, &domain, &hash);

        printf("%s %.*s\n", unit_host_kinds[kind], (int) domain.len,
               domain.len ? (char *) domain.data : "");
    }

    free(line);

    return 0;
}


static void
unit_urls(void)
{
    ngx_str_t   url, host;
    ngx_uint_t  i;

    static char  *cases[][2] = {
        { "rtmp://push.example.com:1935/live", "push.example.com" },
        { "rtmp://push.example.com/live?token=1", "push.example.com" },
        { "rtmp://user:pw@push.example.com:1935/live", "push.example.com" },
        { "rtmp://a@b@push.example.com/live", "push.example.com" },
        { "rtmp://[::1]:1935/live", "[::1]" },
        { "RTMPS://Push.Example.Com#frag", "Push.Example.Com" },
        { "rtmp:///live", "" },
        { "rtmp://", "" },
        { "push.example.com/live", "" },
        { "", "" }
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        url.data = (u_char *) cases[i][0];
        url.len = ngx_strlen(cases[i][0]);

        (void) ngx_icp_gate_domain_from_url(&url, &host);

        unit_ok(host.len == ngx_strlen(cases[i][1])
                && (host.len == 0
                    || ngx_strncmp(host.data, cases[i][1], host.len) == 0),
                "tcUrl \"%s\" -> host \"%.*s\"", cases[i][0],
                (int) host.len, host.data ? (char *) host.data : "");
    }
}


/*
 * RFC 6901's pointers, parsed: "~1" is "/", "~0" is "~" (so "~01" is
 * "~1"), any other "~" is an error, as is a pointer not starting with "/"
 */

static void
unit_pointers(ngx_pool_t *pool)
{
    char                      *rc;
    ngx_str_t                  text, *t;
    ngx_uint_t                 i;
    ngx_icp_gate_api_field_t   field;

    static char  *cases[][4] = {
        { "", NULL, NULL, NULL },
        { "/a/b", "a", "b", NULL },
        { "/a~1b/~0/~01", "a/b", "~", "~1" },
        { "/data/\xe5\xa4\x87\xe6\xa1\x88", "data",
          "\xe5\xa4\x87\xe6\xa1\x88", NULL },
        { "//0", "", "0", NULL },
    };

    static char  *bad[] = { "a/b", "/a~2", "/a~", "#/a" };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ngx_memzero(&field, sizeof(ngx_icp_gate_api_field_t));
        text.data = (u_char *) cases[i][0];
        text.len = ngx_strlen(cases[i][0]);

        rc = ngx_icp_gate_api_map_pointer(pool, &text, &field);
        t = field.tokens ? field.tokens->elts : NULL;

        unit_ok(rc == NGX_CONF_OK
                && field.tokens->nelts == (ngx_uint_t) ((cases[i][1] != NULL)
                                                        + (cases[i][2] != NULL)
                                                        + (cases[i][3] != NULL))
                && (cases[i][1] == NULL
                    || (t[0].len == ngx_strlen(cases[i][1])
                        && ngx_strncmp(t[0].data, cases[i][1], t[0].len)
                           == 0))
                && (cases[i][2] == NULL
                    || (t[1].len == ngx_strlen(cases[i][2])
                        && ngx_strncmp(t[1].data, cases[i][2], t[1].len)
                           == 0))
                && (cases[i][3] == NULL
                    || (t[2].len == ngx_strlen(cases[i][3])
                        && ngx_strncmp(t[2].data, cases[i][3], t[2].len)
                           == 0)),
                "JSON pointer \"%s\" parsed", cases[i][0]);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ngx_memzero(&field, sizeof(ngx_icp_gate_api_field_t));
        text.data = (u_char *) bad[i];
        text.len = ngx_strlen(bad[i]);

        rc = ngx_icp_gate_api_map_pointer(pool, &text, &field);

        unit_ok(rc != NGX_CONF_OK && rc != NGX_CONF_ERROR,
                "JSON pointer \"%s\" refused: %s", bad[i],
                (rc && rc != NGX_CONF_ERROR) ? rc : "(accepted)");
    }
}


static void
unit_answers(ngx_pool_t *pool)
{
    u_char                   text[NGX_ICP_GATE_API_MAP_WHY];
    ngx_int_t                rc;
    ngx_str_t                domain, why;
    unit_answer_t           *c;
    ngx_icp_gate_api_map_t   map;
    ngx_icp_gate_verdict_t   v;

    /* the rules of no mapping directive: the gate's own answer */

    ngx_memzero(&map, sizeof(ngx_icp_gate_api_map_t));
    map.default_region = NGX_CONF_UNSET_UINT;

    if (ngx_icp_gate_api_map_init(pool, &map) != NGX_CONF_OK) {
        unit_ok(0, "the default mapping");
        return;
    }

    ngx_str_set(&domain, "example.com");
    why.data = text;

    unit_ok(ngx_icp_gate_api_map_is_unfiled(&map, 404)
            && !ngx_icp_gate_api_map_is_unfiled(&map, 410),
            "404, and no other status, is \"not filed\" by default");

    for (c = unit_answer_cases; c->body; c++) {
        rc = ngx_icp_gate_api_map_answer(&map, &domain, (u_char *) c->body,
                                         ngx_strlen(c->body), &v, &why);

        if (c->rc != NGX_OK) {
            unit_ok(rc != NGX_OK, "API answer %s is a failed lookup", c->body);
            continue;
        }

        unit_ok(rc == NGX_OK && v.status == c->status
                && v.region == c->region
                && v.icp_len == ngx_strlen(c->icp)
                && ngx_strncmp(v.icp, c->icp, v.icp_len) == 0,
                "API answer %s -> %s", c->body,
                ngx_icp_gate_status_names[c->status].data);
    }
}


static void
unit_escape(void)
{
    size_t      len;
    ngx_uint_t  i;
    u_char      out[256], *last;

    static char  *cases[][2] = {
        { "plain.example.com", "plain.example.com" },
        { "q\"uote", "q\\\"uote" },
        { "back\\slash", "back\\\\slash" },
        { "tab\tnl\n", "tab\\u0009nl\\u000a" },
        { "del\x7f", "del\\u007f" },
        { "\xe4\xbe\x8b", "\xe4\xbe\x8b" },
        { "\xff\xfe", "\\u00ff\\u00fe" },
        { "\xe4\xbe", "\\u00e4\\u00be" },
        { "\xed\xa0\x80", "\\u00ed\\u00a0\\u0080" },
        { "\xc0\xae", "\\u00c0\\u00ae" },
        { "\xc2\xff", "\\u00c2\\u00ff" },
        { "\xc3\xc3.x", "\\u00c3\\u00c3.x" },
        { "\xe4\xc0\xc0", "\\u00e4\\u00c0\\u00c0" },
        { "\xf8\x90\x80\x80", "\\u00f8\\u0090\\u0080\\u0080" },
        { "\xf4\x90\x80\x80", "\\u00f4\\u0090\\u0080\\u0080" },
        { "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80" }
    };

    /* a request without a host: no data, no length */

    last = ngx_icp_gate_log_escape(out, NULL, 0);

    unit_ok(last == out && ngx_icp_gate_log_escape_len(NULL, 0) == 0,
            "log escape of no string at all");

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        len = ngx_strlen(cases[i][0]);
        last = ngx_icp_gate_log_escape(out, (u_char *) cases[i][0], len);

        unit_ok((size_t) (last - out)
                    == ngx_icp_gate_log_escape_len((u_char *) cases[i][0], len)
                && (size_t) (last - out) == ngx_strlen(cases[i][1])
                && ngx_strncmp(out, cases[i][1], last - out) == 0,
                "log escape #%lu -> %.*s", (unsigned long) i,
                (int) (last - out), out);
    }
}


static void
unit_cache(ngx_pool_t *pool)
{
    u_char                   name[32];
    ngx_str_t                domain, hot;
    ngx_int_t                rc;
    ngx_uint_t               i, flags, held, fill, wrong;
    ngx_shm_zone_t          *zone;
    ngx_icp_gate_cache_t    *cache;
    ngx_icp_gate_verdict_t   v, got;

    zone = unit_cache_zone(pool, 1024 * 1024, NULL);
    if (zone == NULL) {
        unit_ok(0, "a 1 MB zone for the cache");
        return;
    }

    cache = zone->data;

    /* a placeholder has no room for a number; its verdict makes some */

    ngx_str_set(&domain, "grow.example.cn");

    rc = unit_cache_get(cache, &domain, 1000, &got, &flags);
    unit_ok(rc == NGX_DECLINED && (flags & NGX_ICP_GATE_CACHE_LOCKED),
            "cache: a missing domain gets a locked placeholder");

    unit_cache_verdict(&v, unit_icp);
    unit_cache_put(cache, &domain, &v);

    rc = unit_cache_get(cache, &domain, 1000, &got, &flags);
    unit_ok(rc == NGX_OK && flags == NGX_ICP_GATE_CACHE_FRESH
            && got.status == NGX_ICP_GATE_STATUS_FILED
            && got.icp_len == v.icp_len
            && ngx_memcmp(got.icp, unit_icp, v.icp_len) == 0,
            "cache: the placeholder's verdict keeps its filing number");

    unit_cache_verdict(&v, "");
    unit_cache_put(cache, &domain, &v);
    unit_cache_verdict(&v, unit_icp_long);
    unit_cache_put(cache, &domain, &v);

    rc = unit_cache_get(cache, &domain, 1000, &got, &flags);
    unit_ok(rc == NGX_OK && got.icp_len == v.icp_len
            && ngx_memcmp(got.icp, unit_icp_long, v.icp_len) == 0,
            "cache: a longer filing number moves the entry to more room");

    /* more domains than fit; one is asked for all along */

    ngx_str_set(&hot, "lru-hot.com.cn");
    fill = 12000;

    unit_cache_verdict(&v, unit_icp);

    for (i = 0; i < fill; i++) {
        if (i % 50 == 0) {
            unit_cache_put(cache, &hot, &v);
        }

        domain.data = name;
        domain.len = ngx_sprintf(name, "cap%ui.com.cn", i) - name;
        unit_cache_put(cache, &domain, &v);
    }

    /* newest first, until the first the zone let go */

    for (held = 0; held < fill; held++) {
        domain.data = name;
        domain.len = ngx_sprintf(name, "cap%ui.com.cn", fill - 1 - held)
                     - name;

        rc = unit_cache_get(cache, &domain, 0, &got, &flags);

        if (rc != NGX_OK || got.icp_len != v.icp_len) {
            break;
        }
    }

    unit_ok(held >= 5000 && held < fill,
            "cache: a 1 MB zone holds %lu domains with filing numbers",
            (unsigned long) held);

    rc = unit_cache_get(cache, &hot, 0, &got, &flags);
    unit_ok(rc == NGX_OK, "cache: a full zone lets the least recently "
            "used go, not a domain asked for all along");

    /*
     * a zone full of entries in one slab size, then verdicts that need the
     * next size up: each is held with its whole number, or not at all
     */

    unit_cache_verdict(&v, "");

    for (i = 0; i < fill; i++) {
        domain.data = name;
        domain.len = ngx_sprintf(name, "fill%ui.com.cn", i) - name;
        unit_cache_put(cache, &domain, &v);
    }

    unit_cache_verdict(&v, unit_icp_long);
    wrong = 0;

    for (i = 0; i < 200; i++) {
        domain.data = name;
        domain.len = ngx_sprintf(name, "long%ui.com.cn", i) - name;
        unit_cache_put(cache, &domain, &v);
    }

    for (held = 0, i = 0; i < 200; i++) {
        domain.data = name;
        domain.len = ngx_sprintf(name, "long%ui.com.cn", i) - name;

        rc = unit_cache_get(cache, &domain, 0, &got, &flags);

        if (rc != NGX_OK) {
            continue;
        }

        if (got.icp_len == v.icp_len
            && ngx_memcmp(got.icp, unit_icp_long, v.icp_len) == 0)
        {
            held++;

        } else {
            wrong++;
        }
    }

    /*
     * an insert evicts at most 8 entries: until they empty a page, an
     * entry of the bigger size is not held (the lookup keeps it aside)
     */

    unit_ok(held >= 150 && wrong == 0, "cache: a zone full of smaller "
            "entries holds %lu of 200 long filing numbers, %lu cut",
            (unsigned long) held, (unsigned long) wrong);
}


/* the hit path: no lock taken, nothing written, nothing stale */

static void
unit_cache_peek(ngx_pool_t *pool)
{
    u_char                  *before;
    uint32_t                 hash;
    ngx_int_t                rc;
    ngx_str_t                domain, other;
    ngx_uint_t               i, flags, same;
    ngx_shm_zone_t          *zone;
    ngx_slab_pool_t         *shpool;
    ngx_icp_gate_cache_t    *cache;
    ngx_icp_gate_verdict_t   v, got;

    zone = unit_cache_zone(pool, 64 * 1024, NULL);
    before = ngx_palloc(pool, 64 * 1024);

    if (zone == NULL || before == NULL) {
        unit_ok(0, "a 64 KB zone for the cache");
        return;
    }

    cache = zone->data;
    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    ngx_str_set(&domain, "peek.example.cn");
    hash = ngx_icp_gate_hash(domain.data, domain.len);

    unit_ok(ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got)
            == NGX_DECLINED, "cache peek: no entry, no verdict");

    unit_cache_verdict(&v, unit_icp);
    unit_cache_put(cache, &domain, &v);

    /* a worker that held the lock would deadlock a reader that took it */

    ngx_shmtx_lock(&shpool->mutex);
    rc = ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got);
    ngx_shmtx_unlock(&shpool->mutex);

    unit_ok(rc == NGX_OK && got.status == NGX_ICP_GATE_STATUS_FILED
            && got.icp_len == v.icp_len
            && ngx_memcmp(got.icp, unit_icp, v.icp_len) == 0,
            "cache peek: a fresh verdict is read while the zone is locked");

    ngx_memcpy(before, zone->shm.addr, 64 * 1024);

    for (i = 0, same = 0; i < 1000; i++) {
        same += (ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got)
                 == NGX_OK);
    }

    unit_ok(same == 1000
            && ngx_memcmp(before, zone->shm.addr, 64 * 1024) == 0,
            "cache peek: 1000 reads write not a byte of the zone");

    v.status = NGX_ICP_GATE_STATUS_REVOKED;
    unit_cache_put(cache, &domain, &v);

    rc = ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got);
    unit_ok(rc == NGX_OK && got.status == NGX_ICP_GATE_STATUS_REVOKED,
            "cache peek: a read after a write sees the new verdict");

    ngx_icp_gate_cache_store(cache, &domain, hash, &v, 0, 3600, NULL, 0);

    unit_ok(ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got)
            == NGX_DECLINED,
            "cache peek: an expired verdict is left to the locked lookup");

    rc = ngx_icp_gate_cache_lookup(cache, &domain, hash, 0, 10000, &got,
                                   &flags);
    unit_ok(rc == NGX_OK && flags == 0
            && got.status == NGX_ICP_GATE_STATUS_REVOKED,
            "cache stale: within stale-while-revalidate it answers");

    rc = ngx_icp_gate_cache_lookup(cache, &domain, hash, 0, 0, &got,
                                   &flags);
    unit_ok(rc == NGX_OK && flags == NGX_ICP_GATE_CACHE_STALE,
            "cache stale: past it, it is marked stale");

    rc = ngx_icp_gate_cache_lookup(cache, &domain, hash, 1000, 10000, &got,
                                   &flags);
    unit_ok(rc == NGX_OK && flags == NGX_ICP_GATE_CACHE_LOCKED
            && ngx_icp_gate_cache_peek(cache, &domain, hash, 10000, &got)
               == NGX_OK
            && ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got)
               == NGX_DECLINED,
            "cache peek: while its refresh runs, an expired verdict within "
            "stale-while-revalidate is read without the mutex");

    ngx_icp_gate_cache_release(cache, &domain, hash, 0, NULL);

    ngx_icp_gate_cache_store(cache, &domain, hash, &v, 60000, 0, NULL, 0);

    rc = ngx_icp_gate_cache_lookup(cache, &domain, hash, 0, 10000, &got,
                                   &flags);
    unit_ok(rc == NGX_DECLINED
            && ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got)
               == NGX_DECLINED,
            "cache stale: past its own TTL a verdict never answers");

    ngx_icp_gate_cache_store(cache, &domain, hash, &v, 0, 3600, NULL, 0);

    ngx_str_set(&other, "placeholder.example.cn");
    (void) unit_cache_get(cache, &other, 1000, &got, &flags);

    hash = ngx_icp_gate_hash(other.data, other.len);

    unit_ok(ngx_icp_gate_cache_peek(cache, &other, hash, 0, &got)
            == NGX_DECLINED, "cache peek: a placeholder is no verdict");

    /* the placeholder of a failed lookup remembers the failure */

    ngx_icp_gate_cache_release(cache, &other, hash, 1000, NULL);

    rc = unit_cache_get(cache, &other, 1000, &got, &flags);
    unit_ok(rc == NGX_DECLINED && flags == NGX_ICP_GATE_CACHE_FAILED,
            "cache: a failure is remembered, nobody takes the lock");

    ngx_current_msec += 1001;

    rc = unit_cache_get(cache, &other, 1000, &got, &flags);
    unit_ok(rc == NGX_DECLINED && flags == NGX_ICP_GATE_CACHE_LOCKED,
            "cache: once its time is past, the next lookup asks again");

    ngx_icp_gate_cache_release(cache, &other, hash, 0, NULL);

    rc = unit_cache_get(cache, &other, 0, &got, &flags);
    unit_ok(rc == NGX_DECLINED && flags == 0,
            "cache: a placeholder released without a hold is gone");

    /* the node's API budget: full at the start, a second's worth */

    for (i = 0, same = 0; i < 10; i++) {
        same += (ngx_icp_gate_cache_spend(cache, 5000) == NGX_OK);
    }

    unit_ok(same == 5, "api budget: 5/s spends 5 at once (%lu)",
            (unsigned long) same);

    /* 30/m, asked every 100 ms: what each moment earns adds up */

    for (i = 0, same = 0; i < 41; i++) {
        ngx_current_msec += 100;
        same += (ngx_icp_gate_cache_spend(cache, 500) == NGX_OK);
    }

    unit_ok(same == 2, "api budget: 30/m asked every 100 ms spends 2 in "
            "4 s (%lu)", (unsigned long) same);
}


/*
 * The order of verdicts: a version older than the copy's, a read sent
 * before a change Redis told, a lookup a purge overtook never replace it;
 * "every copy is stale" is one step, whatever the zone holds
 */

static void
unit_cache_order(ngx_pool_t *pool)
{
    uint32_t                    hash;
    ngx_int_t                   rc;
    ngx_str_t                   domain;
    ngx_uint_t                  flags;
    ngx_shm_zone_t             *zone;
    ngx_icp_gate_cache_t       *cache;
    ngx_icp_gate_verdict_t      v, got;
    ngx_icp_gate_cache_mark_t   mark, before;

    zone = unit_cache_zone(pool, 64 * 1024, NULL);
    if (zone == NULL) {
        unit_ok(0, "a 64 KB zone for the cache");
        return;
    }

    cache = zone->data;

    ngx_str_set(&domain, "order.example.cn");
    hash = ngx_icp_gate_hash(domain.data, domain.len);

    unit_cache_verdict(&v, unit_icp);
    v.status = NGX_ICP_GATE_STATUS_REVOKED;
    v.version = 2000;
    unit_cache_put(cache, &domain, &v);

    v.status = NGX_ICP_GATE_STATUS_FILED;
    v.version = 1000;
    unit_cache_put(cache, &domain, &v);

    rc = ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got);
    unit_ok(rc == NGX_OK && got.status == NGX_ICP_GATE_STATUS_REVOKED,
            "cache order: an older version, stored later, replaces nothing");

    v.version = 3000;
    unit_cache_put(cache, &domain, &v);

    rc = ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got);
    unit_ok(rc == NGX_OK && got.status == NGX_ICP_GATE_STATUS_FILED,
            "cache order: a newer version replaces the copy");

    /* a read sent before Redis told of a change is older than the change */

    ngx_icp_gate_cache_mark(cache, &mark);
    ngx_icp_gate_cache_told(cache, &domain, hash);

    v.status = NGX_ICP_GATE_STATUS_PENDING;
    v.version = 4000;
    rc = ngx_icp_gate_cache_store(cache, &domain, hash, &v, 60000, 3600,
                                  &mark, NGX_ICP_GATE_CACHE_READ);

    unit_ok(rc == NGX_OK
            && ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got)
               == NGX_OK
            && got.status == NGX_ICP_GATE_STATUS_FILED,
            "cache order: a read sent before a change told replaces "
            "nothing");

    ngx_icp_gate_cache_mark(cache, &mark);

    rc = ngx_icp_gate_cache_store(cache, &domain, hash, &v, 60000, 3600,
                                  &mark, NGX_ICP_GATE_CACHE_READ);

    unit_ok(rc == NGX_DONE
            && ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got)
               == NGX_OK
            && got.status == NGX_ICP_GATE_STATUS_PENDING,
            "cache order: a read sent after it does, and is news");

    /* a purge: a lookup that began before it stores nothing */

    rc = ngx_icp_gate_cache_lookup(cache, &domain, hash, 0, 10000, &got,
                                   &flags);
    ngx_icp_gate_cache_store(cache, &domain, hash, &v, 0, 3600, NULL, 0);

    rc = ngx_icp_gate_cache_lookup(cache, &domain, hash, 1000, 10000, &got,
                                   &flags);
    unit_ok(rc == NGX_OK && (flags & NGX_ICP_GATE_CACHE_LOCKED),
            "cache purge: an expired copy, its refresh holding the lock");

    ngx_icp_gate_cache_mark(cache, &before);

    ngx_icp_gate_cache_init_worker(cache, 10000);

    unit_ok(ngx_icp_gate_cache_purge(cache, &domain, hash) == NGX_OK,
            "cache purge: the copy is purged");

    unit_ok(ngx_icp_gate_cache_purged(cache, &domain, hash, &before),
            "cache purge: the lookup under way was overtaken");

    rc = ngx_icp_gate_cache_lookup(cache, &domain, hash, 1000, 10000, &got,
                                   &flags);
    unit_ok(rc == NGX_OK
            && flags == (NGX_ICP_GATE_CACHE_LOCKED | NGX_ICP_GATE_CACHE_STALE),
            "cache purge: the next lookup takes the lock at once, and waits "
            "for its refresh");

    v.status = NGX_ICP_GATE_STATUS_FILED;
    v.version = 9000;
    rc = ngx_icp_gate_cache_store(cache, &domain, hash, &v, 60000, 3600,
                                  &before, NGX_ICP_GATE_CACHE_RELEASE);

    unit_ok(rc == NGX_ABORT
            && ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got)
               == NGX_DECLINED
            && ngx_icp_gate_cache_lookup(cache, &domain, hash, 1000, 10000,
                                         &got, &flags)
               == NGX_OK
            && flags == NGX_ICP_GATE_CACHE_STALE,
            "cache purge: the older lookup stores nothing and leaves the "
            "new one's lock");

    ngx_icp_gate_cache_release(cache, &domain, hash, 0, &before);

    unit_ok(ngx_icp_gate_cache_lookup(cache, &domain, hash, 1000, 10000,
                                      &got, &flags)
            == NGX_OK && flags == NGX_ICP_GATE_CACHE_STALE,
            "cache purge: nor does it release that lock");

    ngx_icp_gate_cache_mark(cache, &mark);

    rc = ngx_icp_gate_cache_store(cache, &domain, hash, &v, 60000, 3600,
                                  &mark, NGX_ICP_GATE_CACHE_RELEASE);

    unit_ok(rc == NGX_DONE
            && ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got)
               == NGX_OK
            && got.status == NGX_ICP_GATE_STATUS_FILED,
            "cache purge: the lookup after it stores its verdict");

    /* every copy stale: one step; a read sent before is stored expired */

    ngx_icp_gate_cache_mark(cache, &mark);
    ngx_icp_gate_cache_expire_all(cache);

    rc = ngx_icp_gate_cache_lookup(cache, &domain, hash, 0, 10000, &got,
                                   &flags);

    unit_ok(ngx_icp_gate_cache_peek(cache, &domain, hash, 10000, &got)
            == NGX_DECLINED
            && rc == NGX_OK && !(flags & NGX_ICP_GATE_CACHE_FRESH),
            "cache epoch: every copy is stale at once");

    v.version = 10000;
    rc = ngx_icp_gate_cache_store(cache, &domain, hash, &v, 60000, 3600,
                                  &mark, NGX_ICP_GATE_CACHE_READ);
    rc = ngx_icp_gate_cache_lookup(cache, &domain, hash, 0, 10000, &got,
                                   &flags);

    unit_ok(rc == NGX_OK && !(flags & NGX_ICP_GATE_CACHE_FRESH),
            "cache epoch: a read sent before it stays stale");

    ngx_icp_gate_cache_mark(cache, &mark);
    v.version = 11000;
    ngx_icp_gate_cache_store(cache, &domain, hash, &v, 60000, 3600, &mark,
                             NGX_ICP_GATE_CACHE_READ);

    unit_ok(ngx_icp_gate_cache_peek(cache, &domain, hash, 0, &got) == NGX_OK,
            "cache epoch: a read sent after it is fresh");

    /* a verdict Redis did not take keeps its copy, unless a purge came */

    ngx_icp_gate_cache_extend(cache, &domain, hash, &v, 3600 * 1000);
    rc = ngx_icp_gate_cache_lookup(cache, &domain, hash, 0, 10000, &got,
                                   &flags);
    unit_ok(rc == NGX_OK && (flags & NGX_ICP_GATE_CACHE_FRESH),
            "cache extend: the copy of a verdict not written stays fresh");

    (void) ngx_icp_gate_cache_purge(cache, &domain, hash);
    ngx_icp_gate_cache_extend(cache, &domain, hash, &v, 3600 * 1000);
    rc = ngx_icp_gate_cache_lookup(cache, &domain, hash, 0, 10000, &got,
                                   &flags);
    unit_ok(rc == NGX_OK && (flags & NGX_ICP_GATE_CACHE_STALE),
            "cache extend: a purged copy is not made fresh again");
}


/*
 * The hash's key is the zone's, random, kept across reloads: two zones put
 * names in buckets of their own
 */

static void
unit_cache_key(ngx_pool_t *pool)
{
    u_char                 name[32];
    uint32_t               hash;
    ngx_str_t              domain;
    ngx_uint_t             i, moved, kept, bucket;
    ngx_shm_zone_t        *one, *other, *reloaded;
    ngx_icp_gate_cache_t  *cache;

    one = unit_cache_zone(pool, 64 * 1024, NULL);
    other = unit_cache_zone(pool, 64 * 1024, NULL);
    reloaded = one ? unit_cache_zone(pool, 64 * 1024, one) : NULL;

    if (other == NULL || reloaded == NULL) {
        unit_ok(0, "three 64 KB zones for the cache");
        return;
    }

    for (i = 0, moved = 0, kept = 0; i < 16; i++) {
        domain.data = name;
        domain.len = ngx_sprintf(name, "key%ui.example.cn", i) - name;

        cache = one->data;
        ngx_icp_gate_cache_use_key(cache);
        hash = ngx_icp_gate_hash(domain.data, domain.len);
        bucket = ngx_icp_gate_cache_bucket(cache, hash);

        cache = reloaded->data;
        ngx_icp_gate_cache_use_key(cache);
        kept += (ngx_icp_gate_hash(domain.data, domain.len) == hash);

        cache = other->data;
        ngx_icp_gate_cache_use_key(cache);
        hash = ngx_icp_gate_hash(domain.data, domain.len);
        moved += (ngx_icp_gate_cache_bucket(cache, hash) != bucket);
    }

    /* 256 buckets each: all 16 in the same ones once in 2^128 runs */

    unit_ok(moved > 0, "cache key: two zones put %lu of 16 domains in "
            "different buckets", (unsigned long) moved);

    unit_ok(kept == 16, "cache key: a zone kept across a reload hashes "
            "%lu of 16 domains as before", (unsigned long) kept);

    ngx_icp_gate_hash_init(0);
}


/*
 * A chain holds no more entries than a reader walks: a new entry in a
 * full chain takes the place of its least recently used, and an entry
 * being looked up stays
 */

static void
unit_cache_chain(ngx_pool_t *pool)
{
    ngx_int_t                rc;
    ngx_str_t                names[48];
    ngx_uint_t               i, flags, held, read, oldest, hot;
    ngx_time_t               later;
    volatile ngx_time_t     *now;
    ngx_icp_gate_cache_t    *cache;
    ngx_icp_gate_verdict_t   v, got;

    cache = unit_cache_colliders(pool, "chain%ui.example.cn", 48, names);
    if (cache == NULL) {
        return;
    }

    unit_cache_verdict(&v, unit_icp);

    /* the second one is being looked up: a placeholder holding its lock */

    for (i = 0; i < 32; i++) {
        if (i == 1) {
            (void) unit_cache_get(cache, &names[i], 1000, &got, &flags);

        } else {
            unit_cache_put(cache, &names[i], &v);
        }
    }

    read = (ngx_icp_gate_cache_peek(cache, &names[0],
                                    ngx_icp_gate_hash(names[0].data,
                                                      names[0].len),
                                    0, &got)
            == NGX_OK);

    unit_ok(read, "cache chain: the first of 32 domains in one bucket, at "
            "the end of its chain, is read without the mutex");

    /* two seconds on, the first one is asked for again */

    now = ngx_cached_time;
    later = *now;
    later.sec += 2;
    ngx_cached_time = &later;

    rc = unit_cache_get(cache, &names[0], 0, &got, &flags);

    unit_cache_put(cache, &names[32], &v);

    oldest = (unit_cache_get(cache, &names[2], 0, &got, &flags)
              == NGX_DECLINED);
    hot = (rc == NGX_OK
           && unit_cache_get(cache, &names[0], 0, &got, &flags) == NGX_OK);

    unit_ok(oldest && hot
            && ngx_icp_gate_cache_holds(cache, &names[1],
                                        ngx_icp_gate_hash(names[1].data,
                                                          names[1].len))
               == NGX_AGAIN
            && unit_cache_get(cache, &names[32], 0, &got, &flags) == NGX_OK,
            "cache chain: a 33rd domain takes the place of the least "
            "recently used, not of one asked for or being looked up");

    for (i = 33; i < 48; i++) {
        unit_cache_put(cache, &names[i], &v);
    }

    for (i = 0, held = 0; i < 48; i++) {
        held += (ngx_icp_gate_cache_holds(cache, &names[i],
                                          ngx_icp_gate_hash(names[i].data,
                                                            names[i].len))
                 != NGX_DECLINED);
    }

    unit_ok(held == 32, "cache chain: 48 domains of one bucket, %lu held",
            (unsigned long) held);

    ngx_cached_time = now;

    /* a chain whose every entry is being looked up takes no more */

    cache = unit_cache_colliders(pool, "wait%ui.example.cn", 33, names);
    if (cache == NULL) {
        return;
    }

    for (i = 0, held = 0; i < 32; i++) {
        rc = unit_cache_get(cache, &names[i], 1000, &got, &flags);
        held += (rc == NGX_DECLINED && (flags & NGX_ICP_GATE_CACHE_LOCKED));
    }

    rc = unit_cache_get(cache, &names[32], 1000, &got, &flags);

    unit_ok(held == 32 && rc == NGX_ERROR,
            "cache chain: 32 lookups under way in one bucket, a 33rd domain "
            "gets no placeholder (its worker asks alone)");

    ngx_icp_gate_cache_release(cache, &names[0],
                               ngx_icp_gate_hash(names[0].data, names[0].len),
                               0, NULL);

    rc = unit_cache_get(cache, &names[32], 1000, &got, &flags);

    unit_ok(rc == NGX_DECLINED && (flags & NGX_ICP_GATE_CACHE_LOCKED),
            "cache chain: once one is done, it does");
}


/*
 * Entries of three chunk sizes through a full zone, each size making way
 * for the others: every 50 entries, every entry is accounted at the slab
 * chunk it sits in, as the slab's own count of the chunks in use at each
 * size tells.  (A page keeps its chunk size while any chunk of it is in
 * use: a smaller entry that takes a bigger one's place lives in its chunk.)
 */

static void
unit_cache_chunks(ngx_pool_t *pool)
{
    u_char                   name[256];
    ngx_str_t                domain;
    ngx_uint_t               i, round, kind, wrong, held;
    ngx_uint_t               kept[3], used[3];
    ngx_shm_zone_t          *zone;
    ngx_icp_gate_cache_t    *cache;
    ngx_icp_gate_verdict_t   v;

    zone = unit_cache_zone(pool, 64 * 1024, NULL);
    if (zone == NULL) {
        unit_ok(0, "a 64 KB zone for the cache");
        return;
    }

    cache = zone->data;
    wrong = 0;

    /*
     * one size a round, the biggest first, which the others then make way
     * for; then the sizes in turn, and in runs of 7
     */

    for (round = 0; round < 9; round++) {
        for (i = 0; i < 400; i++) {

            switch (round) {

            case 0:
            case 1:
            case 2:
                kind = (round + 2) % 3;
                break;

            case 6:
            case 7:
            case 8:
                kind = (i / 7) % 3;
                break;

            default:
                kind = i % 3;
            }

            domain.data = name;
            domain.len = ngx_sprintf(name, unit_chunk_kinds[kind].format,
                                     round * 1000 + i)
                         - name;

            unit_cache_verdict(&v, unit_chunk_kinds[kind].icp);
            unit_cache_put(cache, &domain, &v);

            if (i % 50 == 49) {
                wrong += unit_cache_census(zone, round + 1, kept, used);
            }
        }
    }

    held = kept[0] + kept[1] + kept[2];

    unit_ok(kept[0] && kept[1] && kept[2] && wrong == 0,
            "cache chunks: 3600 entries of 128, 256 and 512 bytes through a "
            "full zone, each accounted at its chunk every 50 (at the end "
            "%lu held; chunks in use %lu, %lu, %lu; %lu times a size "
            "counted wrong)", (unsigned long) held, (unsigned long) used[0],
            (unsigned long) used[1], (unsigned long) used[2],
            (unsigned long) wrong);
}


/*
 * The entries of unit_cache_chunks() the zone holds, by kind, and the
 * sizes at which the zone's accounting and the slab's chunks in use differ
 */

static ngx_uint_t
unit_cache_census(ngx_shm_zone_t *zone, ngx_uint_t rounds, ngx_uint_t *kept,
    ngx_uint_t *used)
{
    u_char                      name[256];
    ngx_str_t                   domain;
    ngx_uint_t                  i, round, kind, shift, wrong;
    ngx_uint_t                  counted[16];
    ngx_slab_pool_t            *shpool;
    ngx_icp_gate_cache_entry_t  e;

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    ngx_memzero(counted, sizeof(counted));
    ngx_memzero(kept, 3 * sizeof(ngx_uint_t));

    for (round = 0; round < rounds; round++) {
        for (kind = 0; kind < 3; kind++) {
            for (i = 0; i < 400; i++) {
                domain.data = name;
                domain.len = ngx_sprintf(name, unit_chunk_kinds[kind].format,
                                         round * 1000 + i)
                             - name;

                if (ngx_icp_gate_cache_inspect(zone->data, &domain,
                        ngx_icp_gate_hash(domain.data, domain.len), &e)
                    != NGX_OK)
                {
                    continue;
                }

                for (shift = 0; ((size_t) 1 << shift) < e.chunk; shift++) {
                    /* void */
                }

                counted[shift]++;
                kept[kind]++;
            }
        }
    }

    for (kind = 0; kind < 3; kind++) {
        used[kind] = shpool->stats[7 + kind - shpool->min_shift].used;
    }

    /* the zone's header takes whole pages, its name a 32-byte chunk */

    for (wrong = 0, shift = 7; shift < ngx_pagesize_shift; shift++) {
        wrong += (counted[shift]
                  != shpool->stats[shift - shpool->min_shift].used);
    }

    return wrong;
}


/* a 64 KB zone, and n domains of the format's that share one bucket */

static ngx_icp_gate_cache_t *
unit_cache_colliders(ngx_pool_t *pool, char *format, ngx_uint_t n,
    ngx_str_t *names)
{
    u_char                 name[64];
    ngx_str_t              domain;
    ngx_uint_t             i, found, bucket, first;
    ngx_shm_zone_t        *zone;
    ngx_icp_gate_cache_t  *cache;

    zone = unit_cache_zone(pool, 64 * 1024, NULL);
    cache = zone ? zone->data : NULL;

    first = 0;
    domain.data = name;

    for (i = 0, found = 0; cache && found < n && i < 1000000; i++) {
        domain.len = ngx_sprintf(name, format, i) - name;

        bucket = ngx_icp_gate_cache_bucket(cache,
                                           ngx_icp_gate_hash(domain.data,
                                                             domain.len));

        if (found == 0) {
            first = bucket;

        } else if (bucket != first) {
            continue;
        }

        names[found].len = domain.len;
        names[found].data = ngx_pstrdup(pool, &domain);

        if (names[found].data == NULL) {
            break;
        }

        found++;
    }

    if (found < n) {
        unit_ok(0, "a 64 KB zone and %lu domains of one bucket",
                (unsigned long) n);
        return NULL;
    }

    return cache;
}


/*
 * What ngx_init_cycle() does for a zone, without a cycle to init; with
 * "reused", what it does on a reload: the same memory, handed the old
 * zone's data
 */

static ngx_shm_zone_t *
unit_cache_zone(ngx_pool_t *pool, size_t size, ngx_shm_zone_t *reused)
{
    ngx_str_t         name = ngx_string("unit");
    ngx_conf_t        cf;
    ngx_shm_zone_t   *zone;
    ngx_slab_pool_t  *sp;

    if (ngx_list_init(&((ngx_cycle_t *) ngx_cycle)->shared_memory, pool, 1,
                      sizeof(ngx_shm_zone_t))
        != NGX_OK)
    {
        return NULL;
    }

    ngx_memzero(&cf, sizeof(ngx_conf_t));
    cf.cycle = (ngx_cycle_t *) ngx_cycle;
    cf.pool = pool;
    cf.log = ngx_cycle->log;

    zone = ngx_icp_gate_cache_add(&cf, &name, size, &name);
    if (zone == NULL) {
        return NULL;
    }

    if (reused) {
        zone->shm = reused->shm;

        return (zone->init(zone, reused->data) == NGX_OK) ? zone : NULL;
    }

    if (ngx_shm_alloc(&zone->shm) != NGX_OK) {
        return NULL;
    }

    sp = (ngx_slab_pool_t *) zone->shm.addr;
    sp->end = zone->shm.addr + zone->shm.size;
    sp->min_shift = 3;
    sp->addr = zone->shm.addr;

    if (ngx_shmtx_create(&sp->mutex, &sp->lock, NULL) != NGX_OK) {
        return NULL;
    }

    ngx_slab_init(sp);

    if (zone->init(zone, NULL) != NGX_OK) {
        return NULL;
    }

    return zone;
}


static void
unit_cache_verdict(ngx_icp_gate_verdict_t *v, char *icp)
{
    ngx_memzero(v, sizeof(ngx_icp_gate_verdict_t));

    v->status = NGX_ICP_GATE_STATUS_FILED;
    v->region = NGX_ICP_GATE_REGION_NONE;
    v->checked_at = ngx_time();
    v->icp_len = ngx_strlen(icp);
    ngx_memcpy(v->icp, icp, v->icp_len);
}


static ngx_int_t
unit_cache_get(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    ngx_msec_t lock_for, ngx_icp_gate_verdict_t *v, ngx_uint_t *flags)
{
    return ngx_icp_gate_cache_lookup(cache, domain,
                                     ngx_icp_gate_hash(domain->data,
                                                       domain->len),
                                     lock_for, 10000, v, flags);
}


static void
unit_cache_put(ngx_icp_gate_cache_t *cache, ngx_str_t *domain,
    ngx_icp_gate_verdict_t *v)
{
    ngx_icp_gate_cache_store(cache, domain,
                             ngx_icp_gate_hash(domain->data, domain->len),
                             v, 60000, 3600, NULL, 0);
}
