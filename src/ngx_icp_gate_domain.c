
/*
 * Copyright (C) icp_gate authors
 *
 * From the host a client named to the registrable domain a filing is
 * made for.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <libpsl.h>
#include <idn2.h>

#include "ngx_icp_gate_verdict.h"
#include "ngx_icp_gate_domain.h"


/* no valid name is longer; longer input is refused before any work */
#define NGX_ICP_GATE_HOST_MAX      1024

/*
 * The public suffix lookups cost about 4,000 instructions a label, more than
 * the rest of a small request: each worker remembers the hosts it has
 * reduced, with its domain's hash.  Sets of eight 64-byte entries, 32768
 * hosts in 2 MB: 10,000 hosts leave hardly a set with more hosts than
 * ways.  A hit moves an entry one place up its set and a new host enters
 * at the bottom, so hosts seen often stay when more hosts than ways share
 * a set.
 */

#define NGX_ICP_GATE_MEMO_SETS     4096
#define NGX_ICP_GATE_MEMO_WAYS     8
#define NGX_ICP_GATE_MEMO_DATA     52

typedef struct {
    uint32_t                    hash;
    uint32_t                    domain_hash;
    u_char                      host_len;       /* 0: an empty entry */
    u_char                      domain_len;
    u_char                      domain_at;      /* offset in data */
    u_char                      kind;
    u_char                      data[NGX_ICP_GATE_MEMO_DATA];
} ngx_icp_gate_domain_memo_t;


static ngx_uint_t ngx_icp_gate_domain_reduce_host(ngx_pool_t *pool,
    ngx_str_t *host, uint32_t hash, ngx_str_t *domain, uint32_t *domain_hash);
static ngx_uint_t ngx_icp_gate_domain_copy(ngx_pool_t *pool, u_char *name,
    size_t len, ngx_str_t *domain, ngx_uint_t kind);
static ngx_uint_t ngx_icp_gate_domain_tail(ngx_str_t *host, u_char *name,
    size_t len);
static ngx_icp_gate_domain_memo_t *ngx_icp_gate_domain_memo_find(
    ngx_str_t *host, uint32_t hash);
static void ngx_icp_gate_domain_memo_add(ngx_str_t *host, uint32_t hash,
    u_char *domain, size_t len, uint32_t domain_hash, ngx_uint_t kind);
static ngx_uint_t ngx_icp_gate_domain_reduce(ngx_str_t *host,
    u_char *domain, size_t *len);
static ngx_uint_t ngx_icp_gate_domain_bracketed(u_char *p, u_char *last);
static ngx_uint_t ngx_icp_gate_domain_ipv6(u_char *p, size_t len);
static ngx_uint_t ngx_icp_gate_domain_to_ascii(u_char *buf, size_t *len);
static ngx_uint_t ngx_icp_gate_domain_check_ldh(u_char *name, size_t len);


static const psl_ctx_t           *ngx_icp_gate_psl;
static ngx_icp_gate_domain_memo_t  *ngx_icp_gate_memo;


ngx_int_t
ngx_icp_gate_domain_init(ngx_log_t *log)
{
    if (ngx_icp_gate_psl) {
        return NGX_OK;
    }

    /* the newer of libpsl's built-in list and the system's publicsuffix */
    ngx_icp_gate_psl = psl_latest(NULL);

    if (ngx_icp_gate_psl == NULL) {
        ngx_icp_gate_psl = psl_builtin();
    }

    if (ngx_icp_gate_psl == NULL) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "icp_gate: no public suffix list could be loaded");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * *domain_hash: ngx_icp_gate_hash() of the domain, when there is one.  The
 * domain is the host's own tail whenever it can be (the host was lower
 * case ASCII already, as nginx leaves an HTTP host), else a copy in pool.
 */

ngx_uint_t
ngx_icp_gate_domain_registrable(ngx_pool_t *pool, ngx_str_t *host,
    ngx_str_t *domain, uint32_t *domain_hash)
{
    uint32_t                     hash;
    ngx_icp_gate_domain_memo_t  *m;

    /* a host too long for the memo is not even hashed */

    if (host->len == 0 || host->len > NGX_ICP_GATE_MEMO_DATA) {
        return ngx_icp_gate_domain_reduce_host(pool, host, 0, domain,
                                               domain_hash);
    }

    hash = ngx_icp_gate_hash(host->data, host->len);

    m = ngx_icp_gate_domain_memo_find(host, hash);

    if (m == NULL) {
        return ngx_icp_gate_domain_reduce_host(pool, host, hash, domain,
                                               domain_hash);
    }

    *domain_hash = m->domain_hash;

    if (m->domain_at + m->domain_len == m->host_len) {
        domain->data = host->data + m->domain_at;
        domain->len = m->domain_len;
        return m->kind;
    }

    return ngx_icp_gate_domain_copy(pool, m->data + m->domain_at,
                                    m->domain_len, domain, m->kind);
}


/* the slow path: the public suffix list, then the memo */

static ngx_uint_t
ngx_icp_gate_domain_reduce_host(ngx_pool_t *pool, ngx_str_t *host,
    uint32_t hash, ngx_str_t *domain, uint32_t *domain_hash)
{
    size_t      len;
    ngx_uint_t  kind;
    u_char      buf[NGX_ICP_GATE_DOMAIN_LEN];

    len = 0;
    kind = ngx_icp_gate_domain_reduce(host, buf, &len);

    *domain_hash = ngx_icp_gate_hash(buf, len);

    ngx_icp_gate_domain_memo_add(host, hash, buf, len, *domain_hash, kind);

    if (ngx_icp_gate_domain_tail(host, buf, len)) {
        domain->data = host->data + host->len - len;
        domain->len = len;
        return kind;
    }

    return ngx_icp_gate_domain_copy(pool, buf, len, domain, kind);
}


static ngx_uint_t
ngx_icp_gate_domain_copy(ngx_pool_t *pool, u_char *name, size_t len,
    ngx_str_t *domain, ngx_uint_t kind)
{
    domain->data = ngx_pnalloc(pool, len);
    if (domain->data == NULL) {
        ngx_str_set(domain, "");
        return NGX_ICP_GATE_HOST_INVALID;
    }

    ngx_memcpy(domain->data, name, len);
    domain->len = len;

    return kind;
}


static ngx_uint_t
ngx_icp_gate_domain_tail(ngx_str_t *host, u_char *name, size_t len)
{
    return len <= host->len
           && ngx_memcmp(host->data + host->len - len, name, len) == 0;
}


static ngx_icp_gate_domain_memo_t *
ngx_icp_gate_domain_memo_find(ngx_str_t *host, uint32_t hash)
{
    ngx_uint_t                   i;
    ngx_icp_gate_domain_memo_t  *set, *m, entry;

    if (ngx_icp_gate_memo == NULL) {
        return NULL;
    }

    set = &ngx_icp_gate_memo[(hash % NGX_ICP_GATE_MEMO_SETS)
                             * NGX_ICP_GATE_MEMO_WAYS];

    for (i = 0; i < NGX_ICP_GATE_MEMO_WAYS; i++) {
        m = &set[i];

        if (m->hash != hash || m->host_len != host->len
            || !ngx_icp_gate_equal(m->data, host->data, host->len))
        {
            continue;
        }

        if (i == 0) {
            return m;
        }

        entry = *m;
        *m = set[i - 1];
        set[i - 1] = entry;

        return &set[i - 1];
    }

    return NULL;
}


static void
ngx_icp_gate_domain_memo_add(ngx_str_t *host, uint32_t hash, u_char *domain,
    size_t len, uint32_t domain_hash, ngx_uint_t kind)
{
    void                        *p;
    size_t                       at;
    ngx_uint_t                   i;
    ngx_icp_gate_domain_memo_t  *set, *m;

    if (host->len == 0 || host->len > NGX_ICP_GATE_MEMO_DATA) {
        return;
    }

    /* the domain is usually the host's own tail and takes no room */

    if (ngx_icp_gate_domain_tail(host, domain, len)) {
        at = host->len - len;

    } else if (host->len + len <= NGX_ICP_GATE_MEMO_DATA) {
        at = host->len;

    } else {
        return;
    }

    if (ngx_icp_gate_memo == NULL) {

        /*
         * calloc, not a zeroed memalign, so that only pages in use become
         * resident; aligned by hand so that no entry spans two cache lines
         */

        p = ngx_calloc(NGX_ICP_GATE_MEMO_SETS * NGX_ICP_GATE_MEMO_WAYS
                       * sizeof(ngx_icp_gate_domain_memo_t)
                       + sizeof(ngx_icp_gate_domain_memo_t), ngx_cycle->log);
        if (p == NULL) {
            return;
        }

        ngx_icp_gate_memo = (ngx_icp_gate_domain_memo_t *)
            ngx_align_ptr(p, sizeof(ngx_icp_gate_domain_memo_t));
    }

    set = &ngx_icp_gate_memo[(hash % NGX_ICP_GATE_MEMO_SETS)
                             * NGX_ICP_GATE_MEMO_WAYS];

    /* an empty way, else the bottom one */

    for (i = 0; i < NGX_ICP_GATE_MEMO_WAYS - 1; i++) {
        if (set[i].host_len == 0) {
            break;
        }
    }

    m = &set[i];

    m->hash = hash;
    m->domain_hash = domain_hash;
    m->host_len = (u_char) host->len;
    m->domain_len = (u_char) len;
    m->domain_at = (u_char) at;
    m->kind = (u_char) kind;

    ngx_memcpy(m->data, host->data, host->len);
    ngx_memcpy(m->data + at, domain, len);
}


static ngx_uint_t
ngx_icp_gate_domain_reduce(ngx_str_t *host, u_char *domain, size_t *domain_len)
{
    u_char      *p, *last, *colon, *label, *prev, *dot;
    size_t       len;
    ngx_uint_t   kind;
    u_char       buf[NGX_ICP_GATE_HOST_MAX + 1];

    if (host->len == 0) {
        return NGX_ICP_GATE_HOST_MISSING;
    }

    if (host->len > NGX_ICP_GATE_HOST_MAX) {
        return NGX_ICP_GATE_HOST_INVALID;
    }

    p = host->data;
    last = p + host->len;

    if (*p == '[') {
        return ngx_icp_gate_domain_bracketed(p, last);
    }

    colon = ngx_strlchr(p, last, ':');

    if (colon) {
        if (ngx_strlchr(colon + 1, last, ':')) {
            return ngx_icp_gate_domain_ipv6(p, last - p);
        }

        for (dot = colon + 1; dot < last; dot++) {
            if (*dot < '0' || *dot > '9') {
                return NGX_ICP_GATE_HOST_INVALID;
            }
        }

        last = colon;
    }

    len = last - p;

    if (len && p[len - 1] == '.') {
        len--;
    }

    if (len == 0) {
        return NGX_ICP_GATE_HOST_INVALID;
    }

    ngx_strlow(buf, p, len);
    buf[len] = '\0';

    kind = ngx_icp_gate_domain_to_ascii(buf, &len);
    if (kind != NGX_ICP_GATE_HOST_VALID) {
        return kind;
    }

    kind = ngx_icp_gate_domain_check_ldh(buf, len);
    if (kind != NGX_ICP_GATE_HOST_VALID) {
        return kind;
    }

    /*
     * scanning from the left, the first suffix that is public is the
     * longest one; the registrable domain is it and one more label
     */

    prev = NULL;
    label = buf;

    while (!psl_is_public_suffix2(ngx_icp_gate_psl, (char *) label,
                                  PSL_TYPE_ICANN))
    {
        dot = (u_char *) ngx_strchr(label, '.');
        if (dot == NULL) {
            return NGX_ICP_GATE_HOST_INVALID;
        }

        prev = label;
        label = dot + 1;
    }

    if (prev == NULL) {
        /* a bare public suffix: nobody can file for "com.cn" */
        return NGX_ICP_GATE_HOST_INVALID;
    }

    *domain_len = len - (prev - buf);
    ngx_memcpy(domain, prev, *domain_len);

    return NGX_ICP_GATE_HOST_VALID;
}


ngx_int_t
ngx_icp_gate_domain_from_url(ngx_str_t *url, ngx_str_t *host)
{
    u_char  *p, *last, *end, *at;

    host->len = 0;
    host->data = NULL;

    p = url->data;
    last = p + url->len;

    p = ngx_strlcasestrn(p, last, (u_char *) "://", 3 - 1);
    if (p == NULL) {
        return NGX_DECLINED;
    }

    p += 3;

    for (end = p; end < last; end++) {
        if (*end == '/' || *end == '?' || *end == '#') {
            break;
        }
    }

    /* the host follows the last "@" of the authority */

    for (at = end; at > p; at--) {
        if (at[-1] == '@') {
            p = at;
            break;
        }
    }

    /* without the port, as nginx keeps the HTTP host */

    if (p < end && *p == '[') {
        at = ngx_strlchr(p, end, ']');
        if (at) {
            end = at + 1;
        }

    } else {
        at = ngx_strlchr(p, end, ':');
        if (at) {
            end = at;
        }
    }

    host->data = p;
    host->len = end - p;

    return NGX_OK;
}


static ngx_uint_t
ngx_icp_gate_domain_bracketed(u_char *p, u_char *last)
{
    u_char  *close;

    close = ngx_strlchr(p, last, ']');
    if (close == NULL) {
        return NGX_ICP_GATE_HOST_INVALID;
    }

    return ngx_icp_gate_domain_ipv6(p + 1, close - p - 1);
}


static ngx_uint_t
ngx_icp_gate_domain_ipv6(u_char *p, size_t len)
{
    u_char  addr[16];

    if (ngx_inet6_addr(p, len, addr) == NGX_OK) {
        return NGX_ICP_GATE_HOST_IP_LITERAL;
    }

    return NGX_ICP_GATE_HOST_INVALID;
}


static ngx_uint_t
ngx_icp_gate_domain_to_ascii(u_char *buf, size_t *len)
{
    int      rc;
    char    *ascii;
    size_t   n;
    u_char  *p;

    for (p = buf; p < buf + *len; p++) {
        if (*p >= 0x80) {
            break;
        }
    }

    if (p == buf + *len) {
        return NGX_ICP_GATE_HOST_VALID;
    }

    rc = idn2_to_ascii_8z((char *) buf, &ascii,
                          IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK) {
        return NGX_ICP_GATE_HOST_INVALID;
    }

    n = ngx_strlen(ascii);

    /* IDNA maps "。" to "." so a trailing dot may appear only now */

    if (n && ascii[n - 1] == '.') {
        n--;
    }

    if (n == 0 || n > NGX_ICP_GATE_DOMAIN_LEN) {
        idn2_free(ascii);
        return NGX_ICP_GATE_HOST_INVALID;
    }

    ngx_memcpy(buf, ascii, n);
    buf[n] = '\0';
    *len = n;

    idn2_free(ascii);

    return NGX_ICP_GATE_HOST_VALID;
}


static ngx_uint_t
ngx_icp_gate_domain_check_ldh(u_char *name, size_t len)
{
    u_char      *p, *label, *last;
    ngx_uint_t   numeric;

    if (len > NGX_ICP_GATE_DOMAIN_LEN) {
        return NGX_ICP_GATE_HOST_INVALID;
    }

    last = name + len;
    label = name;
    numeric = 1;

    for (p = name; /* void */ ; p++) {

        if (p == last || *p == '.') {

            if (p == label || p - label > 63
                || *label == '-' || p[-1] == '-')
            {
                return NGX_ICP_GATE_HOST_INVALID;
            }

            if (p == last) {
                /*
                 * no top-level domain is numeric: "10.0.0.1", "1.2.3"
                 * and "0x7f.0.0.1" all are addresses to a resolver
                 */
                return numeric ? NGX_ICP_GATE_HOST_IP_LITERAL
                               : NGX_ICP_GATE_HOST_VALID;
            }

            label = p + 1;
            numeric = 1;
            continue;
        }

        if (*p >= '0' && *p <= '9') {
            continue;
        }

        numeric = 0;

        if ((*p >= 'a' && *p <= 'z') || *p == '-') {
            continue;
        }

        return NGX_ICP_GATE_HOST_INVALID;
    }
}
