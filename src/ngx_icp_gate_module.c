
/*
 * Copyright (C) icp_gate authors
 *
 * The engine's core module: the main-context directives the HTTP and RTMP
 * gates share, the zone, and the engine's start and end in each worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_module.h"
#include "ngx_icp_gate_lookup.h"
#include "ngx_icp_gate_watch.h"
#include "ngx_icp_gate_cache.h"
#include "ngx_icp_gate_domain.h"
#include "ngx_icp_gate_file.h"
#include "ngx_icp_gate_metrics.h"


typedef struct {
    ngx_icp_gate_lookup_conf_t  lookup;
    ngx_shm_zone_t             *metrics;
    ngx_flag_t                  used;
    ngx_flag_t                  default_zone;
} ngx_icp_gate_main_conf_t;


static void *ngx_icp_gate_create_conf(ngx_cycle_t *cycle);
static char *ngx_icp_gate_init_conf(ngx_cycle_t *cycle, void *conf);
static char *ngx_icp_gate_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_icp_gate_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_icp_gate_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_icp_gate_api_rate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_icp_gate_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_icp_gate_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_icp_gate_init_module(ngx_cycle_t *cycle);
static void ngx_icp_gate_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_icp_gate_api_methods[] = {
    { ngx_string("GET"), NGX_ICP_GATE_API_GET },
    { ngx_string("POST"), NGX_ICP_GATE_API_POST },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_icp_gate_api_regions[] = {
    { ngx_string("mainland"), NGX_ICP_GATE_REGION_MAINLAND },
    { ngx_string("global"), NGX_ICP_GATE_REGION_GLOBAL },
    { ngx_string("overseas"), NGX_ICP_GATE_REGION_OVERSEAS },
    { ngx_string("none"), NGX_ICP_GATE_REGION_NONE },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_icp_gate_commands[] = {

    { ngx_string("icp_gate_zone"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_icp_gate_zone,
      0,
      0,
      NULL },

    { ngx_string("icp_gate_redis"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_1MORE,
      ngx_icp_gate_redis,
      0,
      0,
      NULL },

    { ngx_string("icp_gate_redis_prefix"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.redis.prefix),
      NULL },

    { ngx_string("icp_gate_api"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_icp_gate_api,
      0,
      0,
      NULL },

    { ngx_string("icp_gate_file"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_icp_gate_file,
      0,
      0,
      NULL },

    { ngx_string("icp_gate_api_header"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE2,
      ngx_conf_set_keyval_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.api.headers),
      NULL },

    { ngx_string("icp_gate_api_method"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_icp_gate_enum,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.api.method),
      &ngx_icp_gate_api_methods },

    { ngx_string("icp_gate_api_body"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.api.body),
      NULL },

    { ngx_string("icp_gate_api_success"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_2MORE,
      ngx_icp_gate_api_map_success,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.api.map.success),
      NULL },

    { ngx_string("icp_gate_api_status"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_1MORE,
      ngx_icp_gate_api_map_field,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.api.map.status),
      ngx_icp_gate_status_names },

    { ngx_string("icp_gate_api_icp"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_icp_gate_api_map_field,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.api.map.icp),
      NULL },

    { ngx_string("icp_gate_api_region"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_1MORE,
      ngx_icp_gate_api_map_field,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.api.map.region),
      ngx_icp_gate_region_names },

    { ngx_string("icp_gate_api_domain"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_icp_gate_api_map_field,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.api.map.domain),
      NULL },

    { ngx_string("icp_gate_api_default_region"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_icp_gate_enum,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.api.map.default_region),
      &ngx_icp_gate_api_regions },

    { ngx_string("icp_gate_api_unfiled_status"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_1MORE,
      ngx_icp_gate_api_map_unfiled,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.api.map.unfiled),
      NULL },

    { ngx_string("icp_gate_api_concurrency"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.api.concurrency),
      NULL },

    { ngx_string("icp_gate_api_rate"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_icp_gate_api_rate,
      0,
      0,
      NULL },

    { ngx_string("icp_gate_api_timeout"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.api.timeout),
      NULL },

    { ngx_string("icp_gate_ttl"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.ttl),
      NULL },

    { ngx_string("icp_gate_negative_ttl"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.negative_ttl),
      NULL },

    { ngx_string("icp_gate_error_ttl"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.error_ttl),
      NULL },

    { ngx_string("icp_gate_stale_while_revalidate"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.stale),
      NULL },

    { ngx_string("icp_gate_local_ttl"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      0,
      offsetof(ngx_icp_gate_main_conf_t, lookup.local_ttl),
      NULL },

      ngx_null_command
};


static ngx_core_module_t  ngx_icp_gate_module_ctx = {
    ngx_string("icp_gate"),
    ngx_icp_gate_create_conf,
    ngx_icp_gate_init_conf
};


ngx_module_t  ngx_icp_gate_module = {
    NGX_MODULE_V1,
    &ngx_icp_gate_module_ctx,              /* module context */
    ngx_icp_gate_commands,                 /* module directives */
    NGX_CORE_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_icp_gate_init_module,              /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_icp_gate_exit_process,             /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_uint_t  ngx_icp_gate_worker_ready;


static void *
ngx_icp_gate_create_conf(ngx_cycle_t *cycle)
{
    ngx_icp_gate_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cycle->pool, sizeof(ngx_icp_gate_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->lookup.zone = NULL;
     *     mcf->lookup.redis = { 0 };
     *     mcf->lookup.api.url = { 0, NULL };
     *     mcf->lookup.api.headers = NULL;
     *     mcf->used = 0;
     */

    mcf->lookup.api.method = NGX_CONF_UNSET_UINT;
    mcf->lookup.api.map.default_region = NGX_CONF_UNSET_UINT;
    mcf->lookup.api.timeout = NGX_CONF_UNSET_MSEC;
    mcf->lookup.api.concurrency = NGX_CONF_UNSET;
    mcf->lookup.ttl = NGX_CONF_UNSET;
    mcf->lookup.negative_ttl = NGX_CONF_UNSET;
    mcf->lookup.local_ttl = NGX_CONF_UNSET_MSEC;
    mcf->lookup.error_ttl = NGX_CONF_UNSET_MSEC;
    mcf->lookup.stale = NGX_CONF_UNSET_MSEC;
    mcf->lookup.api_rate = NGX_CONF_UNSET_UINT;

    return mcf;
}


static char *
ngx_icp_gate_init_conf(ngx_cycle_t *cycle, void *conf)
{
    ngx_icp_gate_main_conf_t  *mcf = conf;

    char                     *rc;
    ngx_icp_gate_api_conf_t  *acf;

    acf = &mcf->lookup.api;

    ngx_conf_init_uint_value(acf->method, NGX_ICP_GATE_API_GET);
    ngx_conf_init_msec_value(mcf->lookup.api.timeout, 3000);
    ngx_conf_init_value(mcf->lookup.api.concurrency, 64);
    ngx_conf_init_value(mcf->lookup.ttl, 86400);
    ngx_conf_init_value(mcf->lookup.negative_ttl, 1800);
    ngx_conf_init_msec_value(mcf->lookup.local_ttl, 60000);
    ngx_conf_init_msec_value(mcf->lookup.error_ttl, 5000);
    ngx_conf_init_msec_value(mcf->lookup.stale, 10000);
    ngx_conf_init_uint_value(mcf->lookup.api_rate, 0);

    if (mcf->lookup.redis.prefix.data == NULL) {
        ngx_str_set(&mcf->lookup.redis.prefix, "icp:");
    }

    if (mcf->lookup.ttl <= 0 || mcf->lookup.negative_ttl <= 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"icp_gate_ttl\" and \"icp_gate_negative_ttl\" "
                      "must be positive");
        return NGX_CONF_ERROR;
    }

    if (mcf->lookup.api.concurrency <= 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"icp_gate_api_concurrency\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (mcf->lookup.error_ttl == 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"icp_gate_error_ttl\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (mcf->lookup.api.timeout == 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"icp_gate_api_timeout\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (mcf->lookup.redis.prefix.len > 128) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"icp_gate_redis_prefix\" is longer than 128 bytes");
        return NGX_CONF_ERROR;
    }

    if (acf->body.data && acf->method != NGX_ICP_GATE_API_POST) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"icp_gate_api_body\" needs "
                      "\"icp_gate_api_method POST\"");
        return NGX_CONF_ERROR;
    }

    if (acf->url.len
        && ngx_strlcasestrn(acf->url.data, acf->url.data + acf->url.len,
                            (u_char *) "{domain}", 8 - 1) == NULL
        && (acf->body.len == 0
            || ngx_strlcasestrn(acf->body.data,
                                acf->body.data + acf->body.len,
                                (u_char *) "{domain}", 8 - 1) == NULL))
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"icp_gate_api\" URL \"%V\" has no \"{domain}\", "
                      "nor has \"icp_gate_api_body\"", &acf->url);
        return NGX_CONF_ERROR;
    }

    rc = ngx_icp_gate_api_map_init(cycle->pool, &acf->map);
    if (rc != NGX_CONF_OK) {
        return rc;
    }

    if (acf->map.status.rule == NGX_ICP_GATE_API_MAP_PRESENCE
        && acf->map.success.rule == NGX_ICP_GATE_API_MAP_UNSET)
    {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "\"icp_gate_api_status ... present\" without "
                      "\"icp_gate_api_success\": an error the API answers "
                      "in a 200 reads as \"unfiled\"");
    }

    return NGX_CONF_OK;
}


/* ngx_conf_set_enum_slot(), with a message that names the directive */

static char *
ngx_icp_gate_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_uint_t  *field = (ngx_uint_t *) ((char *) conf + cmd->offset);

    u_char           *p, buf[128];
    ngx_str_t        *value;
    ngx_uint_t        i;
    ngx_conf_enum_t  *e;

    if (*field != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    e = cmd->post;
    p = buf;

    for (i = 0; e[i].name.len; i++) {
        if (e[i].name.len == value[1].len
            && ngx_strcasecmp(e[i].name.data, value[1].data) == 0)
        {
            *field = e[i].value;
            return NGX_CONF_OK;
        }

        p = ngx_slprintf(p, buf + sizeof(buf), "%s%V", i ? ", " : "",
                         &e[i].name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\", expected %*s",
                       &value[1], &cmd->name, p - buf, buf);

    return NGX_CONF_ERROR;
}


/* N/s or N/m, as limit_req's rate, or off */

static char *
ngx_icp_gate_api_rate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_icp_gate_main_conf_t  *mcf = conf;

    size_t      len;
    ngx_int_t   rate, scale;
    ngx_str_t  *value;

    if (mcf->lookup.api_rate != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        mcf->lookup.api_rate = 0;
        return NGX_CONF_OK;
    }

    len = value[1].len;
    scale = 1;

    if (len > 2 && ngx_strncmp(value[1].data + len - 2, "/s", 2) == 0) {
        len -= 2;

    } else if (len > 2
               && ngx_strncmp(value[1].data + len - 2, "/m", 2) == 0)
    {
        len -= 2;
        scale = 60;

    } else {
        len = 0;
    }

    rate = len ? ngx_atoi(value[1].data, len) : NGX_ERROR;

    if (rate <= 0 || rate > 1000000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rate \"%V\" in \"icp_gate_api_rate\", "
                           "expected N/s, N/m (N from 1 to 1000000) or off",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    mcf->lookup.api_rate = rate * 1000 / scale;

    if (mcf->lookup.api_rate == 0) {
        mcf->lookup.api_rate = 1;
    }

    return NGX_CONF_OK;
}


static char *
ngx_icp_gate_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_icp_gate_main_conf_t  *mcf = conf;

    u_char     *p;
    ssize_t     size;
    ngx_str_t  *value, name, s;

    if (mcf->lookup.zone) {
        return mcf->default_zone
               ? "must come before the first \"icp_gate\" directive"
               : "is duplicate";
    }

    value = cf->args->elts;

    p = (u_char *) ngx_strchr(value[1].data, ':');

    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\" in \"icp_gate_zone\", "
                           "expected NAME:SIZE", &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\" in \"icp_gate_zone\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" in \"icp_gate_zone\" is too small",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    mcf->lookup.zone = ngx_icp_gate_cache_add(cf, &name, size,
                                              &ngx_icp_gate_module);
    if (mcf->lookup.zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_icp_gate_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_icp_gate_main_conf_t  *mcf = conf;

    if (mcf->lookup.redis.name.len) {
        return "is duplicate";
    }

    return ngx_icp_gate_redis_parse(cf, &mcf->lookup.redis);
}


static char *
ngx_icp_gate_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_icp_gate_main_conf_t  *mcf = conf;

    ngx_str_t  *value;

    if (mcf->lookup.api.url.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strncasecmp(value[1].data, (u_char *) "http://", 7) != 0
        && ngx_strncasecmp(value[1].data, (u_char *) "https://", 8) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"icp_gate_api\", "
                           "expected http:// or https://", &value[1]);
        return NGX_CONF_ERROR;
    }

    mcf->lookup.api.url = value[1];

    return NGX_CONF_OK;
}


ngx_int_t
ngx_icp_gate_use(ngx_conf_t *cf)
{
    ngx_str_t                  name;
    ngx_icp_gate_main_conf_t  *mcf;

    mcf = (ngx_icp_gate_main_conf_t *)
              ngx_get_conf(cf->cycle->conf_ctx, ngx_icp_gate_module);

    mcf->used = 1;

    if (mcf->metrics == NULL) {
        mcf->metrics = ngx_icp_gate_metrics_add(cf, &ngx_icp_gate_module);
        if (mcf->metrics == NULL) {
            return NGX_ERROR;
        }
    }

    if (mcf->lookup.zone) {
        return NGX_OK;
    }

    ngx_str_set(&name, "icp_gate");

    mcf->lookup.zone = ngx_icp_gate_cache_add(cf, &name, 10 * 1024 * 1024,
                                              &ngx_icp_gate_module);
    if (mcf->lookup.zone == NULL) {
        return NGX_ERROR;
    }

    mcf->default_zone = 1;

    return NGX_OK;
}


/*
 * Read here, by the master, with the configuration: "nginx -t" checks the
 * file, and the workers share the master's table
 */

static char *
ngx_icp_gate_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_icp_gate_main_conf_t  *mcf = conf;

    ngx_str_t  *value;

    if (mcf->lookup.file) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* the hosts are reduced as a request's are */

    if (ngx_icp_gate_domain_init(cf->log) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    mcf->lookup.file = ngx_icp_gate_file_load(cf, &value[1]);

    /* the memo holds hashes of no zone's key: no worker may find them */

    ngx_icp_gate_domain_forget();

    return mcf->lookup.file ? NGX_CONF_OK : NGX_CONF_ERROR;
}


static ngx_int_t
ngx_icp_gate_init_module(ngx_cycle_t *cycle)
{
    ngx_icp_gate_main_conf_t  *mcf;

    mcf = (ngx_icp_gate_main_conf_t *)
              ngx_get_conf(cycle->conf_ctx, ngx_icp_gate_module);

    /* a file no gate uses any more is forgotten by the zone all the same */

    if (ngx_icp_gate_file_commit(cycle, mcf->used ? mcf->lookup.file : NULL,
                                 &mcf->lookup.file_changes)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!mcf->used) {
        return NGX_OK;
    }

    /* loaded once in the master, so every worker shares the pages */

    return ngx_icp_gate_domain_init(cycle->log);
}


/*
 * Called from the init_process of the protocol modules: core modules come
 * before the event modules, so the engine's own init_process would run
 * before the worker has connections or timers.
 */

ngx_int_t
ngx_icp_gate_init_worker(ngx_cycle_t *cycle)
{
    ngx_icp_gate_main_conf_t  *mcf;

    /* nor in the cache manager and loader, which never judge */

    if (ngx_icp_gate_worker_ready
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return NGX_OK;
    }

    mcf = (ngx_icp_gate_main_conf_t *)
              ngx_get_conf(cycle->conf_ctx, ngx_icp_gate_module);

    if (!mcf->used) {
        return NGX_OK;
    }

    ngx_icp_gate_worker_ready = 1;

    /* before anything is hashed: the zone's buckets are by its key */
    ngx_icp_gate_cache_use_key(mcf->lookup.zone->data);

    ngx_icp_gate_cache_join(mcf->lookup.zone->data,
                            mcf->lookup.file_changes.generation);

    if (ngx_icp_gate_metrics_init_worker(cycle, mcf->metrics) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_icp_gate_watch_init(cycle, &mcf->lookup) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_icp_gate_lookup_init(cycle, &mcf->lookup);
}


static void
ngx_icp_gate_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_icp_gate_worker_ready) {
        ngx_icp_gate_watch_done();
        ngx_icp_gate_lookup_done();
        ngx_icp_gate_metrics_exit_worker();
    }
}
