
/*
 * Copyright (C) icp_gate authors
 *
 * icp-gate-import: filing verdicts a platform already knows, written to
 * Redis as the gate reads them.  Each line's host is reduced by the gate's
 * own code (this program is linked with the objects of the nginx build),
 * so an import lands on the very key a request looks up.  Writes are
 * pipelined, one script call a domain.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "ngx_icp_gate_verdict.h"
#include "ngx_icp_gate_domain.h"
#include "ngx_icp_gate_resolve.h"
#include "ngx_icp_gate_standalone.h"


/* replies read back after this many calls sent */
#define IMPORT_BATCH       2000

/* skipped lines explained one by one, then only counted */
#define IMPORT_EXPLAIN     20

#define IMPORT_LINE_MAX    4096


typedef struct {
    char                       *redis;
    ngx_uint_t                  db;
    char                       *password;
    char                       *prefix;
    long                        ttl;
    ngx_uint_t                  dry_run;
    ngx_uint_t                  quiet;
    char                       *format;     /* NULL: by each line */
} import_conf_t;


typedef struct {
    ngx_str_t                   host;
    ngx_str_t                   status;
    ngx_str_t                   icp;
    ngx_str_t                   region;
} import_record_t;


typedef struct {
    ngx_uint_t                  lines;
    ngx_uint_t                  written;
    ngx_uint_t                  reduced;    /* host was not its domain */
    ngx_uint_t                  skipped;
    ngx_uint_t                  failed;     /* Redis said no */
    ngx_uint_t                  pending;    /* calls sent, unanswered */
} import_counts_t;


static int import_file(import_conf_t *conf, redisContext *rc, char *name,
    FILE *in, ngx_pool_t *pool, import_counts_t *n);
static char *import_csv(u_char *line, size_t len, import_record_t *rec);
static char *import_json(u_char *line, size_t len, import_record_t *rec,
    ngx_pool_t *pool);
static char *import_check(import_record_t *rec, ngx_pool_t *pool,
    ngx_str_t *domain);
static int import_send(import_conf_t *conf, redisContext *rc,
    ngx_str_t *domain, import_record_t *rec, import_counts_t *n);
static int import_drain(redisContext *rc, import_counts_t *n);
static redisContext *import_connect(import_conf_t *conf,
    ngx_pool_t *pool);
static void import_skip(import_conf_t *conf, char *name, ngx_uint_t line,
    u_char *text, size_t len, char *why, import_counts_t *n);
static void import_usage(FILE *out);


/* the script loaded once, called a domain: DEL and HSET in one step */
static const char  import_script[] =
    "redis.call('DEL', KEYS[1]) "
    "redis.call('HSET', KEYS[1], 'status', ARGV[1], 'source', 'import', "
        "'checked_at', ARGV[2]) "
    "if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'icp', ARGV[3]) end "
    "if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'region', ARGV[4]) "
    "end "
    "if ARGV[5] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[5]) end "
    "return 1";

static char  import_sha[41];


int
main(int argc, char **argv)
{
    int                         c, rc_code;
    char                       *name;
    FILE                       *in;
    ngx_uint_t                  i;
    ngx_pool_t                 *pool;
    redisContext               *rc;
    import_conf_t               conf;
    import_counts_t             n;
    ngx_icp_gate_standalone_t   sa;
    u_char                      expiry[sizeof("expiring in  s")
                                       + NGX_TIME_T_LEN];

    static struct option  options[] = {
        { "redis",    required_argument, NULL, 'r' },
        { "db",       required_argument, NULL, 'n' },
        { "password", required_argument, NULL, 'a' },
        { "prefix",   required_argument, NULL, 'p' },
        { "ttl",      required_argument, NULL, 't' },
        { "format",   required_argument, NULL, 'f' },
        { "dry-run",  no_argument,       NULL, 'd' },
        { "quiet",    no_argument,       NULL, 'q' },
        { "help",     no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    ngx_memzero(&conf, sizeof(import_conf_t));
    conf.redis = "127.0.0.1:6379";
    conf.prefix = "icp:";
    conf.password = getenv("ICP_GATE_REDIS_PASSWORD");

    while ((c = getopt_long(argc, argv, "r:n:a:p:t:f:dqh", options, NULL))
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
            conf.ttl = ngx_atotm((u_char *) optarg, ngx_strlen(optarg));
            if (conf.ttl == NGX_ERROR) {
                fprintf(stderr, "icp-gate-import: --ttl \"%s\": expected "
                        "seconds\n", optarg);
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

    rc = NULL;

    if (!conf.dry_run) {
        rc = import_connect(&conf, pool);
        if (rc == NULL) {
            return 2;
        }
    }

    ngx_memzero(&n, sizeof(import_counts_t));
    rc_code = 0;

    for (i = optind; i == (ngx_uint_t) optind || i < (ngx_uint_t) argc; i++) {

        if (i >= (ngx_uint_t) argc || strcmp(argv[i], "-") == 0) {
            name = "-";
            in = stdin;

        } else {
            name = argv[i];
            in = fopen(name, "r");

            if (in == NULL) {
                fprintf(stderr, "icp-gate-import: %s: %s\n", name,
                        strerror(errno));
                rc_code = 2;
                break;
            }
        }

        if (import_file(&conf, rc, name, in, pool, &n) != NGX_OK) {
            rc_code = 2;
        }

        if (in != stdin) {
            fclose(in);
        }

        if (rc_code) {
            break;
        }
    }

    /* what was sent before a file failed is written all the same */

    if (rc && rc->err == 0 && import_drain(rc, &n) != NGX_OK) {
        rc_code = 2;
    }

    if (conf.ttl) {
        ngx_sprintf(expiry, "expiring in %T s%Z", conf.ttl);

    } else {
        ngx_sprintf(expiry, "no expiry%Z");
    }

    printf("icp-gate-import: %lu lines: %lu domains %s (source import, %s),"
           " %lu of them under their registrable domain, not the host given;"
           " %lu lines skipped; "
           "%lu refused by Redis\n",
           (unsigned long) n.lines, (unsigned long) n.written,
           conf.dry_run ? "checked, nothing written (--dry-run)" : "written",
           expiry, (unsigned long) n.reduced, (unsigned long) n.skipped,
           (unsigned long) n.failed);

    if (rc) {
        redisFree(rc);
    }

    if (rc_code == 0 && (n.skipped || n.failed)) {
        rc_code = n.failed ? 2 : 1;
    }

    return rc_code;
}


static int
import_file(import_conf_t *conf, redisContext *rc, char *name, FILE *in,
    ngx_pool_t *pool, import_counts_t *n)
{
    u_char           *p, *end;
    char             *why;
    size_t            len;
    ngx_str_t         domain;
    ngx_uint_t        line, json;
    import_record_t   rec;
    char              buf[IMPORT_LINE_MAX];

    for (line = 1; fgets(buf, sizeof(buf), in); line++) {

        len = ngx_strlen(buf);

        if (len == sizeof(buf) - 1 && buf[len - 1] != '\n') {
            import_skip(conf, name, line, (u_char *) buf, 60,
                        "longer than 4095 bytes", n);

            /* the rest of it; a NUL byte may make a piece look empty */

            while (fgets(buf, sizeof(buf), in)) {
                len = ngx_strlen(buf);

                if (len && buf[len - 1] == '\n') {
                    break;
                }
            }

            n->lines++;
            continue;
        }

        p = (u_char *) buf;
        end = p + len;

        while (end > p && (end[-1] == '\n' || end[-1] == '\r'
                           || end[-1] == ' ' || end[-1] == '\t'))
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
            why = import_check(&rec, pool, &domain);
        }

        if (why) {
            import_skip(conf, name, line, p, end - p, why, n);
            continue;
        }

        if (domain.len != rec.host.len) {
            n->reduced++;
        }

        /* a write counts once Redis has taken it (import_drain()) */

        if (rc == NULL) {
            n->written++;

        } else if (import_send(conf, rc, &domain, &rec, n) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ferror(in)) {
        fprintf(stderr, "icp-gate-import: %s: %s\n", name, strerror(errno));
        return NGX_ERROR;
    }

    return NGX_OK;
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


/* NULL: a record the gate can use, its registrable domain in *domain */

static char *
import_check(import_record_t *rec, ngx_pool_t *pool, ngx_str_t *domain)
{
    uint32_t                hash;
    ngx_icp_gate_verdict_t  v;

    if (rec->host.len == 0) {
        return "no domain";
    }

    if (ngx_icp_gate_verdict_name(ngx_icp_gate_status_names,
                                  rec->status.data, rec->status.len)
        == NGX_ICP_GATE_STATUS_NONE)
    {
        return "status is none of filed, pending, revoked, unfiled";
    }

    if (rec->region.len
        && ngx_icp_gate_verdict_name(ngx_icp_gate_region_names,
                                     rec->region.data, rec->region.len)
           == NGX_ICP_GATE_REGION_NONE)
    {
        return "region is none of mainland, global, overseas";
    }

    if (rec->icp.len) {
        ngx_icp_gate_verdict_set_icp(&v, rec->icp.data, rec->icp.len);

        if (v.icp_len == 0) {
            return "the filing number is longer than 95 bytes or has "
                   "control characters";
        }
    }

    switch (ngx_icp_gate_domain_registrable(pool, &rec->host, domain, &hash))
    {
    case NGX_ICP_GATE_HOST_VALID:
        return NULL;

    case NGX_ICP_GATE_HOST_IP_LITERAL:
        return "an IP address, not a domain";

    default:
        return "not a domain the gate can look up (a public suffix, bad "
               "characters or labels, or too long)";
    }
}


static int
import_send(import_conf_t *conf, redisContext *rc, ngx_str_t *domain,
    import_record_t *rec, import_counts_t *n)
{
    size_t       len[10];
    const char  *argv[10];
    u_char       key[NGX_ICP_GATE_DOMAIN_LEN + 256];
    u_char       checked[NGX_TIME_T_LEN], ttl[NGX_TIME_T_LEN];

    argv[0] = "EVALSHA";
    len[0] = 7;
    argv[1] = import_sha;
    len[1] = 40;
    argv[2] = "1";
    len[2] = 1;
    argv[3] = (char *) key;
    len[3] = ngx_snprintf(key, sizeof(key), "%sdomain:%V", conf->prefix,
                          domain) - key;
    argv[4] = (char *) rec->status.data;
    len[4] = rec->status.len;
    argv[5] = (char *) checked;
    len[5] = ngx_sprintf(checked, "%T", ngx_time()) - checked;
    argv[6] = rec->icp.len ? (char *) rec->icp.data : "";
    len[6] = rec->icp.len;
    argv[7] = rec->region.len ? (char *) rec->region.data : "";
    len[7] = rec->region.len;
    argv[8] = (char *) ttl;
    len[8] = ngx_sprintf(ttl, "%T", conf->ttl) - ttl;

    if (redisAppendCommandArgv(rc, 9, argv, len) != REDIS_OK) {
        fprintf(stderr, "icp-gate-import: redis: %s\n", rc->errstr);
        return NGX_ERROR;
    }

    if (++n->pending == IMPORT_BATCH) {
        return import_drain(rc, n);
    }

    return NGX_OK;
}


static int
import_drain(redisContext *rc, import_counts_t *n)
{
    void        *r;
    redisReply  *reply;

    for ( /* void */ ; n->pending; n->pending--) {

        if (redisGetReply(rc, &r) != REDIS_OK) {
            fprintf(stderr, "icp-gate-import: redis: %s\n", rc->errstr);
            return NGX_ERROR;
        }

        reply = r;

        if (reply->type != REDIS_REPLY_ERROR) {
            n->written++;

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
"  -r, --redis ADDR      host[:port], [v6][:port] or unix:/path, as\n"
"                        icp_gate_redis (default 127.0.0.1:6379)\n"
"  -n, --db N            database (default 0)\n"
"  -a, --password SECRET or $ICP_GATE_REDIS_PASSWORD\n"
"  -p, --prefix STRING   as icp_gate_redis_prefix (default icp:)\n"
"  -t, --ttl SECONDS     each hash expires (default: never)\n"
"  -f, --format csv|jsonl  (default: JSON when a line starts with {)\n"
"  -d, --dry-run         check every line, write nothing\n"
"  -q, --quiet           count skipped lines without explaining them\n"
"\n"
"Exit status: 0 all written; 1 some lines skipped (the rest written);\n"
"2 Redis refused writes, or Redis or a file could not be used.\n");
}
