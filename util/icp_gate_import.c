
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
#include <hiredis/hiredis.h>

#include "ngx_icp_gate_verdict.h"
#include "ngx_icp_gate_domain.h"
#include "ngx_icp_gate_filings.h"
#include "ngx_icp_gate_resolve.h"
#include "ngx_icp_gate_standalone.h"


/* replies read back after this many calls sent */
#define IMPORT_BATCH       2000

/* skipped and conflicting lines explained one by one, then only counted */
#define IMPORT_EXPLAIN     20

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
    ngx_uint_t                  rate;       /* writes a second, 0: any */
    ngx_uint_t                  dry_run;
    ngx_uint_t                  strict;
    ngx_uint_t                  quiet;
    char                       *format;     /* NULL: by each line */
} import_conf_t;


typedef struct {
    ngx_uint_t                  explained;      /* conflicting lines */
    ngx_uint_t                  written;
    ngx_uint_t                  subdomains;     /* of those written */
    ngx_uint_t                  failed;         /* Redis said no */
    ngx_uint_t                  answered;       /* calls Redis answered */
} import_counts_t;


/* what the reader's reports need: fs->data */
typedef struct {
    import_conf_t              *conf;
    char                      **names;
    import_counts_t            *n;
} import_report_t;


static void import_skip(ngx_icp_gate_filings_t *fs, ngx_uint_t file,
    ngx_uint_t line, u_char *text, size_t len, char *why);
static void import_conflict(ngx_icp_gate_filings_t *fs,
    ngx_icp_gate_filing_t *d, ngx_icp_gate_filing_t *kept,
    ngx_uint_t heavier);
static ngx_int_t import_write(import_conf_t *conf, redisContext *rc,
    ngx_icp_gate_filings_t *fs, import_counts_t *n);
static ngx_int_t import_drain(redisContext *rc, ngx_icp_gate_filings_t *fs,
    ngx_uint_t sent, import_counts_t *n);
static redisContext *import_connect(import_conf_t *conf,
    ngx_pool_t *pool);
static void import_usage(FILE *out);
static uint64_t import_us(void);


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
    import_counts_t             n;
    import_report_t             report;
    ngx_icp_gate_filings_t      fs;
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
        { "rate",     required_argument, NULL, 'R' },
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

    while ((c = getopt_long(argc, argv, "r:n:a:p:t:R:f:sdqh", options, NULL))
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

        case 'R':
            c = ngx_atoi((u_char *) optarg, ngx_strlen(optarg));

            if (c <= 0) {
                fprintf(stderr, "icp-gate-import: --rate \"%s\": expected "
                        "writes a second, 1 or more\n", optarg);
                return 2;
            }

            conf.rate = (ngx_uint_t) c;
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

    ngx_memzero(&n, sizeof(import_counts_t));

    in = ngx_calloc(files * sizeof(FILE *), &sa.log);

    if (in == NULL || ngx_icp_gate_filings_init(&fs, &sa.log) != NGX_OK) {
        fprintf(stderr, "icp-gate-import: out of memory\n");
        return 2;
    }

    report.conf = &conf;
    report.names = names;
    report.n = &n;

    fs.data = &report;
    fs.skip = import_skip;
    fs.conflict = import_conflict;

    if (conf.format) {
        fs.format = (conf.format[0] == 'j') ? NGX_ICP_GATE_FILINGS_JSONL
                                            : NGX_ICP_GATE_FILINGS_CSV;
    }

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
        if (ngx_icp_gate_filings_read(&fs, in[i], i) != NGX_OK) {
            fprintf(stderr, "icp-gate-import: %s: %s; nothing written\n",
                    names[i], fs.failure);
            code = 2;
            goto done;
        }
    }

    if (conf.strict && fs.conflicts) {
        fprintf(stderr, "icp-gate-import: %lu domains have conflicting "
                "lines: nothing written (--strict)\n",
                (unsigned long) fs.conflicts);
        code = 2;
        goto done;
    }

    if (rc == NULL) {
        for (i = 0; i < fs.n; i++) {
            n.subdomains += fs.domains[i].subdomain;
        }

        n.written = fs.n;

    } else if (import_write(&conf, rc, &fs, &n) != NGX_OK) {
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
           (unsigned long) fs.lines, (unsigned long) n.written,
           conf.dry_run ? "checked, nothing written (--dry-run)" : "written",
           expiry, (unsigned long) n.subdomains,
           (unsigned long) fs.conflicts, (unsigned long) fs.skipped,
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
    ngx_icp_gate_filings_free(&fs);
    ngx_destroy_pool(pool);

    if (code == 0 && (fs.skipped || fs.conflicts || n.failed)) {
        code = n.failed ? 2 : 1;
    }

    return code;
}


static void
import_conflict(ngx_icp_gate_filings_t *fs, ngx_icp_gate_filing_t *d,
    ngx_icp_gate_filing_t *kept, ngx_uint_t heavier)
{
    import_report_t  *report = fs->data;

    char             *why, **names;
    u_char           *p, *there;
    import_counts_t  *n;
    u_char            here[2 * (sizeof(" icp  region overseas")
                                + NGX_ICP_GATE_ICP_LEN + sizeof("unfiled"))];

    names = report->names;
    n = report->n;

    if (report->conf->quiet) {
        return;
    }

    if (n->explained == IMPORT_EXPLAIN) {
        fprintf(stderr, "icp-gate-import: more conflicting lines, counted "
                "only\n");
    }

    if (n->explained++ >= IMPORT_EXPLAIN) {
        return;
    }

    p = ngx_icp_gate_filings_describe(here, here + sizeof(here) / 2 - 1, d);
    *p++ = '\0';

    there = p;
    p = ngx_icp_gate_filings_describe(there, here + sizeof(here) - 1, kept);
    *p = '\0';

    if (heavier) {
        why = "kept this line's verdict, the more restrictive";

    } else if (ngx_icp_gate_filings_weight(d)
               < ngx_icp_gate_filings_weight(kept))
    {
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


/*
 * Every domain kept, one script call each, IMPORT_BATCH calls in flight;
 * with --rate, a tenth of a second's worth at a time, each batch sent no
 * sooner than its share of the time: every write is one message to every
 * node of the fleet that listens for changes (README, "on paper")
 */

static ngx_int_t
import_write(import_conf_t *conf, redisContext *rc,
    ngx_icp_gate_filings_t *fs, import_counts_t *n)
{
    size_t                  len[9];
    uint64_t                start, due, now;
    ngx_str_t              *status, *region;
    ngx_uint_t              i, batch;
    const char             *argv[9];
    ngx_icp_gate_filing_t  *d;
    u_char                  key[NGX_ICP_GATE_DOMAIN_LEN + 256];
    u_char                  checked[NGX_TIME_T_LEN], ttl[NGX_TIME_T_LEN];

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

    batch = conf->rate ? ngx_max(conf->rate / 10, 1) : IMPORT_BATCH;
    batch = ngx_min(batch, IMPORT_BATCH);
    start = import_us();

    for (i = 0; i < fs->n; i++) {
        d = &fs->domains[i];

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

        if (i + 1 - n->answered < batch) {
            continue;
        }

        if (import_drain(rc, fs, i + 1, n) != NGX_OK) {
            return NGX_ERROR;
        }

        if (conf->rate && i + 1 < fs->n) {
            due = start + (uint64_t) (i + 1) * 1000000 / conf->rate;
            now = import_us();

            if (now < due) {
                usleep((useconds_t) (due - now));
            }
        }
    }

    return import_drain(rc, fs, fs->n, n);
}


static uint64_t
import_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* the answers to the calls before the sent-th: a domain counts once taken */

static ngx_int_t
import_drain(redisContext *rc, ngx_icp_gate_filings_t *fs, ngx_uint_t sent,
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
            n->subdomains += fs->domains[n->answered].subdomain;

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
import_skip(ngx_icp_gate_filings_t *fs, ngx_uint_t file, ngx_uint_t line,
    u_char *text, size_t len, char *why)
{
    import_report_t  *report = fs->data;

    if (report->conf->quiet) {
        return;
    }

    if (fs->skipped < IMPORT_EXPLAIN) {
        fprintf(stderr, "icp-gate-import: %s:%lu: skipped \"%.*s%s\": %s\n",
                report->names[file], (unsigned long) line,
                (int) ngx_min(len, 60), text, len > 60 ? "..." : "", why);

    } else if (fs->skipped == IMPORT_EXPLAIN) {
        fprintf(stderr, "icp-gate-import: more lines skipped, counted "
                "only\n");
    }
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
"  -R, --rate N          at most N writes a second (default: as fast as\n"
"                        Redis takes them); each write is a message to\n"
"                        every node listening for changes\n"
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
