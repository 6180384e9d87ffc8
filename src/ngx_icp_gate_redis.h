
/*
 * Copyright (C) icp_gate authors
 */


#ifndef _NGX_ICP_GATE_REDIS_H_INCLUDED_
#define _NGX_ICP_GATE_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_verdict.h"
#include "ngx_icp_gate_sentinel.h"


/*
 * A verdict given to ngx_icp_gate_redis_put() that did not reach Redis, or
 * not yet: ttl is what is left of its time to live there
 */
typedef void (*ngx_icp_gate_redis_unwritten_pt)(ngx_str_t *domain,
    ngx_icp_gate_verdict_t *v, time_t ttl);

/* one Redis refused: it holds a newer verdict of the domain, or a purge */
typedef void (*ngx_icp_gate_redis_refused_pt)(ngx_str_t *domain,
    uint64_t version);


/*
 * What the invalidation channel tells the worker that listens to it:
 * NGX_ICP_GATE_REDIS_TRACKED, every change from now on is told;
 * NGX_ICP_GATE_REDIS_UNTRACKED, a change may have gone untold to it (told
 * when the channel is lost, and each second while Redis answers without
 * it); NGX_ICP_GATE_REDIS_CHANGED, a domain's hash changed (domain NULL:
 * every one, the database was flushed); NGX_ICP_GATE_REDIS_BEAT, a beat is
 * sent, and NGX_ICP_GATE_REDIS_HEARD, it was heard back: what Redis told
 * before, the channel has heard; NGX_ICP_GATE_REDIS_LEFT, it closes on
 * purpose, as the worker exits.  And it asks, as the worker exits,
 * NGX_ICP_GATE_REDIS_LEAVING: NGX_OK, the channel may close, another took
 * over; NGX_DECLINED, it may close, none follows (a stop); NGX_AGAIN, it
 * listens on until another takes over (within a bound).  Only LEAVING's
 * answer counts.
 */
#define NGX_ICP_GATE_REDIS_TRACKED     0
#define NGX_ICP_GATE_REDIS_UNTRACKED   1
#define NGX_ICP_GATE_REDIS_CHANGED     2
#define NGX_ICP_GATE_REDIS_BEAT        3
#define NGX_ICP_GATE_REDIS_HEARD       4
#define NGX_ICP_GATE_REDIS_LEFT        5
#define NGX_ICP_GATE_REDIS_LEAVING     6

typedef ngx_int_t (*ngx_icp_gate_redis_tracked_pt)(ngx_uint_t event,
    ngx_str_t *domain);


typedef struct {
    ngx_str_t                   name;       /* as configured, for logs */
    ngx_str_t                   host;       /* NUL-terminated */
    in_port_t                   port;
    ngx_flag_t                  resolve;    /* host is a name */
    ngx_str_t                   path;       /* unix socket */
    ngx_icp_gate_sentinel_conf_t  sentinel; /* or the sentinels tell */
    ngx_uint_t                  db;
    ngx_str_t                   password;
    ngx_msec_t                  timeout;
    ngx_msec_t                  idle;       /* closed after, 0: never */
    ngx_str_t                   prefix;
    ngx_flag_t                  tracking;   /* invalidations asked for */

    /* the caller's, set before ngx_icp_gate_redis_init() */
    ngx_icp_gate_redis_unwritten_pt  unwritten;
    ngx_icp_gate_redis_refused_pt    refused;

    /* the worker that listens to invalidations; NULL in the others */
    ngx_icp_gate_redis_tracked_pt    tracked;
} ngx_icp_gate_redis_conf_t;


/*
 * rc: NGX_OK with *v, NGX_DECLINED when Redis has no entry, NGX_ERROR (v
 * NULL); but for NGX_ERROR, v->version is the Redis time of the answer
 */
typedef void (*ngx_icp_gate_redis_pt)(void *data, ngx_int_t rc,
    ngx_icp_gate_verdict_t *v);


char *ngx_icp_gate_redis_parse(ngx_conf_t *cf, ngx_icp_gate_redis_conf_t *rcf);
ngx_int_t ngx_icp_gate_redis_init(ngx_cycle_t *cycle,
    ngx_icp_gate_redis_conf_t *rcf);
void ngx_icp_gate_redis_done(void);
ngx_int_t ngx_icp_gate_redis_get(ngx_str_t *domain,
    ngx_icp_gate_redis_pt handler, void *data);
ngx_int_t ngx_icp_gate_redis_reread(ngx_str_t *domain,
    ngx_icp_gate_redis_pt handler, void *data);
ngx_int_t ngx_icp_gate_redis_put(ngx_str_t *domain,
    ngx_icp_gate_verdict_t *v, time_t ttl);
ngx_int_t ngx_icp_gate_redis_look_or_lock(ngx_str_t *domain,
    ngx_msec_t ttl, ngx_icp_gate_redis_pt handler, void *data);
void ngx_icp_gate_redis_renew(ngx_str_t *domain, ngx_msec_t ttl);
void ngx_icp_gate_redis_unlock(ngx_str_t *domain);
void ngx_icp_gate_redis_failed(ngx_str_t *domain, ngx_msec_t ttl);
ngx_int_t ngx_icp_gate_redis_delete(ngx_str_t *domain, ngx_msec_t mark,
    ngx_icp_gate_redis_pt handler, void *data);


#endif /* _NGX_ICP_GATE_REDIS_H_INCLUDED_ */
