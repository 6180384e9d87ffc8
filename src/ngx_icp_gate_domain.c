
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

#include "ngx_icp_gate.h"
#include "ngx_icp_gate_domain.h"


/* no valid name is longer; longer input is refused before any work */
#define NGX_ICP_GATE_HOST_MAX      1024

/* slots of the per-worker memo of hosts already reduced; a power of two */
#define NGX_ICP_GATE_MEMO_SIZE     1024


/*
 * The public suffix lookups cost several thousand instructions a host, as
 * much as the rest of a small request: each worker remembers the hosts it
 * has seen, direct-mapped by crc32, so a repeated host costs one compare.
 */

typedef struct {
    uint32_t                    hash;
    u_char                      host_len;
    u_char                      domain_len;
    u_char                      reason;
    u_char                      host[NGX_ICP_GATE_DOMAIN_LEN];
    u_char                      domain[NGX_ICP_GATE_DOMAIN_LEN];
} ngx_icp_gate_domain_memo_t;


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


ngx_uint_t
ngx_icp_gate_domain_registrable(ngx_pool_t *pool, ngx_str_t *host,
    ngx_str_t *domain)
{
    size_t                       len;
    uint32_t                     hash;
    ngx_uint_t                   reason;
    ngx_icp_gate_domain_memo_t  *m;
    u_char                       buf[NGX_ICP_GATE_DOMAIN_LEN];

    ngx_str_set(domain, "");

    m = NULL;

    if (host->len && host->len <= NGX_ICP_GATE_DOMAIN_LEN) {

        if (ngx_icp_gate_memo == NULL) {
            ngx_icp_gate_memo = ngx_calloc(
                        NGX_ICP_GATE_MEMO_SIZE
                        * sizeof(ngx_icp_gate_domain_memo_t), ngx_cycle->log);
        }

        if (ngx_icp_gate_memo) {
            hash = ngx_crc32_short(host->data, host->len);
            m = &ngx_icp_gate_memo[hash & (NGX_ICP_GATE_MEMO_SIZE - 1)];

            if (m->host_len == host->len && m->hash == hash
                && ngx_memcmp(m->host, host->data, host->len) == 0)
            {
                reason = m->reason;
                len = m->domain_len;
                ngx_memcpy(buf, m->domain, len);
                goto done;
            }

            m->hash = hash;
            m->host_len = 0;
        }
    }

    len = 0;
    reason = ngx_icp_gate_domain_reduce(host, buf, &len);

    if (m) {
        m->host_len = (u_char) host->len;
        m->domain_len = (u_char) len;
        m->reason = (u_char) reason;
        ngx_memcpy(m->host, host->data, host->len);
        ngx_memcpy(m->domain, buf, len);
    }

done:

    if (len) {
        domain->data = ngx_pnalloc(pool, len);
        if (domain->data == NULL) {
            ngx_str_set(domain, "");
            return NGX_ICP_GATE_REASON_INVALID_HOST;
        }

        ngx_memcpy(domain->data, buf, len);
        domain->len = len;
    }

    return reason;
}


static ngx_uint_t
ngx_icp_gate_domain_reduce(ngx_str_t *host, u_char *domain, size_t *domain_len)
{
    u_char      *p, *last, *colon, *label, *prev, *dot;
    size_t       len;
    ngx_uint_t   reason;
    u_char       buf[NGX_ICP_GATE_HOST_MAX + 1];

    if (host->len == 0) {
        return NGX_ICP_GATE_REASON_NO_HOST;
    }

    if (host->len > NGX_ICP_GATE_HOST_MAX) {
        return NGX_ICP_GATE_REASON_INVALID_HOST;
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
                return NGX_ICP_GATE_REASON_INVALID_HOST;
            }
        }

        last = colon;
    }

    len = last - p;

    if (len && p[len - 1] == '.') {
        len--;
    }

    if (len == 0) {
        return NGX_ICP_GATE_REASON_INVALID_HOST;
    }

    ngx_strlow(buf, p, len);
    buf[len] = '\0';

    reason = ngx_icp_gate_domain_to_ascii(buf, &len);
    if (reason != NGX_ICP_GATE_REASON_NONE) {
        return reason;
    }

    reason = ngx_icp_gate_domain_check_ldh(buf, len);
    if (reason != NGX_ICP_GATE_REASON_NONE) {
        return reason;
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
            return NGX_ICP_GATE_REASON_INVALID_HOST;
        }

        prev = label;
        label = dot + 1;
    }

    if (prev == NULL) {
        /* a bare public suffix: nobody can file for "com.cn" */
        return NGX_ICP_GATE_REASON_INVALID_HOST;
    }

    *domain_len = len - (prev - buf);
    ngx_memcpy(domain, prev, *domain_len);

    return NGX_ICP_GATE_REASON_NONE;
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
        return NGX_ICP_GATE_REASON_INVALID_HOST;
    }

    return ngx_icp_gate_domain_ipv6(p + 1, close - p - 1);
}


static ngx_uint_t
ngx_icp_gate_domain_ipv6(u_char *p, size_t len)
{
    u_char  addr[16];

    if (ngx_inet6_addr(p, len, addr) == NGX_OK) {
        return NGX_ICP_GATE_REASON_IP_LITERAL;
    }

    return NGX_ICP_GATE_REASON_INVALID_HOST;
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
        return NGX_ICP_GATE_REASON_NONE;
    }

    rc = idn2_to_ascii_8z((char *) buf, &ascii,
                          IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK) {
        return NGX_ICP_GATE_REASON_INVALID_HOST;
    }

    n = ngx_strlen(ascii);

    /* IDNA maps "。" to "." so a trailing dot may appear only now */

    if (n && ascii[n - 1] == '.') {
        n--;
    }

    if (n == 0 || n > NGX_ICP_GATE_DOMAIN_LEN) {
        idn2_free(ascii);
        return NGX_ICP_GATE_REASON_INVALID_HOST;
    }

    ngx_memcpy(buf, ascii, n);
    buf[n] = '\0';
    *len = n;

    idn2_free(ascii);

    return NGX_ICP_GATE_REASON_NONE;
}


static ngx_uint_t
ngx_icp_gate_domain_check_ldh(u_char *name, size_t len)
{
    u_char      *p, *label, *last;
    ngx_uint_t   numeric;

    if (len > NGX_ICP_GATE_DOMAIN_LEN) {
        return NGX_ICP_GATE_REASON_INVALID_HOST;
    }

    last = name + len;
    label = name;
    numeric = 1;

    for (p = name; /* void */ ; p++) {

        if (p == last || *p == '.') {

            if (p == label || p - label > 63
                || *label == '-' || p[-1] == '-')
            {
                return NGX_ICP_GATE_REASON_INVALID_HOST;
            }

            if (p == last) {
                /*
                 * no top-level domain is numeric: "10.0.0.1", "1.2.3"
                 * and "0x7f.0.0.1" all are addresses to a resolver
                 */
                return numeric ? NGX_ICP_GATE_REASON_IP_LITERAL
                               : NGX_ICP_GATE_REASON_NONE;
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

        return NGX_ICP_GATE_REASON_INVALID_HOST;
    }
}
