
/*
 * Copyright (C) icp_gate authors
 *
 * A list of filing verdicts, as icp-gate-import and icp_gate_file read it.
 * Each line's host is reduced by the gate's own code, so that a verdict
 * lands on the very domain a request looks up.  Lines that name one
 * registrable domain give it one verdict, the most restrictive of theirs,
 * whatever their order: the list is read whole before it is used.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <idn2.h>
#include <jansson.h>

#include "ngx_icp_gate_verdict.h"
#include "ngx_icp_gate_domain.h"
#include "ngx_icp_gate_filings.h"


/* bytes of a long line kept to be shown when it is refused */
#define NGX_ICP_GATE_FILINGS_SHOW  60

/* what one read asks of a file */
#define NGX_ICP_GATE_FILINGS_READ  65536


/* a line's fields, as written */
typedef struct {
    ngx_str_t                   host;
    ngx_str_t                   status;
    ngx_str_t                   icp;
    ngx_str_t                   region;
} ngx_icp_gate_filings_record_t;


static ngx_int_t ngx_icp_gate_filings_line(ngx_icp_gate_filings_t *fs,
    ngx_str_t *line);
static char *ngx_icp_gate_filings_csv(u_char *line, size_t len,
    ngx_icp_gate_filings_record_t *rec);
static char *ngx_icp_gate_filings_json(u_char *line, size_t len,
    ngx_icp_gate_filings_record_t *rec, ngx_pool_t *pool);
static char *ngx_icp_gate_filings_check(ngx_icp_gate_filings_record_t *rec,
    ngx_pool_t *pool, ngx_icp_gate_filing_t *d);
static ngx_uint_t ngx_icp_gate_filings_subdomain(ngx_str_t *host,
    ngx_str_t *domain, ngx_pool_t *pool);
static ngx_int_t ngx_icp_gate_filings_merge(ngx_icp_gate_filings_t *fs,
    ngx_icp_gate_filing_t *d);
static ngx_int_t ngx_icp_gate_filings_keep(ngx_icp_gate_filings_t *fs,
    ngx_icp_gate_filing_t *to, ngx_icp_gate_filing_t *from);
static ngx_int_t ngx_icp_gate_filings_grow(ngx_icp_gate_filings_t *fs);
static void ngx_icp_gate_filings_skip(ngx_icp_gate_filings_t *fs,
    ngx_uint_t file, ngx_uint_t line, u_char *text, size_t len, char *why);


ngx_int_t
ngx_icp_gate_filings_init(ngx_icp_gate_filings_t *fs, ngx_log_t *log)
{
    ngx_memzero(fs, sizeof(ngx_icp_gate_filings_t));

    fs->log = log;

    fs->start = ngx_alloc(NGX_ICP_GATE_FILINGS_LINE_MAX + 1
                          + NGX_ICP_GATE_FILINGS_READ, log);
    fs->text = ngx_create_pool(65536, log);
    fs->scratch = ngx_create_pool(16384, log);

    if (fs->start == NULL || fs->text == NULL || fs->scratch == NULL
        || ngx_icp_gate_filings_grow(fs) != NGX_OK)
    {
        ngx_icp_gate_filings_free(fs);
        return NGX_ERROR;
    }

    fs->end = fs->start + NGX_ICP_GATE_FILINGS_LINE_MAX + 1
              + NGX_ICP_GATE_FILINGS_READ;

    return NGX_OK;
}


void
ngx_icp_gate_filings_free(ngx_icp_gate_filings_t *fs)
{
    ngx_free(fs->start);
    ngx_free(fs->domains);
    ngx_free(fs->slots);

    if (fs->text) {
        ngx_destroy_pool(fs->text);
    }

    if (fs->scratch) {
        ngx_destroy_pool(fs->scratch);
    }

    fs->start = NULL;
    fs->domains = NULL;
    fs->slots = NULL;
    fs->text = NULL;
    fs->scratch = NULL;
}


/*
 * Every line of "in", the file-th read: NGX_ERROR when it cannot be read
 * to its end or memory runs out (fs->failure says which), and then the
 * verdicts read are not the file's
 */

ngx_int_t
ngx_icp_gate_filings_read(ngx_icp_gate_filings_t *fs, FILE *in,
    ngx_uint_t file)
{
    u_char                         *p, *end;
    char                           *why;
    ngx_int_t                       rc;
    ngx_str_t                       text;
    ngx_uint_t                      line, json;
    ngx_icp_gate_filing_t           d;
    ngx_icp_gate_filings_record_t   rec;

    fs->in = in;
    fs->pos = fs->start;
    fs->last = fs->start;
    fs->eof = 0;

    for (line = 1; /* void */ ; line++) {

        rc = ngx_icp_gate_filings_line(fs, &text);

        if (rc == NGX_DONE) {
            return NGX_OK;
        }

        if (rc == NGX_ERROR) {
            fs->failure = strerror(errno);
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            fs->lines++;
            ngx_icp_gate_filings_skip(fs, file, line, text.data, text.len,
                                      "longer than 65535 bytes");
            continue;
        }

        p = text.data;
        end = p + text.len;

        while (end > p && (end[-1] == '\r' || end[-1] == ' '
                           || end[-1] == '\t'))
        {
            end--;
        }

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        /* blank lines and comments are not counted */

        if (p == end || *p == '#') {
            continue;
        }

        fs->lines++;

        if (fs->lines % 4096 == 0) {
            ngx_reset_pool(fs->scratch);
        }

        /* a NUL would end the line early for the libraries that read it */

        if (ngx_strlchr(p, end, '\0')) {
            ngx_icp_gate_filings_skip(fs, file, line, p, end - p,
                                      "a NUL byte");
            continue;
        }

        json = fs->format ? (fs->format == NGX_ICP_GATE_FILINGS_JSONL)
                          : (*p == '{' || *p == '[');

        if (json) {
            why = ngx_icp_gate_filings_json(p, end - p, &rec, fs->scratch);

        } else {
            why = ngx_icp_gate_filings_csv(p, end - p, &rec);

            /* a header line */

            if (why == NULL && line == 1 && rec.host.len == 6
                && ngx_strncasecmp(rec.host.data, (u_char *) "domain", 6)
                   == 0)
            {
                fs->lines--;
                continue;
            }
        }

        if (why == NULL) {
            why = ngx_icp_gate_filings_check(&rec, fs->scratch, &d);
        }

        if (why) {
            ngx_icp_gate_filings_skip(fs, file, line, p, end - p, why);
            continue;
        }

        d.file = (uint32_t) file;
        d.line = (uint32_t) line;

        if (ngx_icp_gate_filings_merge(fs, &d) != NGX_OK) {
            fs->failure = "out of memory";
            return NGX_ERROR;
        }
    }
}


static void
ngx_icp_gate_filings_skip(ngx_icp_gate_filings_t *fs, ngx_uint_t file,
    ngx_uint_t line, u_char *text, size_t len, char *why)
{
    if (fs->skip) {
        fs->skip(fs, file, line, text, len, why);
    }

    fs->skipped++;
}


/*
 * NGX_OK: the next line, whole, without its newline, whatever bytes it
 * holds; NGX_DECLINED: a line longer than NGX_ICP_GATE_FILINGS_LINE_MAX,
 * read to its end, its first bytes and its length in *line; NGX_DONE: no
 * more lines
 */

static ngx_int_t
ngx_icp_gate_filings_line(ngx_icp_gate_filings_t *fs, ngx_str_t *line)
{
    size_t   n, len;
    u_char  *nl;

    len = 0;

    for ( ;; ) {
        nl = ngx_strlchr(fs->pos, fs->last, '\n');

        if (nl || (fs->eof && fs->pos < fs->last)) {
            if (nl == NULL) {
                nl = fs->last;
            }

            if (len) {
                /* the end of a line too long to keep */
                line->data = fs->head;
                line->len = len + (nl - fs->pos);
                fs->pos = (nl < fs->last) ? nl + 1 : nl;
                return NGX_DECLINED;
            }

            line->data = fs->pos;
            line->len = nl - fs->pos;
            fs->pos = (nl < fs->last) ? nl + 1 : nl;

            if (line->len > NGX_ICP_GATE_FILINGS_LINE_MAX) {
                ngx_memcpy(fs->head, line->data, NGX_ICP_GATE_FILINGS_SHOW);
                line->data = fs->head;
                return NGX_DECLINED;
            }

            return NGX_OK;
        }

        if (fs->eof) {
            if (len) {
                line->data = fs->head;
                line->len = len;
                return NGX_DECLINED;
            }

            return NGX_DONE;
        }

        n = fs->last - fs->pos;

        if (len == 0 && n > NGX_ICP_GATE_FILINGS_LINE_MAX) {
            /* too long: its first bytes are kept to be shown, not more */
            ngx_memcpy(fs->head, fs->pos, NGX_ICP_GATE_FILINGS_SHOW);
        }

        if (len || n > NGX_ICP_GATE_FILINGS_LINE_MAX) {
            len += n;
            n = 0;
        }

        /* what is left of the line moves to the start, more is read */

        ngx_memmove(fs->start, fs->pos, n);
        fs->pos = fs->start;
        fs->last = fs->start + n;

        n = fread(fs->last, 1, fs->end - fs->last, fs->in);

        if (n == 0) {
            if (ferror(fs->in)) {
                return NGX_ERROR;
            }

            fs->eof = 1;
        }

        fs->last += n;
    }
}


/* domain,status[,icp][,region]: a field may be quoted, "" inside it */

static char *
ngx_icp_gate_filings_csv(u_char *line, size_t len,
    ngx_icp_gate_filings_record_t *rec)
{
    u_char      *p, *end, *dst;
    ngx_str_t   *fields[4];
    ngx_uint_t   i;

    ngx_memzero(rec, sizeof(ngx_icp_gate_filings_record_t));

    fields[0] = &rec->host;
    fields[1] = &rec->status;
    fields[2] = &rec->icp;
    fields[3] = &rec->region;

    p = line;
    end = line + len;

    for (i = 0; /* void */ ; i++) {

        if (i == 4) {
            return "more than four fields (domain,status,icp,region)";
        }

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        fields[i]->data = p;

        if (p < end && *p == '"') {

            /* unquoted in place: the text only gets shorter */

            dst = ++p;
            fields[i]->data = dst;

            for ( ;; ) {
                if (p == end) {
                    return "a quoted field is not closed";
                }

                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        *dst++ = '"';
                        p += 2;
                        continue;
                    }

                    p++;
                    break;
                }

                *dst++ = *p++;
            }

            fields[i]->len = dst - fields[i]->data;

            while (p < end && (*p == ' ' || *p == '\t')) {
                p++;
            }

            if (p < end && *p != ',') {
                return "text after a quoted field";
            }

        } else {
            while (p < end && *p != ',') {
                p++;
            }

            fields[i]->len = p - fields[i]->data;

            while (fields[i]->len
                   && (fields[i]->data[fields[i]->len - 1] == ' '
                       || fields[i]->data[fields[i]->len - 1] == '\t'))
            {
                fields[i]->len--;
            }
        }

        if (p == end) {
            break;
        }

        p++;    /* the comma */
    }

    return NULL;
}


/* {"domain": "...", "status": "...", "icp": "...", "region": "..."} */

static char *
ngx_icp_gate_filings_json(u_char *line, size_t len,
    ngx_icp_gate_filings_record_t *rec, ngx_pool_t *pool)
{
    char         *why;
    json_t       *root, *f;
    ngx_str_t    *fields[4];
    ngx_uint_t    i;
    json_error_t  err;

    static char  *names[] = { "domain", "status", "icp", "region" };

    ngx_memzero(rec, sizeof(ngx_icp_gate_filings_record_t));

    fields[0] = &rec->host;
    fields[1] = &rec->status;
    fields[2] = &rec->icp;
    fields[3] = &rec->region;

    root = json_loadb((char *) line, len, 0, &err);
    if (root == NULL) {
        return "not JSON";
    }

    why = NULL;

    if (!json_is_object(root)) {
        why = "not a JSON object";
        goto done;
    }

    for (i = 0; i < 4; i++) {
        f = json_object_get(root, names[i]);

        if (f == NULL || json_is_null(f)) {
            continue;
        }

        if (!json_is_string(f)) {
            why = (i == 0) ? "\"domain\" is not a string"
                           : "a field is not a string";
            goto done;
        }

        fields[i]->len = json_string_length(f);
        fields[i]->data = ngx_pnalloc(pool, fields[i]->len + 1);

        if (fields[i]->data == NULL) {
            why = "out of memory";
            goto done;
        }

        ngx_memcpy(fields[i]->data, json_string_value(f), fields[i]->len);
    }

done:

    json_decref(root);

    return why;
}


/* NULL: a record the gate can use, its registrable domain's verdict in *d */

static char *
ngx_icp_gate_filings_check(ngx_icp_gate_filings_record_t *rec,
    ngx_pool_t *pool, ngx_icp_gate_filing_t *d)
{
    uint32_t                hash;
    ngx_str_t               domain;
    ngx_icp_gate_verdict_t  v;

    ngx_memzero(d, sizeof(ngx_icp_gate_filing_t));

    if (rec->host.len == 0) {
        return "no domain";
    }

    d->status = ngx_icp_gate_verdict_name(ngx_icp_gate_status_names,
                                          rec->status.data, rec->status.len);

    if (d->status == NGX_ICP_GATE_STATUS_NONE) {
        return "status is none of filed, pending, revoked, unfiled";
    }

    if (rec->region.len) {
        d->region = ngx_icp_gate_verdict_name(ngx_icp_gate_region_names,
                                              rec->region.data,
                                              rec->region.len);

        if (d->region == NGX_ICP_GATE_REGION_NONE) {
            return "region is none of mainland, global, overseas";
        }
    }

    if (rec->icp.len) {
        ngx_icp_gate_verdict_set_icp(&v, rec->icp.data, rec->icp.len);

        if (v.icp_len == 0) {
            return "the filing number is longer than 95 bytes or has "
                   "control characters";
        }

        d->icp = rec->icp.data;
        d->icp_len = (u_char) rec->icp.len;
    }

    switch (ngx_icp_gate_domain_registrable(pool, &rec->host, &domain, &hash))
    {
    case NGX_ICP_GATE_HOST_VALID:
        break;

    case NGX_ICP_GATE_HOST_IP_LITERAL:
        return "an IP address, not a domain";

    default:
        return "not a domain the gate can look up (a public suffix, bad "
               "characters or labels, or too long)";
    }

    d->domain = domain.data;
    d->domain_len = (u_char) domain.len;
    d->hash = hash;
    d->subdomain = ngx_icp_gate_filings_subdomain(&rec->host, &domain, pool);

    return NULL;
}


/*
 * Whether the host names a subdomain of its registrable domain: it has
 * more labels, counted in the name the gate makes of it (IDNA maps "。"
 * and others to a dot; no port, no trailing dot)
 */

static ngx_uint_t
ngx_icp_gate_filings_subdomain(ngx_str_t *host, ngx_str_t *domain,
    ngx_pool_t *pool)
{
    char        *ascii;
    u_char      *p, *last, *z;
    ngx_uint_t   labels, n;

    p = host->data;
    last = ngx_strlchr(p, p + host->len, ':');

    if (last == NULL) {
        last = p + host->len;
    }

    ascii = NULL;

    for (z = p; z < last; z++) {
        if (*z >= 0x80) {
            break;
        }
    }

    if (z < last) {
        z = ngx_pnalloc(pool, last - p + 1);
        if (z == NULL) {
            return 0;
        }

        /* as the gate asks libidn2 */

        ngx_strlow(z, p, last - p);
        z[last - p] = '\0';

        if (idn2_to_ascii_8z((char *) z, &ascii,
                             IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL)
            != IDN2_OK)
        {
            return 0;
        }

        p = (u_char *) ascii;
        last = p + ngx_strlen(ascii);
    }

    if (last > p && last[-1] == '.') {
        last--;
    }

    for (labels = 1; p < last; p++) {
        labels += (*p == '.');
    }

    for (n = 1, p = domain->data; p < domain->data + domain->len; p++) {
        n += (*p == '.');
    }

    if (ascii) {
        idn2_free(ascii);
    }

    return labels > n;
}


/*
 * A line's verdict joins its domain's: the first line of a domain gives
 * it, a line of another verdict is a conflict, explained, and replaces
 * it only if it weighs more
 */

static ngx_int_t
ngx_icp_gate_filings_merge(ngx_icp_gate_filings_t *fs,
    ngx_icp_gate_filing_t *d)
{
    ngx_uint_t              i, heavier;
    ngx_icp_gate_filing_t  *kept;

    for (i = d->hash & fs->mask; fs->slots[i]; i = (i + 1) & fs->mask) {

        /* the hash in the slot: no look at another domain's entry */

        if (fs->slots[i] >> 32 != d->hash) {
            continue;
        }

        kept = &fs->domains[(uint32_t) fs->slots[i] - 1];

        if (kept->domain_len != d->domain_len
            || ngx_memcmp(kept->domain, d->domain, d->domain_len) != 0)
        {
            continue;
        }

        if (kept->status == d->status && kept->region == d->region
            && kept->icp_len == d->icp_len
            && ngx_memcmp(kept->icp, d->icp, d->icp_len) == 0)
        {
            return NGX_OK;
        }

        if (!kept->conflict) {
            kept->conflict = 1;
            fs->conflicts++;
        }

        heavier = (ngx_icp_gate_filings_weight(d)
                   > ngx_icp_gate_filings_weight(kept));

        if (fs->conflict) {
            fs->conflict(fs, d, kept, heavier);
        }

        if (!heavier) {
            return NGX_OK;
        }

        d->conflict = 1;

        /* the name is kept: it is the same */

        d->domain = kept->domain;

        return ngx_icp_gate_filings_keep(fs, kept, d);
    }

    if (fs->n == fs->size) {
        if (ngx_icp_gate_filings_grow(fs) != NGX_OK) {
            return NGX_ERROR;
        }

        for (i = d->hash & fs->mask; fs->slots[i]; i = (i + 1) & fs->mask) {
            /* void */
        }
    }

    kept = &fs->domains[fs->n];

    if (ngx_icp_gate_filings_keep(fs, kept, d) != NGX_OK) {
        return NGX_ERROR;
    }

    kept->domain = ngx_pnalloc(fs->text, d->domain_len);
    if (kept->domain == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(kept->domain, d->domain, d->domain_len);

    fs->slots[i] = (uint64_t) d->hash << 32 | ++fs->n;

    return NGX_OK;
}


/*
 * How much a verdict keeps out.  First what the gate does with it: one
 * that refuses (any status but filed, in a region other than overseas)
 * weighs more than one that lets requests in (filed, or any status in
 * region overseas, which is exempt).  Then the status: revoked, pending,
 * unfiled, filed.  Then a region other than overseas.
 */

ngx_uint_t
ngx_icp_gate_filings_weight(ngx_icp_gate_filing_t *d)
{
    ngx_uint_t  overseas;

    static ngx_uint_t  status[] = {
        0,      /* none */
        0,      /* filed: the one status that lets a request in */
        2,      /* pending: a filing asked for, not granted */
        3,      /* revoked: an authority's act against the domain */
        1       /* unfiled: no filing known */
    };

    overseas = (d->region == NGX_ICP_GATE_REGION_OVERSEAS);

    return (d->status != NGX_ICP_GATE_STATUS_FILED && !overseas) * 8
           + status[d->status] * 2 + !overseas;
}


/* the verdict of *from into *to, its filing number copied to be kept */

static ngx_int_t
ngx_icp_gate_filings_keep(ngx_icp_gate_filings_t *fs,
    ngx_icp_gate_filing_t *to, ngx_icp_gate_filing_t *from)
{
    u_char  *icp;

    icp = NULL;

    if (from->icp_len) {
        icp = ngx_pnalloc(fs->text, from->icp_len);
        if (icp == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(icp, from->icp, from->icp_len);
    }

    *to = *from;
    to->icp = icp;

    return NGX_OK;
}


/* room for twice as many domains, and a table twice as large */

static ngx_int_t
ngx_icp_gate_filings_grow(ngx_icp_gate_filings_t *fs)
{
    uint64_t               *slots;
    ngx_uint_t              i, j, size;
    ngx_icp_gate_filing_t  *domains;

    size = fs->size ? 2 * fs->size : 4096;

    if (size > 0x7fffffff) {
        return NGX_ERROR;
    }

    domains = realloc(fs->domains, size * sizeof(ngx_icp_gate_filing_t));
    if (domains == NULL) {
        return NGX_ERROR;
    }

    fs->domains = domains;
    fs->size = size;

    slots = ngx_calloc(2 * size * sizeof(uint64_t), fs->log);
    if (slots == NULL) {
        return NGX_ERROR;
    }

    ngx_free(fs->slots);

    fs->slots = slots;
    fs->mask = 2 * size - 1;

    for (i = 0; i < fs->n; i++) {
        for (j = fs->domains[i].hash & fs->mask; slots[j];
             j = (j + 1) & fs->mask)
        {
            /* void */
        }

        slots[j] = (uint64_t) fs->domains[i].hash << 32 | (i + 1);
    }

    return NGX_OK;
}

/* "revoked icp NUMBER region overseas" */

u_char *
ngx_icp_gate_filings_describe(u_char *p, u_char *last,
    ngx_icp_gate_filing_t *d)
{
    p = ngx_slprintf(p, last, "%V", &ngx_icp_gate_status_names[d->status]);

    if (d->icp_len) {
        p = ngx_slprintf(p, last, " icp %*s", (size_t) d->icp_len, d->icp);
    }

    if (d->region) {
        p = ngx_slprintf(p, last, " region %V",
                         &ngx_icp_gate_region_names[d->region]);
    }

    return p;
}


