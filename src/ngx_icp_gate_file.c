
/*
 * Copyright (C) icp_gate authors
 *
 * The file tier.  The master reads the file with the configuration, as
 * geo and map tables are read, so that "nginx -t" checks it, and every
 * worker shares the master's pages: no worker spends a moment on it, and
 * it costs the zone no room.  It is consulted on a zone miss or refresh
 * only, never on the hit path: one block of packed records and a sorted
 * array of their offsets, searched by halves.
 *
 * A record: the domain's length, the filing number's length, the status,
 * the region, then the domain and the number, unaligned.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_verdict.h"
#include "ngx_icp_gate_filings.h"
#include "ngx_icp_gate_file.h"

#if (__GLIBC__)
#include <malloc.h>
#endif


/* bad and conflicting lines logged one by one, then only counted */
#define NGX_ICP_GATE_FILE_EXPLAIN  20

#define NGX_ICP_GATE_FILE_HEAD     4


typedef struct {
    ngx_conf_t                 *cf;
    ngx_str_t                  *name;
    ngx_uint_t                  explained;
} ngx_icp_gate_file_report_t;


static void ngx_icp_gate_file_skip(ngx_icp_gate_filings_t *fs,
    ngx_uint_t file, ngx_uint_t line, u_char *text, size_t len, char *why);
static void ngx_icp_gate_file_conflict(ngx_icp_gate_filings_t *fs,
    ngx_icp_gate_filing_t *d, ngx_icp_gate_filing_t *kept,
    ngx_uint_t heavier);
static ngx_uint_t ngx_icp_gate_file_explain(ngx_icp_gate_file_report_t *r);
static ngx_int_t ngx_icp_gate_file_pack(ngx_conf_t *cf,
    ngx_icp_gate_file_t *file, ngx_icp_gate_filings_t *fs);
static int ngx_libc_cdecl ngx_icp_gate_file_order(const void *a,
    const void *b);
static ngx_int_t ngx_icp_gate_file_compare(u_char *a, u_char *b);
static ngx_int_t ngx_icp_gate_file_diff(ngx_cycle_t *cycle,
    ngx_icp_gate_file_t *old, ngx_icp_gate_file_t *file,
    ngx_icp_gate_file_changes_t *changes);


/* the table of the running configuration, for the next one to compare */
static ngx_icp_gate_file_t  *ngx_icp_gate_file_running;
static ngx_uint_t            ngx_icp_gate_file_generation;

/* the records qsort() orders: it passes no context */
static u_char               *ngx_icp_gate_file_sorted;


/*
 * NULL: the file cannot be read, and the configuration fails.  Lines that
 * cannot be used are logged with their number and skipped; the others are
 * the file's verdicts, the most restrictive one where lines conflict.
 */

ngx_icp_gate_file_t *
ngx_icp_gate_file_load(ngx_conf_t *cf, ngx_str_t *name)
{
    FILE                        *in;
    ngx_int_t                    rc;
    ngx_uint_t                   level;
    ngx_file_info_t              fi;
    ngx_icp_gate_file_t         *file;
    ngx_icp_gate_filings_t       fs;
    ngx_icp_gate_file_report_t   report;

    file = ngx_pcalloc(cf->pool, sizeof(ngx_icp_gate_file_t));
    if (file == NULL) {
        return NULL;
    }

    file->name = *name;

    if (ngx_conf_full_name(cf->cycle, &file->name, 1) != NGX_OK) {
        return NULL;
    }

    in = fopen((char *) file->name.data, "r");

    if (in == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "icp_gate_file \"%V\" cannot be opened",
                           &file->name);
        return NULL;
    }

    if (ngx_fd_info(fileno(in), &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "icp_gate_file \"%V\": " ngx_fd_info_n " failed",
                           &file->name);
        fclose(in);
        return NULL;
    }

    file->mtime = fi.st_mtim.tv_sec;
    file->version = (uint64_t) fi.st_mtim.tv_sec * 1000000
                    + fi.st_mtim.tv_nsec / 1000;

    if (ngx_icp_gate_filings_init(&fs, cf->log) != NGX_OK) {
        fclose(in);
        return NULL;
    }

    report.cf = cf;
    report.name = &file->name;
    report.explained = 0;

    fs.data = &report;
    fs.skip = ngx_icp_gate_file_skip;
    fs.conflict = ngx_icp_gate_file_conflict;

    rc = ngx_icp_gate_filings_read(&fs, in, 0);

    fclose(in);

    if (rc != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "icp_gate_file \"%V\" cannot be read: %s",
                           &file->name, fs.failure);
        ngx_icp_gate_filings_free(&fs);
        return NULL;
    }

    if (report.explained > NGX_ICP_GATE_FILE_EXPLAIN) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "icp_gate: \"%V\": %ui more lines skipped or in "
                      "conflict, not listed one by one", &file->name,
                      report.explained - NGX_ICP_GATE_FILE_EXPLAIN);
    }

    rc = ngx_icp_gate_file_pack(cf, file, &fs);

    if (rc == NGX_OK) {
        level = (fs.skipped || fs.conflicts || fs.n == 0) ? NGX_LOG_WARN
                                                          : NGX_LOG_INFO;

        ngx_log_error(level, cf->log, 0,
                      "icp_gate: \"%V\": %ui domains from %ui lines, %ui "
                      "lines skipped, %ui domains with conflicting lines "
                      "(the most restrictive kept)", &file->name, file->n,
                      fs.lines, fs.skipped, fs.conflicts);
    }

    ngx_icp_gate_filings_free(&fs);

#if (__GLIBC__)
    /*
     * what the reading took goes back to the system: glibc keeps freed
     * heap below a threshold a large free raised, and every worker would
     * have it mapped, twice the table's size with a million lines
     */
    (void) malloc_trim(0);
#endif

    return (rc == NGX_OK) ? file : NULL;
}


static void
ngx_icp_gate_file_skip(ngx_icp_gate_filings_t *fs, ngx_uint_t file,
    ngx_uint_t line, u_char *text, size_t len, char *why)
{
    ngx_icp_gate_file_report_t  *r = fs->data;

    /* the line itself is not logged: it may hold any byte */

    if (ngx_icp_gate_file_explain(r)) {
        ngx_log_error(NGX_LOG_WARN, r->cf->log, 0,
                      "icp_gate: \"%V\" line %ui: %s, skipped", r->name,
                      line, why);
    }
}


static void
ngx_icp_gate_file_conflict(ngx_icp_gate_filings_t *fs,
    ngx_icp_gate_filing_t *d, ngx_icp_gate_filing_t *kept,
    ngx_uint_t heavier)
{
    ngx_icp_gate_file_report_t  *r = fs->data;

    u_char  *p;
    u_char   verdict[sizeof(" icp  region overseas") + NGX_ICP_GATE_ICP_LEN
                     + sizeof("unfiled")];

    if (!ngx_icp_gate_file_explain(r)) {
        return;
    }

    p = ngx_icp_gate_filings_describe(verdict, verdict + sizeof(verdict),
                                      heavier ? d : kept);

    ngx_log_error(NGX_LOG_WARN, r->cf->log, 0,
                  "icp_gate: \"%V\" line %uD conflicts with line %uD for "
                  "\"%*s\": %*s kept, the more restrictive or the first",
                  r->name, d->line, kept->line, (size_t) kept->domain_len,
                  kept->domain, (size_t) (p - verdict), verdict);
}


static ngx_uint_t
ngx_icp_gate_file_explain(ngx_icp_gate_file_report_t *r)
{
    return r->explained++ < NGX_ICP_GATE_FILE_EXPLAIN;
}


/* the verdicts read into one block of records and their sorted offsets */

static ngx_int_t
ngx_icp_gate_file_pack(ngx_conf_t *cf, ngx_icp_gate_file_t *file,
    ngx_icp_gate_filings_t *fs)
{
    u_char                 *p;
    size_t                  size;
    ngx_uint_t              i;
    ngx_icp_gate_filing_t  *d;

    size = 0;

    for (i = 0; i < fs->n; i++) {
        size += NGX_ICP_GATE_FILE_HEAD + fs->domains[i].domain_len
                + fs->domains[i].icp_len;
    }

    if (size > 0xffffffff) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "icp_gate_file \"%V\" is too large: its records "
                           "take more than 4 GB", &file->name);
        return NGX_ERROR;
    }

    file->n = fs->n;

    if (file->n == 0) {
        return NGX_OK;
    }

    file->records = ngx_palloc(cf->pool, size);
    file->index = ngx_palloc(cf->pool, file->n * sizeof(uint32_t));

    if (file->records == NULL || file->index == NULL) {
        return NGX_ERROR;
    }

    p = file->records;

    for (i = 0; i < fs->n; i++) {
        d = &fs->domains[i];

        file->index[i] = (uint32_t) (p - file->records);

        *p++ = d->domain_len;
        *p++ = d->icp_len;
        *p++ = d->status;
        *p++ = d->region;
        p = ngx_cpymem(p, d->domain, d->domain_len);

        if (d->icp_len) {
            p = ngx_cpymem(p, d->icp, d->icp_len);
        }
    }

    ngx_icp_gate_file_sorted = file->records;

    ngx_qsort(file->index, file->n, sizeof(uint32_t),
              ngx_icp_gate_file_order);

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_icp_gate_file_order(const void *a, const void *b)
{
    return (int) ngx_icp_gate_file_compare(
                     ngx_icp_gate_file_sorted + *(const uint32_t *) a,
                     ngx_icp_gate_file_sorted + *(const uint32_t *) b);
}


/* records by the length of their domain, then its bytes */

static ngx_int_t
ngx_icp_gate_file_compare(u_char *a, u_char *b)
{
    if (a[0] != b[0]) {
        return (ngx_int_t) a[0] - (ngx_int_t) b[0];
    }

    return ngx_memcmp(a + NGX_ICP_GATE_FILE_HEAD, b + NGX_ICP_GATE_FILE_HEAD,
                      a[0]);
}


/*
 * NGX_OK: the file lists the domain, its verdict in *v (v may be NULL);
 * the verdict's source is "file", its checked_at the file's mtime
 */

ngx_int_t
ngx_icp_gate_file_find(ngx_icp_gate_file_t *file, ngx_str_t *domain,
    ngx_icp_gate_verdict_t *v)
{
    u_char      *r;
    ngx_int_t    rc;
    ngx_uint_t   lo, hi, mid;
    u_char       key[NGX_ICP_GATE_FILE_HEAD + NGX_ICP_GATE_DOMAIN_LEN];

    if (domain->len > NGX_ICP_GATE_DOMAIN_LEN) {
        return NGX_DECLINED;
    }

    key[0] = (u_char) domain->len;
    ngx_memcpy(key + NGX_ICP_GATE_FILE_HEAD, domain->data, domain->len);

    lo = 0;
    hi = file->n;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        r = file->records + file->index[mid];

        rc = ngx_icp_gate_file_compare(r, key);

        if (rc < 0) {
            lo = mid + 1;
            continue;
        }

        if (rc > 0) {
            hi = mid;
            continue;
        }

        if (v) {
            ngx_memzero(v, offsetof(ngx_icp_gate_verdict_t, icp));
            v->status = r[2];
            v->region = r[3];
            v->source = NGX_ICP_GATE_SOURCE_FILE;
            v->checked_at = file->mtime;
            v->icp_len = r[1];
            ngx_memcpy(v->icp, r + NGX_ICP_GATE_FILE_HEAD + r[0], r[1]);
        }

        return NGX_OK;
    }

    return NGX_DECLINED;
}


/*
 * Whether a verdict from Redis outweighs the file's: an operator's or an
 * import's written after the file was (its checked_at, in whole seconds;
 * a hash without one counts as the newer: an operator's hand-written
 * verdict is obeyed).  The module's own hashes, answers of the filing
 * API, never do: the file is the first tier.
 */

ngx_uint_t
ngx_icp_gate_file_yields(ngx_icp_gate_file_t *file, ngx_icp_gate_verdict_t *v)
{
    if (v->status == NGX_ICP_GATE_STATUS_NONE
        || (v->source != NGX_ICP_GATE_SOURCE_IMPORT
            && v->source != NGX_ICP_GATE_SOURCE_OPERATOR))
    {
        return 0;
    }

    return v->checked_at <= 0
           || (uint64_t) v->checked_at * 1000000 > file->version;
}


/*
 * In the master, once the configuration is taken: what the file changed
 * since the running configuration's (nothing at the start, or for "nginx
 * -t"), and the generation of the zone's copies that stands for it
 */

ngx_int_t
ngx_icp_gate_file_commit(ngx_cycle_t *cycle, ngx_icp_gate_file_t *file,
    ngx_icp_gate_file_changes_t *changes)
{
    ngx_memzero(changes, sizeof(ngx_icp_gate_file_changes_t));

    if (ngx_test_config) {
        return NGX_OK;
    }

    /* at the start the zone is new: nothing in it to forget */

    if (!ngx_is_init_cycle(cycle->old_cycle)
        && ngx_icp_gate_file_diff(cycle, ngx_icp_gate_file_running, file,
                                  changes)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_icp_gate_file_running = file;

    if (changes->n) {
        ngx_icp_gate_file_generation++;
    }

    changes->generation = ngx_icp_gate_file_generation;

    return NGX_OK;
}


/*
 * Both tables in domain order, walked side by side, twice: the bytes the
 * changed names take, then the names.  An unchanged file costs the walk.
 */

static ngx_int_t
ngx_icp_gate_file_diff(ngx_cycle_t *cycle, ngx_icp_gate_file_t *old,
    ngx_icp_gate_file_t *file, ngx_icp_gate_file_changes_t *changes)
{
    u_char      *a, *b, *p, *changed;
    size_t       size;
    ngx_int_t    rc;
    ngx_uint_t   i, j, na, nb, pass;

    na = old ? old->n : 0;
    nb = file ? file->n : 0;

    p = NULL;
    size = 0;

    for (pass = 0; pass < 2; pass++) {

        for (i = 0, j = 0; i < na || j < nb; /* void */ ) {
            a = (i < na) ? old->records + old->index[i] : NULL;
            b = (j < nb) ? file->records + file->index[j] : NULL;

            rc = (a == NULL) ? 1
                 : (b == NULL) ? -1
                 : ngx_icp_gate_file_compare(a, b);

            if (rc < 0) {
                changed = a;
                i++;

            } else if (rc > 0) {
                changed = b;
                j++;

            } else {
                i++;
                j++;

                /* the same domain: the same status, region and number? */

                if (a[1] == b[1] && a[2] == b[2] && a[3] == b[3]
                    && ngx_memcmp(a + NGX_ICP_GATE_FILE_HEAD + a[0],
                                  b + NGX_ICP_GATE_FILE_HEAD + b[0], a[1])
                       == 0)
                {
                    continue;
                }

                changed = b;
            }

            if (pass == 0) {
                size += 1 + changed[0];
                changes->n++;
                continue;
            }

            *p++ = changed[0];
            p = ngx_cpymem(p, changed + NGX_ICP_GATE_FILE_HEAD, changed[0]);
        }

        if (size == 0) {
            return NGX_OK;
        }

        if (pass == 0) {
            changes->names = ngx_palloc(cycle->pool, size);
            if (changes->names == NULL) {
                return NGX_ERROR;
            }

            p = changes->names;
        }
    }

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "icp_gate: \"%V\": %ui domains changed since the last "
                  "configuration, their copies in the zone are dropped",
                  file ? &file->name : &old->name, changes->n);

    return NGX_OK;
}
