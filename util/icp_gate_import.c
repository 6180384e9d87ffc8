
/*
 * Copyright (C) icp_gate authors
 *
 * icp-gate-import: filing verdicts a platform already knows, written to
 * Redis as the gate reads them.  Each line's host is reduced by the gate's
 * own code (this program is linked with the objects of the nginx build),
 * so an import lands on the very key a request looks up.  Every line is
 * read before anything is written: lines that name one registrable domain
 * give it one verdict, the most restrictive of theirs, whatever their
 * order.  Writes are pipelined, one script call a domain.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <getopt.h>
#include <idn2.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "ngx_icp_gate_verdict.h"
#include "ngx_icp_gate_domain.h"
#include "ngx_icp_gate_resolve.h"
#include "ngx_icp_gate_standalone.h"


/* replies read back after this many calls sent */
#define IMPORT_BATCH       2000

/* skipped and conflicting lines explained one by one, then only counted */
#define IMPORT_EXPLAIN     20

/* bytes of a line shown when it is explained */
#define IMPORT_SHOW        60

/* a longer line is refused whole: no record comes near it */
#define IMPORT_LINE_MAX    65535

/* what one read asks of a file */
#define IMPORT_READ        65536

/*
 * The longest --ttl.  Redis 7 refuses an EXPIRE whose milliseconds, added
 * to its clock, overflow a signed 64-bit integer; 2^62 ms leaves room for
 * any clock before the year 146 million.
 */
#define IMPORT_TTL_MAX     4611686018427387LL


typedef struct {
    char                       *redis;
    ngx_uint_t                  db;
    char                       *password;
    char                       *prefix;
    time_t                      ttl;
    ngx_uint_t                  dry_run;
    ngx_uint_t                  strict;
    ngx_uint_t                  quiet;
    char                       *format;     /* NULL: by each line */
} import_conf_t;


/* a line's fields, as written */
typedef struct {
    ngx_str_t                   host;
    ngx_str_t                   status;
    ngx_str_t                   icp;
    ngx_str_t                   region;
} import_record_t;


/* a domain's verdict as it is written: its most restrictive line's */
typedef struct {
    u_char                     *domain;
    u_char                     *icp;
    uint32_t                    hash;
    uint32_t                    line;
    uint32_t                    file;       /* index of its file's name */
    u_char                      domain_len;
    u_char                      icp_len;
    u_char                      status;
    u_char                      region;
    unsigned                    subdomain:1;    /* the line named one */
    unsigned                    conflict:1;     /* another line differed */
} import_domain_t;


/* every domain read, in the order first read, and a table to find it */
typedef struct {
    import_domain_t            *domains;
    ngx_uint_t                  n;
    ngx_uint_t                  size;
    uint64_t                   *slots;      /* hash, 1 + index; 0: free */
    ngx_uint_t                  mask;
    ngx_pool_t                 *text;       /* names and numbers kept */
} import_store_t;


typedef struct {
    FILE                       *in;
    u_char                     *start;
    u_char                     *pos;
    u_char                     *last;
    u_char                     *end;
    ngx_uint_t                  eof;
    u_char                      head[IMPORT_SHOW];   /* of a long line */
} import_reader_t;


typedef struct {
    ngx_uint_t                  lines;
    ngx_uint_t                  skipped;
    ngx_uint_t                  conflicts;      /* domains */
    ngx_uint_t                  explained;      /* conflicting lines */
    ngx_uint_t                  written;
    ngx_uint_t                  subdomains;     /* of those written */
    ngx_uint_t                  failed;         /* Redis said no */
    ngx_uint_t                  answered;       /* calls Redis answered */
} import_counts_t;


static ngx_int_t import_file(import_conf_t *conf, import_store_t *st,
    char **names, ngx_uint_t file, import_reader_t *rd, ngx_pool_t *pool,
    import_counts_t *n);
static ngx_int_t import_read_line(import_reader_t *rd, ngx_str_t *line);
static char *import_csv(u_char *line, size_t len, import_record_t *rec);
static char *import_json(u_char *line, size_t len, import_record_t *rec,
    ngx_pool_t *pool);
static char *import_check(import_record_t *rec, ngx_pool_t *pool,
    import_domain_t *d);
static ngx_uint_t import_subdomain(ngx_str_t *host, ngx_str_t *domain,
    ngx_pool_t *pool);
static ngx_int_t import_merge(import_conf_t *conf, import_store_t *st,
    import_domain_t *d, char **names, import_counts_t *n);
static ngx_uint_t import_weight(import_domain_t *d);
static ngx_int_t import_keep(import_store_t *st, import_domain_t *to,
    import_domain_t *from);
static ngx_int_t import_grow(import_store_t *st);
static void import_conflict(import_conf_t *conf, char **names,
    import_domain_t *d, import_domain_t *kept, ngx_uint_t heavier,
    import_counts_t *n);
static u_char *import_describe(u_char *p, u_char *last, import_domain_t *d);
static ngx_int_t import_write(import_conf_t *conf, redisContext *rc,
    import_store_t *st, import_counts_t *n);
static ngx_int_t import_drain(redisContext *rc, import_store_t *st,
    ngx_uint_t sent, import_counts_t *n);
static redisContext *import_connect(import_conf_t *conf,
    ngx_pool_t *pool);
static void import_skip(import_conf_t *conf, char *name, ngx_uint_t line,
    u_char *text, size_t len, char *why, import_counts_t *n);
static void import_usage(FILE *out);


/*
 * The script loaded once, called a domain: the hash is replaced in one
 * step, never absent in between.  The expiry is tried first, on the hash
 * the call replaces anyway (Redis checks the time before it looks for the
 * key): one Redis refuses fails the call before anything is written.
 */
static const char  import_script[] =
    "if ARGV[5] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[5]) end "
    "redis.call('DEL', KEYS[1]) "
    "local f = {'status', ARGV[1], 'source', 'import', "
        "'checked_at', ARGV[2]} "
    "if ARGV[3] ~= '' then f[#f + 1] = 'icp' f[#f + 1] = ARGV[3] end "
    "if ARGV[4] ~= '' then f[#f + 1] = 'region' f[#f + 1] = ARGV[4] end "
    "redis.call('HSET', KEYS[1], unpack(f)) "
    "if ARGV[5] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[5]) end "
    "return 1";

static char  import_sha[41];


int
main(int argc, char **argv)
{
    int                         c, code;
    char                      **names;
    FILE                      **in;
    ngx_uint_t                  i, files;
    ngx_pool_t                 *pool;
    redisContext               *rc;
    import_conf_t               conf;
    import_store_t              st;
    import_reader_t             rd;
    import_counts_t             n;
    ngx_icp_gate_standalone_t   sa;
    u_char                      expiry[sizeof("expiring in  s")
                                       + NGX_TIME_T_LEN];

    static char  *stdin_name = "-";

    static struct option  options[] = {
        { "redis",    required_argument, NULL, 'r' },
        { "db",       required_argument, NULL, 'n' },
        { "password", required_argument, NULL, 'a' },
        { "prefix",   required_argument, NULL, 'p' },
        { "ttl",      required_argument, NULL, 't' },
        { "format",   required_argument, NULL, 'f' },
        { "strict",   no_argument,       NULL, 's' },
        { "dry-run",  no_argument,       NULL, 'd' },
        { "quiet",    no_argument,       NULL, 'q' },
        { "help",     no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    ngx_memzero(&conf, sizeof(import_conf_t));
    conf.redis = "127.0.0.1:6379";
    conf.prefix = "icp:";
    conf.password = getenv("ICP_GATE_REDIS_PASSWORD");

    while ((c = getopt_long(argc, argv, "r:n:a:p:t:f:sdqh", options, NULL))
           != -1)
    {
        switch (c) {

        case 'r':
            conf.redis = optarg;
            break;

        case 'n':
            conf.db = (ngx_uint_t) atoi(optarg);
            break;

        case 'a':
            conf.password = optarg;
            break;

        case 'p':
            /* what icp_gate_redis_prefix accepts: the key is never cut */

            if (ngx_strlen(optarg) > 128) {
                fprintf(stderr, "icp-gate-import: --prefix is longer than "
                        "128 bytes\n");
                return 2;
            }

            conf.prefix = optarg;
            break;

        case 't':
            /* before Redis is asked anything: it would refuse every call */

            conf.ttl = ngx_atotm((u_char *) optarg, ngx_strlen(optarg));

            if (conf.ttl == NGX_ERROR || conf.ttl > IMPORT_TTL_MAX) {
                fprintf(stderr, "icp-gate-import: --ttl \"%s\": expected "
                        "seconds, 0 (no expiry) to %lld, which Redis's "
                        "EXPIRE takes whatever its clock\n", optarg,
                        IMPORT_TTL_MAX);
                return 2;
            }
            break;

        case 'f':
            if (strcmp(optarg, "csv") != 0 && strcmp(optarg, "jsonl") != 0) {
                fprintf(stderr, "icp-gate-import: --format \"%s\": expected "
                        "csv or jsonl\n", optarg);
                return 2;
            }
            conf.format = optarg;
            break;

        case 's':
            conf.strict = 1;
            break;

        case 'd':
            conf.dry_run = 1;
            break;

        case 'q':
            conf.quiet = 1;
            break;

        case 'h':
            import_usage(stdout);
            return 0;

        default:
            import_usage(stderr);
            return 2;
        }
    }

    /* the engine's reduction needs an nginx of its own, without a cycle */

    ngx_icp_gate_standalone_init(&sa);

    pool = ngx_create_pool(16384, &sa.log);
    if (pool == NULL || ngx_icp_gate_domain_init(&sa.log) != NGX_OK) {
        fprintf(stderr, "icp-gate-import: no public suffix list\n");
        return 2;
    }

    /* no argument, or "-": stdin */

    if (optind < argc) {
        names = argv + optind;
        files = argc - optind;

    } else {
        names = &stdin_name;
        files = 1;
    }

    ngx_memzero(&st, sizeof(import_store_t));
    ngx_memzero(&n, sizeof(import_counts_t));

    in = ngx_calloc(files * sizeof(FILE *), &sa.log);
    rd.start = ngx_alloc(IMPORT_LINE_MAX + 1 + IMPORT_READ, &sa.log);
    st.text = ngx_create_pool(65536, &sa.log);

    if (in == NULL || rd.start == NULL || st.text == NULL
        || import_grow(&st) != NGX_OK)
    {
        fprintf(stderr, "icp-gate-import: out of memory\n");
        return 2;
    }

    rd.end = rd.start + IMPORT_LINE_MAX + 1 + IMPORT_READ;

    /*
     * every file is opened and read before anything is written: a verdict
     * a later line makes more restrictive is never written weaker first
     */

    code = 0;
    rc = NULL;

    for (i = 0; i < files; i++) {
        if (strcmp(names[i], "-") == 0) {
            in[i] = stdin;
            continue;
        }

        in[i] = fopen(names[i], "r");

        if (in[i] == NULL) {
            fprintf(stderr, "icp-gate-import: %s: %s; nothing written\n",
                    names[i], strerror(errno));
            code = 2;
            goto done;
        }
    }

    if (!conf.dry_run) {
        rc = import_connect(&conf, pool);
        if (rc == NULL) {
            code = 2;
            goto done;
        }
    }

    for (i = 0; i < files; i++) {
        rd.in = in[i];

        if (import_file(&conf, &st, names, i, &rd, pool, &n)
            != NGX_OK)
        {
            code = 2;
            goto done;
        }
    }

    if (conf.strict && n.conflicts) {
        fprintf(stderr, "icp-gate-import: %lu domains have conflicting "
                "lines: nothing written (--strict)\n",
                (unsigned long) n.conflicts);
        code = 2;
        goto done;
    }

    if (rc == NULL) {
        for (i = 0; i < st.n; i++) {
            n.subdomains += st.domains[i].subdomain;
        }

        n.written = st.n;

    } else if (import_write(&conf, rc, &st, &n) != NGX_OK) {
        code = 2;
    }

done:

    if (conf.ttl) {
        ngx_sprintf(expiry, "expiring in %T s%Z", conf.ttl);

    } else {
        ngx_sprintf(expiry, "no expiry%Z");
    }

    printf("icp-gate-import: %lu lines: %lu domains %s (source import, %s),"
           " %lu of them under their registrable domain, not the host given;"
           " %lu domains with conflicting lines (the most restrictive kept);"
           " %lu lines skipped; %lu refused by Redis\n",
           (unsigned long) n.lines, (unsigned long) n.written,
           conf.dry_run ? "checked, nothing written (--dry-run)" : "written",
           expiry, (unsigned long) n.subdomains,
           (unsigned long) n.conflicts, (unsigned long) n.skipped,
           (unsigned long) n.failed);

    for (i = 0; i < files; i++) {
        if (in[i] && in[i] != stdin) {
            fclose(in[i]);
        }
    }

    if (rc) {
        redisFree(rc);
    }

    ngx_free(in);
    ngx_free(rd.start);
    ngx_free(st.domains);
    ngx_free(st.slots);
    ngx_destroy_pool(st.text);
    ngx_destroy_pool(pool);

    if (code == 0 && (n.skipped || n.conflicts || n.failed)) {
        code = n.failed ? 2 : 1;
    }

    return code;
}


static ngx_int_t
import_file(import_conf_t *conf, import_store_t *st, char **names,
    ngx_uint_t file, import_reader_t *rd, ngx_pool_t *pool,
    import_counts_t *n)
{
    u_char           *p, *end;
    char             *why;
    ngx_int_t         rc;
    ngx_str_t         text;
    ngx_uint_t        line, json;
    import_domain_t   d;
    import_record_t   rec;

    rd->pos = rd->start;
    rd->last = rd->start;
    rd->eof = 0;

    for (line = 1; /* void */ ; line++) {

        rc = import_read_line(rd, &text);

        if (rc == NGX_DONE) {
            return NGX_OK;
        }

        if (rc == NGX_ERROR) {
            fprintf(stderr, "icp-gate-import: %s: %s; nothing written\n",
                    names[file], strerror(errno));
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            n->lines++;
            import_skip(conf, names[file], line, text.data, text.len,
                        "longer than 65535 bytes", n);
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

        n->lines++;

        if (n->lines % 4096 == 0) {
            ngx_reset_pool(pool);
        }

        /* a NUL would end the line early for the libraries that read it */

        if (ngx_strlchr(p, end, '\0')) {
            import_skip(conf, names[file], line, p, end - p, "a NUL byte",
                        n);
            continue;
        }

        json = conf->format ? (conf->format[0] == 'j')
                            : (*p == '{' || *p == '[');

        if (json) {
            why = import_json(p, end - p, &rec, pool);

        } else {
            why = import_csv(p, end - p, &rec);

            /* a header line */

            if (why == NULL && line == 1 && rec.host.len == 6
                && ngx_strncasecmp(rec.host.data, (u_char *) "domain", 6)
                   == 0)
            {
                n->lines--;
                continue;
            }
        }

        if (why == NULL) {
            why = import_check(&rec, pool, &d);
        }

        if (why) {
            import_skip(conf, names[file], line, p, end - p, why, n);
            continue;
        }

        d.file = (uint32_t) file;
        d.line = (uint32_t) line;

        if (import_merge(conf, st, &d, names, n) != NGX_OK) {
            fprintf(stderr, "icp-gate-import: out of memory; nothing "
                    "written\n");
            return NGX_ERROR;
        }
    }
}


/*
 * NGX_OK: the next line, whole, without its newline, whatever bytes it
 * holds; NGX_DECLINED: a line longer than IMPORT_LINE_MAX, read to its
 * end, its first bytes and its length in *line; NGX_DONE: no more lines
 */

static ngx_int_t
import_read_line(import_reader_t *rd, ngx_str_t *line)
{
    size_t   n, len;
    u_char  *nl;

    len = 0;

    for ( ;; ) {
        nl = ngx_strlchr(rd->pos, rd->last, '\n');

        if (nl || (rd->eof && rd->pos < rd->last)) {
            if (nl == NULL) {
                nl = rd->last;
            }

            if (len) {
                /* the end of a line too long to keep */
                line->data = rd->head;
                line->len = len + (nl - rd->pos);
                rd->pos = (nl < rd->last) ? nl + 1 : nl;
                return NGX_DECLINED;
            }

            line->data = rd->pos;
            line->len = nl - rd->pos;
            rd->pos = (nl < rd->last) ? nl + 1 : nl;

            if (line->len > IMPORT_LINE_MAX) {
                ngx_memcpy(rd->head, line->data, IMPORT_SHOW);
                line->data = rd->head;
                return NGX_DECLINED;
            }

            return NGX_OK;
        }

        if (rd->eof) {
            if (len) {
                line->data = rd->head;
                line->len = len;
                return NGX_DECLINED;
            }

            return NGX_DONE;
        }

        n = rd->last - rd->pos;

        if (len == 0 && n > IMPORT_LINE_MAX) {
            /* too long: its first bytes are kept to be shown, not more */
            ngx_memcpy(rd->head, rd->pos, IMPORT_SHOW);
        }

        if (len || n > IMPORT_LINE_MAX) {
            len += n;
            n = 0;
        }

        /* what is left of the line moves to the start, more is read */

        ngx_memmove(rd->start, rd->pos, n);
        rd->pos = rd->start;
        rd->last = rd->start + n;

        n = fread(rd->last, 1, rd->end - rd->last, rd->in);

        if (n == 0) {
            if (ferror(rd->in)) {
                return NGX_ERROR;
            }

            rd->eof = 1;
        }

        rd->last += n;
    }
}


/* domain,status[,icp][,region]: a field may be quoted, "" inside it */

static char *
import_csv(u_char *line, size_t len, import_record_t *rec)
{
    u_char      *p, *end, *dst;
    ngx_str_t   *fields[4];
    ngx_uint_t   i;

    ngx_memzero(rec, sizeof(import_record_t));

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
import_json(u_char *line, size_t len, import_record_t *rec, ngx_pool_t *pool)
{
    char         *why;
    json_t       *root, *f;
    ngx_str_t    *fields[4];
    ngx_uint_t    i;
    json_error_t  err;

    static char  *names[] = { "domain", "status", "icp", "region" };

    ngx_memzero(rec, sizeof(import_record_t));

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
import_check(import_record_t *rec, ngx_pool_t *pool, import_domain_t *d)
{
    uint32_t                hash;
    ngx_str_t               domain;
    ngx_icp_gate_verdict_t  v;

    ngx_memzero(d, sizeof(import_domain_t));

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
    d->subdomain = import_subdomain(&rec->host, &domain, pool);

    return NULL;
}


/*
 * Whether the host names a subdomain of its registrable domain: it has
 * more labels, counted in the name the gate makes of it (IDNA maps "。"
 * and others to a dot; no port, no trailing dot)
 */

static ngx_uint_t
import_subdomain(ngx_str_t *host, ngx_str_t *domain, ngx_pool_t *pool)
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
import_merge(import_conf_t *conf, import_store_t *st, import_domain_t *d,
    char **names, import_counts_t *n)
{
    ngx_uint_t        i, heavier;
    import_domain_t  *kept;

    for (i = d->hash & st->mask; st->slots[i]; i = (i + 1) & st->mask) {

        /* the hash in the slot: no look at another domain's entry */

        if (st->slots[i] >> 32 != d->hash) {
            continue;
        }

        kept = &st->domains[(uint32_t) st->slots[i] - 1];

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
            n->conflicts++;
        }

        heavier = (import_weight(d) > import_weight(kept));

        import_conflict(conf, names, d, kept, heavier, n);

        if (!heavier) {
            return NGX_OK;
        }

        d->conflict = 1;

        /* the name is kept: it is the same */

        d->domain = kept->domain;

        return import_keep(st, kept, d);
    }

    if (st->n == st->size) {
        if (import_grow(st) != NGX_OK) {
            return NGX_ERROR;
        }

        for (i = d->hash & st->mask; st->slots[i]; i = (i + 1) & st->mask) {
            /* void */
        }
    }

    kept = &st->domains[st->n];

    if (import_keep(st, kept, d) != NGX_OK) {
        return NGX_ERROR;
    }

    kept->domain = ngx_pnalloc(st->text, d->domain_len);
    if (kept->domain == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(kept->domain, d->domain, d->domain_len);

    st->slots[i] = (uint64_t) d->hash << 32 | ++st->n;

    return NGX_OK;
}


/*
 * How much a verdict keeps out.  First what the gate does with it: one
 * that refuses (any status but filed, in a region other than overseas)
 * weighs more than one that lets requests in (filed, or any status in
 * region overseas, which is exempt).  Then the status: revoked, pending,
 * unfiled, filed.  Then a region other than overseas.
 */

static ngx_uint_t
import_weight(import_domain_t *d)
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
import_keep(import_store_t *st, import_domain_t *to, import_domain_t *from)
{
    u_char  *icp;

    icp = NULL;

    if (from->icp_len) {
        icp = ngx_pnalloc(st->text, from->icp_len);
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
import_grow(import_store_t *st)
{
    uint64_t         *slots;
    ngx_uint_t        i, j, size;
    import_domain_t  *domains;

    size = st->size ? 2 * st->size : 4096;

    if (size > 0x7fffffff) {
        return NGX_ERROR;
    }

    domains = realloc(st->domains, size * sizeof(import_domain_t));
    if (domains == NULL) {
        return NGX_ERROR;
    }

    st->domains = domains;
    st->size = size;

    slots = ngx_calloc(2 * size * sizeof(uint64_t), ngx_cycle->log);
    if (slots == NULL) {
        return NGX_ERROR;
    }

    ngx_free(st->slots);

    st->slots = slots;
    st->mask = 2 * size - 1;

    for (i = 0; i < st->n; i++) {
        for (j = st->domains[i].hash & st->mask; slots[j];
             j = (j + 1) & st->mask)
        {
            /* void */
        }

        slots[j] = (uint64_t) st->domains[i].hash << 32 | (i + 1);
    }

    return NGX_OK;
}


static void
import_conflict(import_conf_t *conf, char **names, import_domain_t *d,
    import_domain_t *kept, ngx_uint_t heavier, import_counts_t *n)
{
    char    *why;
    u_char  *p, *there;
    u_char   here[2 * (sizeof(" icp  region overseas") + NGX_ICP_GATE_ICP_LEN
                       + sizeof("unfiled"))];

    if (conf->quiet) {
        return;
    }

    if (n->explained == IMPORT_EXPLAIN) {
        fprintf(stderr, "icp-gate-import: more conflicting lines, counted "
                "only\n");
    }

    if (n->explained++ >= IMPORT_EXPLAIN) {
        return;
    }

    p = import_describe(here, here + sizeof(here) / 2 - 1, d);
    *p++ = '\0';

    there = p;
    p = import_describe(there, here + sizeof(here) - 1, kept);
    *p = '\0';

    if (heavier) {
        why = "kept this line's verdict, the more restrictive";

    } else if (import_weight(d) < import_weight(kept)) {
        why = "kept that line's verdict, the more restrictive";

    } else {
        why = "kept that line's verdict, the first of two as "
              "restrictive";
    }

    fprintf(stderr, "icp-gate-import: %s:%lu: conflicts with %s:%lu for "
            "%.*s (%s here, %s there): %s\n",
            names[d->file], (unsigned long) d->line,
            names[kept->file], (unsigned long) kept->line,
            (int) kept->domain_len, kept->domain, here, there, why);
}


/* "revoked icp NUMBER region overseas" */

static u_char *
import_describe(u_char *p, u_char *last, import_domain_t *d)
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


/* every domain kept, one script call each, IMPORT_BATCH calls in flight */

static ngx_int_t
import_write(import_conf_t *conf, redisContext *rc, import_store_t *st,
    import_counts_t *n)
{
    size_t            len[9];
    ngx_str_t        *status, *region;
    ngx_uint_t        i;
    const char       *argv[9];
    import_domain_t  *d;
    u_char            key[NGX_ICP_GATE_DOMAIN_LEN + 256];
    u_char            checked[NGX_TIME_T_LEN], ttl[NGX_TIME_T_LEN];

    argv[0] = "EVALSHA";
    len[0] = 7;
    argv[1] = import_sha;
    len[1] = 40;
    argv[2] = "1";
    len[2] = 1;
    argv[3] = (char *) key;
    argv[5] = (char *) checked;
    len[5] = ngx_sprintf(checked, "%T", ngx_time()) - checked;
    argv[8] = (char *) ttl;
    len[8] = ngx_sprintf(ttl, "%T", conf->ttl) - ttl;

    for (i = 0; i < st->n; i++) {
        d = &st->domains[i];

        status = &ngx_icp_gate_status_names[d->status];
        region = &ngx_icp_gate_region_names[d->region];

        len[3] = ngx_snprintf(key, sizeof(key), "%sdomain:%*s", conf->prefix,
                              (size_t) d->domain_len, d->domain)
                 - key;
        argv[4] = (char *) status->data;
        len[4] = status->len;
        argv[6] = d->icp_len ? (char *) d->icp : "";
        len[6] = d->icp_len;
        argv[7] = region->len ? (char *) region->data : "";
        len[7] = region->len;

        if (redisAppendCommandArgv(rc, 9, argv, len) != REDIS_OK) {
            fprintf(stderr, "icp-gate-import: redis: %s\n", rc->errstr);
            return NGX_ERROR;
        }

        if (i + 1 - n->answered == IMPORT_BATCH
            && import_drain(rc, st, i + 1, n) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return import_drain(rc, st, st->n, n);
}


/* the answers to the calls before the sent-th: a domain counts once taken */

static ngx_int_t
import_drain(redisContext *rc, import_store_t *st, ngx_uint_t sent,
    import_counts_t *n)
{
    void        *r;
    redisReply  *reply;

    for ( /* void */ ; n->answered < sent; n->answered++) {

        if (redisGetReply(rc, &r) != REDIS_OK) {
            fprintf(stderr, "icp-gate-import: redis: %s\n", rc->errstr);
            return NGX_ERROR;
        }

        reply = r;

        if (reply->type != REDIS_REPLY_ERROR) {
            n->written++;
            n->subdomains += st->domains[n->answered].subdomain;

        } else if (n->failed++ == 0) {
            fprintf(stderr, "icp-gate-import: redis refused a write: %s\n",
                    reply->str);
        }

        freeReplyObject(reply);
    }

    return NGX_OK;
}


static redisContext *
import_connect(import_conf_t *conf, ngx_pool_t *pool)
{
    u_char        *host;
    ngx_url_t      u;
    redisReply    *reply;
    redisContext  *rc;

    if (ngx_strncmp(conf->redis, "unix:", 5) == 0) {
        rc = redisConnectUnix(conf->redis + 5);

    } else {

        /* read as icp_gate_redis reads its address */

        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url.data = (u_char *) conf->redis;
        u.url.len = ngx_strlen(conf->redis);
        u.default_port = 6379;
        u.no_resolve = 1;

        if (ngx_parse_url(pool, &u) != NGX_OK) {
            fprintf(stderr, "icp-gate-import: --redis \"%s\": %s\n",
                    conf->redis, u.err ? u.err : "not an address");
            return NULL;
        }

        ngx_icp_gate_resolve_unbracket(&u.host);

        host = ngx_pnalloc(pool, u.host.len + 1);
        if (host == NULL) {
            return NULL;
        }

        ngx_cpystrn(host, u.host.data, u.host.len + 1);

        rc = redisConnect((char *) host, u.port);
    }

    if (rc == NULL || rc->err) {
        fprintf(stderr, "icp-gate-import: redis %s: %s\n", conf->redis,
                rc ? rc->errstr : "out of memory");
        return NULL;
    }

    if (conf->password) {
        reply = redisCommand(rc, "AUTH %s", conf->password);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            goto failed;
        }
        freeReplyObject(reply);
    }

    if (conf->db) {
        reply = redisCommand(rc, "SELECT %lu", (unsigned long) conf->db);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            goto failed;
        }
        freeReplyObject(reply);
    }

    reply = redisCommand(rc, "SCRIPT LOAD %s", import_script);
    if (reply == NULL || reply->type != REDIS_REPLY_STRING
        || reply->len != 40)
    {
        goto failed;
    }

    ngx_memcpy(import_sha, reply->str, 40);
    freeReplyObject(reply);

    return rc;

failed:

    fprintf(stderr, "icp-gate-import: redis %s: %s\n", conf->redis,
            reply ? reply->str : rc->errstr);

    if (reply) {
        freeReplyObject(reply);
    }

    redisFree(rc);

    return NULL;
}


/* text: the line, of which 60 bytes are shown */

static void
import_skip(import_conf_t *conf, char *name, ngx_uint_t line, u_char *text,
    size_t len, char *why, import_counts_t *n)
{
    if (!conf->quiet && n->skipped < IMPORT_EXPLAIN) {
        fprintf(stderr, "icp-gate-import: %s:%lu: skipped \"%.*s%s\": %s\n",
                name, (unsigned long) line, (int) ngx_min(len, 60), text,
                len > 60 ? "..." : "", why);

    } else if (!conf->quiet && n->skipped == IMPORT_EXPLAIN) {
        fprintf(stderr, "icp-gate-import: more lines skipped, counted "
                "only\n");
    }

    n->skipped++;
}


static void
import_usage(FILE *out)
{
    fprintf(out,
"usage: icp-gate-import [options] [FILE...]      (none, or -: stdin)\n"
"\n"
"Writes filing verdicts to Redis as icp_gate reads them: one line each,\n"
"CSV  domain,status[,icp][,region]  or JSON  {\"domain\": ..., \"status\":\n"
"..., \"icp\": ..., \"region\": ...}.  Each domain is reduced as the gate\n"
"reduces a host (IDN to punycode, then the registrable domain), and its\n"
"hash gets source \"import\".  A first line \"domain,...\", blank lines and\n"
"lines starting with # are not records.\n"
"\n"
"Every line is read before anything is written.  Lines that give one\n"
"registrable domain different verdicts conflict: each is reported with\n"
"both line numbers, and the domain gets the most restrictive verdict,\n"
"whatever the order of the lines:\n"
"  1. one that refuses (pending, revoked, unfiled; not in region overseas,\n"
"     which exempts a domain whatever its status) before one that lets\n"
"     requests in;\n"
"  2. then by status, revoked > pending > unfiled > filed: a revocation is\n"
"     an authority's act against the domain, pending a filing asked for\n"
"     and not granted, unfiled no filing known;\n"
"  3. then a region other than overseas;\n"
"  4. of two as restrictive (another filing number or region only), the\n"
"     first: a later line replaces a verdict only to keep more out.\n"
"\n"
"  -r, --redis ADDR      host[:port], [v6][:port] or unix:/path, as\n"
"                        icp_gate_redis (default 127.0.0.1:6379)\n"
"  -n, --db N            database (default 0)\n"
"  -a, --password SECRET or $ICP_GATE_REDIS_PASSWORD\n"
"  -p, --prefix STRING   as icp_gate_redis_prefix (default icp:)\n"
"  -t, --ttl SECONDS     each hash expires, 1 to %lld\n"
"                        (default 0: never)\n"
"  -f, --format csv|jsonl  (default: JSON when a line starts with {)\n"
"  -s, --strict          conflicting lines refuse the import: nothing\n"
"                        written\n"
"  -d, --dry-run         check every line, write nothing\n"
"  -q, --quiet           count skipped and conflicting lines without\n"
"                        explaining them\n"
"\n"
"Exit status: 0 every line written as given; 1 some lines skipped or\n"
"overruled by a more restrictive line (every domain written); 2 not\n"
"every domain written: Redis refused writes or could not be used, a file\n"
"could not be read or --strict found conflicts (then nothing is\n"
"written).\n",
    IMPORT_TTL_MAX);
}
