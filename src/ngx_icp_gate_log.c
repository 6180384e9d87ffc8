
/*
 * Copyright (C) icp_gate authors
 *
 * The rejection log: one JSON object a line.  Hosts come from clients, so
 * every string is escaped, and bytes that are not UTF-8 are written as
 * \u00XX: a hostile Host header cannot break a line or its encoding.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_log.h"


/* a dry_run refusal waiting for its verdict, after its request is gone */

typedef struct {
    ngx_icp_gate_judgement_t    judgement;
    ngx_icp_gate_waiter_t       waiter;
    ngx_icp_gate_conf_t        *gate;
    ngx_icp_gate_log_entry_t    entry;
    ngx_pool_t                 *pool;
} ngx_icp_gate_log_later_t;


static void ngx_icp_gate_log_later(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j, ngx_icp_gate_log_entry_t *entry);
static void ngx_icp_gate_log_later_done(ngx_icp_gate_waiter_t *w);
static ngx_int_t ngx_icp_gate_log_copy(ngx_pool_t *pool, ngx_str_t *dst,
    ngx_str_t *src);
static u_char *ngx_icp_gate_log_string(u_char *p, char *name, ngx_str_t *s);
static ngx_uint_t ngx_icp_gate_log_utf8(u_char **p, u_char *last);


/*
 * a refusal, or a dry_run judgement still open, whose would-be refusal is
 * written when its verdict is in
 */

void
ngx_icp_gate_log_refusal(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j, ngx_icp_gate_log_entry_t *entry,
    ngx_pool_t *pool, ngx_log_t *log)
{
    u_char                    *buf, *p, *iso;
    size_t                     len;
    ssize_t                    n;
    ngx_uint_t                 i;
    ngx_time_t                *tp;
    ngx_open_file_t           *file;
    ngx_icp_gate_log_field_t  *f;

    file = gcf->log;

    if (file == NULL || file->fd == NGX_INVALID_FILE) {
        return;
    }

    if (ngx_icp_gate_judge_open(j)) {
        ngx_icp_gate_log_later(gcf, j, entry);
        return;
    }

    len = sizeof("{\"time\":\"1970-09-28T12:00:00.000+06:00\"}" CRLF)
          + sizeof(",\"proto\":\"\"") + entry->proto.len
          + sizeof(",\"action\":\"\"") + entry->action.len
          + sizeof(",\"host\":\"\"")
          + ngx_icp_gate_log_escape_len(j->host.data, j->host.len)
          + sizeof(",\"domain\":\"\"") + j->domain.len
          + sizeof(",\"reason\":\"\"")
          + ngx_icp_gate_reason_names[j->reason].len
          + sizeof(",\"client\":\"\"")
          + ngx_icp_gate_log_escape_len(entry->client.data, entry->client.len)
          + sizeof(",\"dry_run\":false");

    f = entry->fields;

    for (i = 0; i < entry->nfields; i++) {
        len += sizeof(",\"\":\"\"") + f[i].name.len + NGX_INT_T_LEN
               + ngx_icp_gate_log_escape_len(f[i].value.data, f[i].value.len);
    }

    buf = ngx_pnalloc(pool, len);
    if (buf == NULL) {
        return;
    }

    /* ISO 8601 with milliseconds: "1970-09-28T12:00:00" ".000" "+06:00" */

    tp = ngx_timeofday();
    iso = ngx_cached_http_log_iso8601.data;

    p = ngx_cpymem(buf, "{\"time\":\"", sizeof("{\"time\":\"") - 1);
    p = ngx_cpymem(p, iso, 19);
    p = ngx_sprintf(p, ".%03M", tp->msec);
    p = ngx_cpymem(p, iso + 19, ngx_cached_http_log_iso8601.len - 19);
    *p++ = '"';

    p = ngx_icp_gate_log_string(p, "proto", &entry->proto);
    p = ngx_icp_gate_log_string(p, "action", &entry->action);
    p = ngx_icp_gate_log_string(p, "host", &j->host);
    p = ngx_icp_gate_log_string(p, "domain", &j->domain);
    p = ngx_icp_gate_log_string(p, "reason",
                                &ngx_icp_gate_reason_names[j->reason]);
    p = ngx_icp_gate_log_string(p, "client", &entry->client);

    for (i = 0; i < entry->nfields; i++) {
        if (f[i].value.data) {
            p = ngx_icp_gate_log_string(p, (char *) f[i].name.data,
                                        &f[i].value);
            continue;
        }

        p = ngx_sprintf(p, ",\"%V\":%i", &f[i].name, f[i].number);
    }

    if (j->result == NGX_ICP_GATE_RESULT_DRY_RUN) {
        p = ngx_cpymem(p, ",\"dry_run\":true}",
                       sizeof(",\"dry_run\":true}") - 1);

    } else {
        p = ngx_cpymem(p, ",\"dry_run\":false}",
                       sizeof(",\"dry_run\":false}") - 1);
    }

    *p++ = LF;

    /* one write a line: O_APPEND keeps lines of all workers whole */

    n = ngx_write_fd(file->fd, buf, p - buf);

    if (n != p - buf) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "icp_gate: writing to \"%s\" failed", file->name.data);
    }
}


/*
 * Everything the line needs is copied into a pool of its own: the request
 * or session may be long gone when the verdict comes.
 */

static void
ngx_icp_gate_log_later(ngx_icp_gate_conf_t *gcf, ngx_icp_gate_judgement_t *j,
    ngx_icp_gate_log_entry_t *entry)
{
    ngx_int_t                  rc;
    ngx_uint_t                 i;
    ngx_pool_t                *pool;
    ngx_icp_gate_log_field_t  *f;
    ngx_icp_gate_log_later_t  *later;

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    later = ngx_pcalloc(pool, sizeof(ngx_icp_gate_log_later_t));
    f = ngx_pcalloc(pool, entry->nfields * sizeof(ngx_icp_gate_log_field_t));

    if (later == NULL || f == NULL) {
        goto failed;
    }

    later->pool = pool;
    later->gate = gcf;
    later->judgement = *j;
    later->entry = *entry;
    later->entry.fields = f;

    if (ngx_icp_gate_log_copy(pool, &later->judgement.host, &j->host)
        != NGX_OK
        || ngx_icp_gate_log_copy(pool, &later->judgement.domain, &j->domain)
           != NGX_OK
        || ngx_icp_gate_log_copy(pool, &later->entry.client, &entry->client)
           != NGX_OK)
    {
        goto failed;
    }

    /* proto, action and field names are the protocol modules' constants */

    for (i = 0; i < entry->nfields; i++) {
        f[i] = entry->fields[i];

        if (f[i].value.data
            && ngx_icp_gate_log_copy(pool, &f[i].value,
                                     &entry->fields[i].value)
               != NGX_OK)
        {
            goto failed;
        }
    }

    later->waiter.handler = ngx_icp_gate_log_later_done;
    later->waiter.data = later;
    later->waiter.verdict = &later->judgement.verdict;
    later->waiter.timer.log = ngx_cycle->log;
    later->judgement.waiter = &later->waiter;

    if (ngx_icp_gate_lookup_wait(&later->judgement.domain,
                                 later->judgement.hash, &later->waiter,
                                 gcf->wait)
        != NGX_OK)
    {
        /* the flight is over already: its verdict, or a new flight's */

        rc = ngx_icp_gate_lookup(&later->judgement.domain,
                                 later->judgement.hash,
                                 &later->judgement.verdict);

        if ((rc == NGX_DECLINED || rc == NGX_AGAIN)
            && ngx_icp_gate_lookup_wait(&later->judgement.domain,
                                        later->judgement.hash,
                                        &later->waiter, gcf->wait)
               == NGX_OK)
        {
            return;
        }

        later->waiter.rc = (rc == NGX_OK || rc == NGX_AGAIN) ? NGX_OK
                                                             : NGX_ERROR;
        ngx_icp_gate_log_later_done(&later->waiter);
    }

    return;

failed:

    ngx_destroy_pool(pool);
}


static void
ngx_icp_gate_log_later_done(ngx_icp_gate_waiter_t *w)
{
    ngx_icp_gate_log_later_t  *later = w->data;

    ngx_icp_gate_judge_resume(later->gate, &later->judgement);

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: dry_run verdict for \"%V\": %V",
                   &later->judgement.domain,
                   &ngx_icp_gate_result_names[later->judgement.result]);

    if (later->judgement.result == NGX_ICP_GATE_RESULT_DRY_RUN) {
        ngx_icp_gate_log_refusal(later->gate, &later->judgement,
                                 &later->entry, later->pool, ngx_cycle->log);
    }

    ngx_destroy_pool(later->pool);
}


static ngx_int_t
ngx_icp_gate_log_copy(ngx_pool_t *pool, ngx_str_t *dst, ngx_str_t *src)
{
    dst->len = src->len;
    dst->data = ngx_pnalloc(pool, src->len + 1);

    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src->data, src->len);

    return NGX_OK;
}


size_t
ngx_icp_gate_log_escape_len(u_char *src, size_t len)
{
    u_char  *p, *last, *start;
    size_t   n;

    /* a missing host has no data: NULL + 0 is no pointer to compute */

    if (len == 0) {
        return 0;
    }

    n = 0;
    p = src;
    last = src + len;

    while (p < last) {

        if (*p < 0x80) {
            if (*p == '"' || *p == '\\') {
                n += 2;

            } else if (*p < 0x20 || *p == 0x7f) {
                n += sizeof("\\u0000") - 1;

            } else {
                n++;
            }

            p++;
            continue;
        }

        start = p;

        if (ngx_icp_gate_log_utf8(&p, last)) {
            n += p - start;

        } else {
            n += sizeof("\\u0000") - 1;
            p++;
        }
    }

    return n;
}


u_char *
ngx_icp_gate_log_escape(u_char *dst, u_char *src, size_t len)
{
    u_char         *p, *last, *start;
    static u_char   hex[] = "0123456789abcdef";

    if (len == 0) {
        return dst;
    }

    p = src;
    last = src + len;

    while (p < last) {
        start = p;

        if (*p >= 0x80 && ngx_icp_gate_log_utf8(&p, last)) {
            dst = ngx_cpymem(dst, start, p - start);
            continue;
        }

        p = start + 1;

        if (*start == '"' || *start == '\\') {
            *dst++ = '\\';
            *dst++ = *start;

        } else if (*start < 0x20 || *start >= 0x7f) {
            dst = ngx_cpymem(dst, "\\u00", sizeof("\\u00") - 1);
            *dst++ = hex[*start >> 4];
            *dst++ = hex[*start & 0xf];

        } else {
            *dst++ = *start;
        }
    }

    return dst;
}


static u_char *
ngx_icp_gate_log_string(u_char *p, char *name, ngx_str_t *s)
{
    *p++ = ',';

    return ngx_icp_gate_log_member(p, name, s);
}


/* "name":"value", the value escaped; as the console writes its JSON too */

u_char *
ngx_icp_gate_log_member(u_char *p, char *name, ngx_str_t *value)
{
    p = ngx_sprintf(p, "\"%s\":\"", name);
    p = ngx_icp_gate_log_escape(p, value->data, value->len);
    *p++ = '"';

    return p;
}


/*
 * Steps over one well-formed UTF-8 sequence and says so, or leaves *p
 * where it was: no overlong form, surrogate, or code point past U+10FFFF
 * (ngx_utf8_decode() lets some of them through).
 */

static ngx_uint_t
ngx_icp_gate_log_utf8(u_char **p, u_char *last)
{
    u_char    *s;
    size_t     n, i;
    uint32_t   u, min;

    s = *p;

    if (*s >= 0xc2 && *s <= 0xdf) {
        n = 1;
        u = *s & 0x1f;
        min = 0x80;

    } else if (*s >= 0xe0 && *s <= 0xef) {
        n = 2;
        u = *s & 0x0f;
        min = 0x800;

    } else if (*s >= 0xf0 && *s <= 0xf4) {
        n = 3;
        u = *s & 0x07;
        min = 0x10000;

    } else {
        return 0;
    }

    if ((size_t) (last - s) <= n) {
        return 0;
    }

    for (i = 1; i <= n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }

        u = (u << 6) | (s[i] & 0x3f);
    }

    if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
        return 0;
    }

    *p = s + n + 1;

    return 1;
}
