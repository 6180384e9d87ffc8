
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
 * The list libpsl matches against, read as a file so that its rules can be
 * looked at too (Debian's publicsuffix package).  Without it, libpsl's own
 * copy is used as it stands.
 */
#ifndef NGX_ICP_GATE_PSL_FILE
#define NGX_ICP_GATE_PSL_FILE                                                 \
    "/usr/share/publicsuffix/public_suffix_list.dat"
#endif

/* the list is about 250 KB; a file many times that is not it */
#define NGX_ICP_GATE_PSL_FILE_MAX  (16 * 1024 * 1024)

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


static ngx_int_t ngx_icp_gate_domain_load(ngx_log_t *log);
static ngx_int_t ngx_icp_gate_domain_rules(u_char *text, size_t len,
    ngx_log_t *log);
static ngx_int_t ngx_icp_gate_domain_add_parent(ngx_array_t *parents,
    ngx_str_t *name, ngx_log_t *log);
static ngx_uint_t ngx_icp_gate_domain_rule_known(ngx_array_t *rules,
    u_char *name, size_t len);
static ngx_uint_t ngx_icp_gate_domain_public(u_char *suffix, size_t len,
    ngx_uint_t whole);
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
static ngx_uint_t ngx_icp_gate_domain_ipv4_form(u_char *label, u_char *last);


static const psl_ctx_t           *ngx_icp_gate_psl;
static ngx_icp_gate_domain_memo_t  *ngx_icp_gate_memo;
static void                        *ngx_icp_gate_memo_block;  /* as got */

/*
 * Labels of the list's deepest ICANN rule ("*.kobe.jp", "!city.kobe.jp"
 * and "pvt.k12.ma.us" have 3, 3 and 4): a suffix of a host with more
 * labels matches no rule.  0: not known, every label is looked at.
 */
static ngx_uint_t                   ngx_icp_gate_psl_depth;

/*
 * Names that only a wildcard rule names, as "*.kobe.jp" does "kobe.jp".
 * libpsl counts them as public suffixes; the list's own algorithm does
 * not for such a host itself: only "jp" matches "kobe.jp", which is a
 * registrable domain.
 */
static ngx_array_t                 *ngx_icp_gate_psl_parents;


ngx_int_t
ngx_icp_gate_domain_init(ngx_log_t *log)
{
    if (ngx_icp_gate_psl) {
        return NGX_OK;
    }

    if (ngx_icp_gate_domain_load(log) == NGX_OK) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "icp_gate: no public suffix list in \"%s\", using "
                  "libpsl's: every label of a host is looked at, and the "
                  "parent of a wildcard rule counts as a public suffix",
                  NGX_ICP_GATE_PSL_FILE);

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
 * The file is read once, and libpsl parses the very bytes whose rules give
 * the depth and the wildcards' parents: a list replaced meanwhile cannot
 * make the two disagree.
 */

static ngx_int_t
ngx_icp_gate_domain_load(ngx_log_t *log)
{
    FILE             *fp;
    off_t             size;
    u_char           *text;
    ssize_t           n, got;
    ngx_fd_t          fd;
    ngx_int_t         rc;
    psl_ctx_t        *psl;
    ngx_file_info_t   fi;

    fd = ngx_open_file(NGX_ICP_GATE_PSL_FILE, NGX_FILE_RDONLY, NGX_FILE_OPEN,
                       0);
    if (fd == NGX_INVALID_FILE) {
        return NGX_DECLINED;
    }

    rc = NGX_DECLINED;
    text = NULL;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        goto done;
    }

    size = ngx_file_size(&fi);

    if (size == 0 || size > NGX_ICP_GATE_PSL_FILE_MAX) {
        goto done;
    }

    text = ngx_alloc(size, log);
    if (text == NULL) {
        goto done;
    }

    for (n = 0; n < size; n += got) {
        got = ngx_read_fd(fd, text + n, size - n);
        if (got <= 0) {
            goto done;
        }
    }

    fp = fmemopen(text, size, "r");
    if (fp == NULL) {
        goto done;
    }

    psl = psl_load_fp(fp);
    fclose(fp);

    if (psl == NULL) {
        goto done;
    }

    if (ngx_icp_gate_domain_rules(text, size, log) != NGX_OK) {
        psl_free(psl);
        goto done;
    }

    ngx_icp_gate_psl = psl;
    rc = NGX_OK;

done:

    if (text) {
        ngx_free(text);
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed",
                      NGX_ICP_GATE_PSL_FILE);
    }

    return rc;
}


/*
 * The ICANN section as the list's format has it: a rule is the first word
 * of a line, "//" starts a comment.  The depth counts the labels of every
 * rule as written ("!" and "*" rules match as many labels as they have).
 */

static ngx_int_t
ngx_icp_gate_domain_rules(u_char *text, size_t len, ngx_log_t *log)
{
    u_char       *p, *q, *last, *eol, *end, *star;
    size_t        n;
    ngx_int_t     rc;
    ngx_str_t    *rule, *wild;
    ngx_uint_t    i, icann, labels, depth;
    ngx_pool_t   *pool, *keep;
    ngx_array_t   rules, wildcards, *parents;

    static u_char  begin[] = "===BEGIN ICANN DOMAINS===";
    static u_char  stop[] = "===END ICANN DOMAINS===";

    /* what is kept lives as long as the process: no cycle's pool does */

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);
    keep = ngx_create_pool(1024, log);

    rc = NGX_ERROR;

    if (pool == NULL || keep == NULL) {
        goto done;
    }

    if (ngx_array_init(&rules, pool, 8192, sizeof(ngx_str_t)) != NGX_OK
        || ngx_array_init(&wildcards, pool, 16, sizeof(ngx_str_t)) != NGX_OK)
    {
        goto done;
    }

    icann = 0;
    depth = 0;
    last = text + len;

    for (p = text; p < last; p = (eol < last) ? eol + 1 : last) {

        eol = ngx_strlchr(p, last, LF);
        if (eol == NULL) {
            eol = last;
        }

        while (p < eol && (*p == ' ' || *p == '\t')) {
            p++;
        }

        for (end = p; end < eol; end++) {
            if (*end == ' ' || *end == '\t' || *end == CR) {
                break;
            }
        }

        if (end - p >= 2 && p[0] == '/' && p[1] == '/') {

            if (ngx_strlcasestrn(p, eol, begin, sizeof(begin) - 2)) {
                icann = 1;

            } else if (ngx_strlcasestrn(p, eol, stop, sizeof(stop) - 2)) {
                icann = 0;
            }

            continue;
        }

        if (!icann || p == end) {
            continue;
        }

        rule = ngx_array_push(&rules);
        if (rule == NULL) {
            goto done;
        }

        rule->data = p;
        rule->len = end - p;

        for (labels = 1, q = p; q < end; q++) {
            labels += (*q == '.');
        }

        depth = ngx_max(depth, labels);

        /* a wildcard's parent of one label is public by the "*" rule */

        if (end - p > 2 && p[0] == '*' && p[1] == '.'
            && ngx_strlchr(p + 2, end, '.'))
        {
            wild = ngx_array_push(&wildcards);
            if (wild == NULL) {
                goto done;
            }

            wild->data = p + 2;
            wild->len = end - p - 2;
        }
    }

    if (depth == 0) {
        /* no ICANN section: not the list this code knows */
        rc = NGX_DECLINED;
        goto done;
    }

    parents = ngx_array_create(keep, 4, sizeof(ngx_str_t));
    if (parents == NULL) {
        goto done;
    }

    /*
     * "kobe.jp" of "*.kobe.jp", unless a rule names it ("kobe.jp") or
     * matches it ("*.jp"); a few wildcards, so a scan of the rules for
     * each costs less than building a table
     */

    wild = wildcards.elts;

    for (i = 0; i < wildcards.nelts; i++) {

        if (ngx_icp_gate_domain_rule_known(&rules, wild[i].data, wild[i].len))
        {
            continue;
        }

        q = ngx_strlchr(wild[i].data, wild[i].data + wild[i].len, '.');
        n = wild[i].data + wild[i].len - q + 1;

        star = ngx_pnalloc(pool, n);
        if (star == NULL) {
            goto done;
        }

        star[0] = '*';
        ngx_memcpy(star + 1, q, n - 1);

        if (ngx_icp_gate_domain_rule_known(&rules, star, n)) {
            continue;
        }

        if (ngx_icp_gate_domain_add_parent(parents, &wild[i], log) != NGX_OK) {
            goto done;
        }
    }

    ngx_icp_gate_psl_depth = depth;
    ngx_icp_gate_psl_parents = parents;
    keep = NULL;
    rc = NGX_OK;

done:

    if (pool) {
        ngx_destroy_pool(pool);
    }

    if (keep) {
        ngx_destroy_pool(keep);
    }

    return rc;
}


static ngx_uint_t
ngx_icp_gate_domain_rule_known(ngx_array_t *rules, u_char *name, size_t len)
{
    ngx_str_t   *rule;
    ngx_uint_t   i;

    rule = rules->elts;

    for (i = 0; i < rules->nelts; i++) {
        if (rule[i].len == len && ngx_memcmp(rule[i].data, name, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/* as hosts are compared: in punycode, should the list name one in UTF-8 */

static ngx_int_t
ngx_icp_gate_domain_add_parent(ngx_array_t *parents, ngx_str_t *name,
    ngx_log_t *log)
{
    int          rc;
    char        *ascii;
    size_t       i;
    ngx_str_t   *parent, punycode;
    u_char       z[NGX_ICP_GATE_DOMAIN_LEN + 1];

    for (i = 0; i < name->len; i++) {
        if (name->data[i] >= 0x80) {
            break;
        }
    }

    ascii = NULL;

    if (i < name->len) {

        if (name->len > NGX_ICP_GATE_DOMAIN_LEN) {
            /* longer than any host that could match it */
            return NGX_OK;
        }

        ngx_cpystrn(z, name->data, name->len + 1);

        rc = idn2_to_ascii_8z((char *) z, &ascii,
                              IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
        if (rc != IDN2_OK) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "icp_gate: public suffix rule \"*.%V\" skipped: "
                          "%s", name, idn2_strerror(rc));
            return NGX_OK;
        }

        punycode.data = (u_char *) ascii;
        punycode.len = ngx_strlen(ascii);
        name = &punycode;
    }

    parent = ngx_array_push(parents);

    if (parent) {
        parent->len = name->len;
        parent->data = ngx_pstrdup(parents->pool, name);
    }

    if (ascii) {
        idn2_free(ascii);
    }

    return (parent && parent->data) ? NGX_OK : NGX_ERROR;
}


/*
 * A public suffix as the list's algorithm has it: libpsl's answer, except
 * for a host that only a wildcard rule names.  Reached from a longer
 * suffix that libpsl did not call public, "kobe.jp" is public: "*.kobe.jp"
 * matches every "x.kobe.jp" but an exception's, and an exception rule
 * ("!city.kobe.jp") makes its parent the public suffix.
 */

static ngx_uint_t
ngx_icp_gate_domain_public(u_char *suffix, size_t len, ngx_uint_t whole)
{
    ngx_str_t   *name;
    ngx_uint_t   i;

    if (!psl_is_public_suffix2(ngx_icp_gate_psl, (char *) suffix,
                               PSL_TYPE_ICANN))
    {
        return 0;
    }

    if (!whole || ngx_icp_gate_psl_parents == NULL) {
        return 1;
    }

    name = ngx_icp_gate_psl_parents->elts;

    for (i = 0; i < ngx_icp_gate_psl_parents->nelts; i++) {
        if (name[i].len == len && ngx_memcmp(name[i].data, suffix, len) == 0) {
            return 0;
        }
    }

    return 1;
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

    /* no host may have no data either: no arithmetic on it */

    if (host->len == 0) {
        ngx_str_set(domain, "");
        *domain_hash = ngx_icp_gate_hash(domain->data, 0);
        return NGX_ICP_GATE_HOST_MISSING;
    }

    /* a host too long for the memo is not even hashed */

    if (host->len > NGX_ICP_GATE_MEMO_DATA) {
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


/*
 * The memo goes: the master that reduced a file's hosts, with no zone's
 * key yet, leaves the workers none of its hashes
 */

void
ngx_icp_gate_domain_forget(void)
{
    void  *p;

    if (ngx_icp_gate_memo == NULL) {
        return;
    }

    p = ngx_icp_gate_memo_block;

    ngx_icp_gate_memo = NULL;
    ngx_icp_gate_memo_block = NULL;

    ngx_free(p);
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

        ngx_icp_gate_memo_block = p;
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
    ngx_uint_t   kind, n;
    u_char       buf[NGX_ICP_GATE_HOST_MAX + 1];

    if (host->len == 0) {
        return NGX_ICP_GATE_HOST_MISSING;
    }

    if (host->len > NGX_ICP_GATE_HOST_MAX) {
        return NGX_ICP_GATE_HOST_INVALID;
    }

    p = host->data;
    last = p + host->len;

    /*
     * control bytes belong to no name; a NUL would end it early for
     * libidn2 and libpsl, which would then judge a part of the host
     */

    for (dot = p; dot < last; dot++) {
        if (*dot < 0x20 || *dot == 0x7f) {
            return NGX_ICP_GATE_HOST_INVALID;
        }
    }

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
     * longest one; the registrable domain is it and one more label.  A
     * suffix longer than the deepest rule matches none, so the scan starts
     * at the label before the deepest rule's: a host of 127 labels costs
     * no more lookups than one of 5
     */

    prev = NULL;
    label = buf;

    if (ngx_icp_gate_psl_depth) {
        for (p = buf + len - 1, n = 0; p > buf; p--) {
            if (*p == '.' && ++n > ngx_icp_gate_psl_depth) {
                label = p + 1;
                break;
            }
        }
    }

    while (!ngx_icp_gate_domain_public(label, len - (label - buf),
                                       label == buf))
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
                return (numeric || ngx_icp_gate_domain_ipv4_form(label, p))
                       ? NGX_ICP_GATE_HOST_IP_LITERAL
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


/*
 * The WHATWG URL host parser takes a name whose last label is "0x" and hex
 * digits, none included, for an IPv4 address, valid or not ("1.0x2",
 * "0x7f000001", "a.0x"), and so do browsers.  Lower case only: the name
 * was lowered.
 */

static ngx_uint_t
ngx_icp_gate_domain_ipv4_form(u_char *label, u_char *last)
{
    u_char  *p;

    if (last - label < 2 || label[0] != '0' || label[1] != 'x') {
        return 0;
    }

    for (p = label + 2; p < last; p++) {
        if ((*p < '0' || *p > '9') && (*p < 'a' || *p > 'f')) {
            return 0;
        }
    }

    return 1;
}
