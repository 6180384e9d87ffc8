
/*
 * Copyright (C) icp_gate authors
 *
 * The Redis adapter: its directive, and its start and end in a worker.
 * Its parts: the connections and their commands with deadlines
 * (ngx_icp_gate_redis_conn.c), the verdicts' hash, reads, writes and
 * backlog (_store.c), the fleet's lock (_lock.c), and the node's
 * invalidation channel (_channel.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_icp_gate_redis_store.h"
#include "ngx_icp_gate_redis_channel.h"


static ngx_int_t ngx_icp_gate_redis_param(ngx_str_t *arg, const char *name,
    ngx_str_t *value);


char *
ngx_icp_gate_redis_parse(ngx_conf_t *cf, ngx_icp_gate_redis_conf_t *rcf)
{
    u_char     *p;
    size_t      len;
    ngx_int_t   n;
    ngx_str_t  *value, s;
    ngx_url_t   u;
    ngx_uint_t  i;

    value = cf->args->elts;

    rcf->name = value[1];
    rcf->timeout = 1000;
    rcf->idle = 30000;
    rcf->tracking = 1;

    /* with Sentinel, no address: the sentinels tell it */

    if (ngx_strncmp(value[1].data, "sentinel=", 9) == 0
        || ngx_strncmp(value[1].data, "master=", 7) == 0)
    {
        i = 1;
        goto parameters;
    }

    if (ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        len = value[1].len - 5;

        if (len == 0) {
            return "has an empty unix socket path";
        }

        rcf->path.data = ngx_pnalloc(cf->pool, len + 1);
        if (rcf->path.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(rcf->path.data, value[1].data + 5, len);
        rcf->path.data[len] = '\0';
        rcf->path.len = len;

    } else {
        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = value[1];
        u.default_port = 6379;

        /* a name must resolve when nginx starts, as proxy_pass's does */

        if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
            if (u.err) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "%s in \"icp_gate_redis\" address \"%V\"",
                                   u.err, &u.url);
            }

            return NGX_CONF_ERROR;
        }

        if (u.naddrs == 0) {
            return "names no address";
        }

        /*
         * a host name is kept, and resolved again, without blocking, for
         * each connection (ngx_icp_gate_redis_connect): the address of a
         * Redis that moves is followed
         */

        p = ngx_pnalloc(cf->pool, ngx_max(u.host.len, NGX_SOCKADDR_STRLEN)
                                  + 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_icp_gate_resolve_unbracket(&u.host);

        if (ngx_icp_gate_resolve_needed(&u.host)) {
            len = ngx_cpymem(p, u.host.data, u.host.len) - p;
            rcf->resolve = 1;

        } else {
            len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                                NGX_SOCKADDR_STRLEN, 0);
        }

        p[len] = '\0';

        rcf->host.data = p;
        rcf->host.len = len;
        rcf->port = u.port;
    }

    i = 2;

parameters:

    for ( /* void */ ; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "sentinel=", 9) == 0) {
            if (rcf->host.len || rcf->path.len) {
                goto invalid;
            }

            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            if (ngx_icp_gate_sentinel_parse(cf, &s, &rcf->sentinel)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        n = ngx_icp_gate_redis_param(&value[i], "master=",
                                     &rcf->sentinel.master);

        if (n == NGX_DECLINED) {
            n = ngx_icp_gate_redis_param(&value[i], "sentinel_password=",
                                         &rcf->sentinel.password);
        }

        if (n == NGX_DECLINED) {
            n = ngx_icp_gate_redis_param(&value[i], "password=",
                                         &rcf->password);
        }

        if (n == NGX_ERROR) {
            goto invalid;
        }

        if (n == NGX_OK) {
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rcf->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            rcf->timeout = n;
            continue;
        }

        if (ngx_strcmp(value[i].data, "idle=off") == 0) {
            rcf->idle = 0;
            continue;
        }

        if (ngx_strncmp(value[i].data, "idle=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            rcf->idle = n;
            continue;
        }

        if (ngx_strcmp(value[i].data, "tracking=on") == 0) {
            rcf->tracking = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "tracking=off") == 0) {
            rcf->tracking = 0;
            continue;
        }

        goto invalid;
    }

    if (rcf->sentinel.naddrs == 0 && rcf->sentinel.master.len == 0) {
        return NGX_CONF_OK;
    }

    if (rcf->sentinel.naddrs == 0 || rcf->sentinel.master.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"icp_gate_redis\" needs both sentinel= and "
                           "master= to find Redis through Sentinel");
        return NGX_CONF_ERROR;
    }

    rcf->name = rcf->sentinel.master;
    rcf->sentinel.timeout = rcf->timeout;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"icp_gate_redis\"",
                       &value[i]);

    return NGX_CONF_ERROR;
}


/*
 * "name=VALUE": NGX_OK with value, NGX_ERROR when VALUE is empty,
 * NGX_DECLINED when arg is another parameter
 */

static ngx_int_t
ngx_icp_gate_redis_param(ngx_str_t *arg, const char *name, ngx_str_t *value)
{
    size_t  len;

    len = ngx_strlen(name);

    if (arg->len < len || ngx_strncmp(arg->data, name, len) != 0) {
        return NGX_DECLINED;
    }

    if (arg->len == len) {
        return NGX_ERROR;
    }

    value->data = arg->data + len;
    value->len = arg->len - len;

    return NGX_OK;
}


ngx_int_t
ngx_icp_gate_redis_init(ngx_cycle_t *cycle, ngx_icp_gate_redis_conf_t *rcf)
{
    if (rcf->prefix.len > NGX_ICP_GATE_REDIS_PREFIX_MAX) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "icp_gate: redis prefix is longer than %d bytes",
                      NGX_ICP_GATE_REDIS_PREFIX_MAX);
        return NGX_ERROR;
    }

    ngx_icp_gate_redis_conf = rcf;

    ngx_icp_gate_redis_conns_init(cycle);
    ngx_icp_gate_redis_store_init();

    ngx_icp_gate_redis_connect(&ngx_icp_gate_redis_rd);
    ngx_icp_gate_redis_connect(&ngx_icp_gate_redis_wr);

    if (rcf->tracking && rcf->tracked) {
        ngx_icp_gate_redis_channel_init(cycle);
    }

    return NGX_OK;
}


void
ngx_icp_gate_redis_done(void)
{
    ngx_icp_gate_redis_conns_done();

    if (ngx_icp_gate_redis_conf->tracking && ngx_icp_gate_redis_conf->tracked)
    {
        ngx_icp_gate_redis_channel_done();
    }

    ngx_icp_gate_redis_store_done();
}
