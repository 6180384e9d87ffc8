
/*
 * Copyright (C) icp_gate authors
 *
 * The RTMP gate: judges the host of the tcUrl a client connected with when
 * it publishes or plays, holds the command while a cold domain is looked
 * up, and closes live sessions whose domain stops being filed.  It takes
 * its place at the head of the publish and play chains in init_process:
 * rtmp_auto_push hooks publish there too, after every postconfiguration,
 * and this module comes after nginx-rtmp's in the module list.  A live
 * session is checked again every icp_gate_recheck, and at once when Redis
 * says its domain changed.
 *
 * With nginx-http-flv-module, an HTTP-FLV play is an rtmp session on the
 * HTTP connection (s->data is its request): it is judged as a play, but
 * refused as an HTTP request, through nginx's error pages.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_rtmp.h>
#include <ngx_rtmp_cmd_module.h>
#include <ngx_rtmp_live_module.h>

#include "ngx_icp_gate_module.h"
#include "ngx_icp_gate_conf.h"
#include "ngx_icp_gate_judge.h"
#include "ngx_icp_gate_watch.h"
#include "ngx_icp_gate_domain.h"
#include "ngx_icp_gate_log.h"
#include "ngx_icp_gate_socket.h"
#include "ngx_icp_gate_metrics.h"


/* nginx-http-flv-module: its rtmp.h has the HTTP-FLV event */
#if defined(NGX_HTTP_FLV_LIVE_REQUEST)
#define NGX_RTMP_ICP_GATE_FLV  1
#include <ngx_http.h>
#include "ngx_http_icp_gate_module.h"
#else
#define NGX_RTMP_ICP_GATE_FLV  0
#endif


#define NGX_RTMP_ICP_GATE_PUBLISH  0
#define NGX_RTMP_ICP_GATE_PLAY     1

/* how long a dropped live client has to read why before it is closed */
#define NGX_RTMP_ICP_GATE_DROP_LINGER  1000


typedef struct {
    ngx_icp_gate_conf_t         gate;
    ngx_msec_t                  recheck;
} ngx_rtmp_icp_gate_app_conf_t;


typedef struct {
    ngx_icp_gate_judgement_t    judgement;
    ngx_rtmp_session_t         *session;
    ngx_event_t                 recheck;
    ngx_queue_t                 live;       /* checked again on news */
#if (NGX_RTMP_ICP_GATE_FLV)
    ngx_event_t                 answer;
    ngx_event_handler_pt        flv_read_handler;
    ngx_event_handler_pt        flv_write_handler;
    ngx_log_handler_pt          flv_log_handler;
    void                       *flv_log_data;
    ngx_http_event_handler_pt   flv_write_event_handler;
    ngx_http_log_ctx_t          http_log;
    ngx_uint_t                  status;
#endif
    ngx_uint_t                  action;
    ngx_uint_t                  proto;      /* for the metrics */
    union {
        ngx_rtmp_publish_t      publish;
        ngx_rtmp_play_t         play;
    } cmd;
    unsigned                    judged:1;
    unsigned                    listed:1;   /* in the live queue */
} ngx_rtmp_icp_gate_ctx_t;


static ngx_int_t ngx_rtmp_icp_gate_publish(ngx_rtmp_session_t *s,
    ngx_rtmp_publish_t *v);
static ngx_int_t ngx_rtmp_icp_gate_play(ngx_rtmp_session_t *s,
    ngx_rtmp_play_t *v);
static ngx_int_t ngx_rtmp_icp_gate_handshake_done(ngx_rtmp_session_t *s,
    ngx_rtmp_header_t *h, ngx_chain_t *in);
static ngx_uint_t ngx_rtmp_icp_gate_auto_push_peer(ngx_rtmp_session_t *s);
static ngx_uint_t ngx_rtmp_icp_gate_auto_push_listener(ngx_listening_t *ls);
static ngx_int_t ngx_rtmp_icp_gate_start(ngx_rtmp_session_t *s,
    ngx_uint_t action, void *cmd, size_t size);
static ngx_int_t ngx_rtmp_icp_gate_act(ngx_rtmp_session_t *s,
    ngx_rtmp_icp_gate_ctx_t *ctx);
static void ngx_rtmp_icp_gate_refuse(ngx_rtmp_session_t *s,
    ngx_rtmp_icp_gate_ctx_t *ctx);
static void ngx_rtmp_icp_gate_log(ngx_rtmp_session_t *s,
    ngx_rtmp_icp_gate_ctx_t *ctx, ngx_uint_t live);
static void ngx_rtmp_icp_gate_drop(ngx_rtmp_session_t *s,
    ngx_rtmp_icp_gate_ctx_t *ctx);
static void ngx_rtmp_icp_gate_drain(ngx_event_t *rev);
static void ngx_rtmp_icp_gate_dropped(ngx_event_t *ev);
static void ngx_rtmp_icp_gate_wake(ngx_icp_gate_waiter_t *w);
static void ngx_rtmp_icp_gate_recheck(ngx_event_t *ev);
static void ngx_rtmp_icp_gate_changed(ngx_str_t *domain);
static void ngx_rtmp_icp_gate_unlist(ngx_rtmp_icp_gate_ctx_t *ctx);
static void ngx_rtmp_icp_gate_cleanup(void *data);
#if (NGX_RTMP_ICP_GATE_FLV)
static ngx_int_t ngx_rtmp_icp_gate_flv_no_host(ngx_rtmp_session_t *s,
    ngx_rtmp_header_t *h, ngx_chain_t *in);
static ngx_http_request_t *ngx_rtmp_icp_gate_flv_request(
    ngx_rtmp_session_t *s);
static void ngx_rtmp_icp_gate_flv_hold(ngx_rtmp_session_t *s,
    ngx_rtmp_icp_gate_ctx_t *ctx);
static void ngx_rtmp_icp_gate_flv_release(ngx_rtmp_session_t *s,
    ngx_rtmp_icp_gate_ctx_t *ctx);
static void ngx_rtmp_icp_gate_flv_refuse(ngx_rtmp_session_t *s,
    ngx_rtmp_icp_gate_ctx_t *ctx);
static void ngx_rtmp_icp_gate_flv_end(ngx_rtmp_session_t *s,
    ngx_rtmp_icp_gate_ctx_t *ctx, ngx_uint_t status);
static void ngx_rtmp_icp_gate_flv_answer(ngx_event_t *ev);
static void ngx_rtmp_icp_gate_flv_event(ngx_event_t *ev);
static u_char *ngx_rtmp_icp_gate_flv_log_error(ngx_log_t *log, u_char *buf,
    size_t len);
#endif

static void *ngx_rtmp_icp_gate_create_app_conf(ngx_conf_t *cf);
static char *ngx_rtmp_icp_gate_merge_app_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_rtmp_icp_gate_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_rtmp_icp_gate_init_process(ngx_cycle_t *cycle);
static void ngx_rtmp_icp_gate_hook(void);


static ngx_command_t  ngx_rtmp_icp_gate_commands[] = {

    NGX_ICP_GATE_COMMANDS(
        NGX_RTMP_MAIN_CONF|NGX_RTMP_SRV_CONF|NGX_RTMP_APP_CONF,
        NGX_RTMP_APP_CONF_OFFSET, ngx_rtmp_icp_gate_app_conf_t),

    { ngx_string("icp_gate_recheck"),
      NGX_RTMP_MAIN_CONF|NGX_RTMP_SRV_CONF|NGX_RTMP_APP_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_RTMP_APP_CONF_OFFSET,
      offsetof(ngx_rtmp_icp_gate_app_conf_t, recheck),
      NULL },

      ngx_null_command
};


static ngx_rtmp_module_t  ngx_rtmp_icp_gate_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_rtmp_icp_gate_postconfiguration,   /* postconfiguration */
    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */
    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */
    ngx_rtmp_icp_gate_create_app_conf,     /* create app configuration */
    ngx_rtmp_icp_gate_merge_app_conf       /* merge app configuration */
};


ngx_module_t  ngx_rtmp_icp_gate_module = {
    NGX_MODULE_V1,
    &ngx_rtmp_icp_gate_module_ctx,         /* module context */
    ngx_rtmp_icp_gate_commands,            /* module directives */
    NGX_RTMP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_rtmp_icp_gate_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_rtmp_publish_pt  next_publish;
static ngx_rtmp_play_pt     next_play;

/* the worker's live sessions that are checked again */
static ngx_queue_t          ngx_rtmp_icp_gate_live;

static char  *ngx_rtmp_icp_gate_codes[] = {
    "NetStream.Publish.BadName",
    "NetStream.Play.Failed"
};

static ngx_str_t  ngx_rtmp_icp_gate_actions[] = {
    ngx_string("publish"),
    ngx_string("play")
};

static ngx_str_t  ngx_rtmp_icp_gate_stages[] = {
    ngx_string("start"),
    ngx_string("live")
};


static ngx_int_t
ngx_rtmp_icp_gate_publish(ngx_rtmp_session_t *s, ngx_rtmp_publish_t *v)
{
    ngx_int_t  rc;

    rc = ngx_rtmp_icp_gate_start(s, NGX_RTMP_ICP_GATE_PUBLISH, v, sizeof(*v));

    if (rc == NGX_DECLINED) {
        return next_publish(s, v);
    }

    return rc;
}


static ngx_int_t
ngx_rtmp_icp_gate_play(ngx_rtmp_session_t *s, ngx_rtmp_play_t *v)
{
    ngx_int_t  rc;

    rc = ngx_rtmp_icp_gate_start(s, NGX_RTMP_ICP_GATE_PLAY, v, sizeof(*v));

    if (rc == NGX_DECLINED) {
        return next_play(s, v);
    }

    return rc;
}


/*
 * nginx-rtmp marks every session accepted on a unix socket as an auto-push
 * from another worker, an operator's "listen unix:" too, and auto_push,
 * notify, the access log and the gate then leave it alone.  Once its
 * handshake is done, a session keeps the mark only on the workers' own
 * auto_push socket with a worker of this nginx at the other end.
 */

static ngx_int_t
ngx_rtmp_icp_gate_handshake_done(ngx_rtmp_session_t *s,
    ngx_rtmp_header_t *h, ngx_chain_t *in)
{
    if (s->auto_pushed && !ngx_rtmp_icp_gate_auto_push_peer(s)) {
        ngx_log_debug0(NGX_LOG_DEBUG_RTMP, s->connection->log, 0,
                       "icp_gate: a client on a unix listener, "
                       "not an auto-push");
        s->auto_pushed = 0;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_rtmp_icp_gate_auto_push_peer(ngx_rtmp_session_t *s)
{
    ngx_connection_t  *c;
#if (NGX_LINUX)
    ngx_int_t          n;
    socklen_t          len;
    struct ucred       cred;
#endif

    c = s->connection;

    if (c->listening == NULL
        || !ngx_rtmp_icp_gate_auto_push_listener(c->listening))
    {
        return 0;
    }

#if (NGX_LINUX)

    len = sizeof(struct ucred);

    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
        ngx_log_error(NGX_LOG_ERR, c->log, ngx_socket_errno,
                      "icp_gate: getsockopt(SO_PEERCRED) failed");
        return 0;
    }

    /*
     * every slot: a worker learns of the workers started after it over
     * the channel, which fills their slots but not ngx_last_process
     */

    for (n = 0; n < NGX_MAX_PROCESSES; n++) {
        if (ngx_processes[n].pid == cred.pid && cred.pid > 0) {
            return 1;
        }
    }

    ngx_log_error(NGX_LOG_WARN, c->log, 0,
                  "icp_gate: a session on the auto_push socket from pid %P, "
                  "not a worker of this nginx, is judged",
                  (ngx_pid_t) cred.pid);

    return 0;

#else

    return 1;

#endif
}


/*
 * The socket rtmp_auto_push listens on in each worker: nginx-rtmp names
 * it "worker_socket", nginx-http-flv-module by its path, which ends with
 * "/nginx-http-flv.<the worker's pid>".
 */

static ngx_uint_t
ngx_rtmp_icp_gate_auto_push_listener(ngx_listening_t *ls)
{
    u_char  *p, *end;
    u_char   name[sizeof("/nginx-http-flv.") + NGX_INT64_LEN];

    if (ls->addr_text.len == sizeof("worker_socket") - 1
        && ngx_strncmp(ls->addr_text.data, "worker_socket",
                       sizeof("worker_socket") - 1)
           == 0)
    {
        return 1;
    }

    end = ngx_sprintf(name, "/nginx-http-flv.%P", ngx_pid);

    if (ls->addr_text.len < (size_t) (end - name)) {
        return 0;
    }

    p = ls->addr_text.data + ls->addr_text.len - (end - name);

    return ngx_strncmp(p, name, end - name) == 0;
}


/*
 * NGX_DECLINED: go on to the next module now; NGX_OK: held until the
 * verdict; NGX_ERROR: refused, the session is finalized
 */

static ngx_int_t
ngx_rtmp_icp_gate_start(ngx_rtmp_session_t *s, ngx_uint_t action, void *cmd,
    size_t size)
{
    ngx_str_t                      host;
    ngx_pool_cleanup_t            *cln;
    ngx_rtmp_icp_gate_ctx_t       *ctx;
    ngx_rtmp_icp_gate_app_conf_t  *gacf;

    /* relays and auto_push between workers come from this nginx itself */

    if (s->relay || s->auto_pushed) {
        return NGX_DECLINED;
    }

    gacf = ngx_rtmp_get_module_app_conf(s, ngx_rtmp_icp_gate_module);

    if (gacf == NULL || gacf->gate.mode == NGX_ICP_GATE_MODE_OFF) {
        return NGX_DECLINED;
    }

    ctx = ngx_rtmp_get_module_ctx(s, ngx_rtmp_icp_gate_module);

    if (ctx == NULL) {
        /*
         * a pool cleanup, not a disconnect handler: those stop at the
         * first one that fails, a cleanup always runs
         */

        cln = ngx_pool_cleanup_add(s->connection->pool,
                                   sizeof(ngx_rtmp_icp_gate_ctx_t));
        if (cln == NULL) {
            return NGX_ERROR;
        }

        ctx = cln->data;
        ngx_memzero(ctx, sizeof(ngx_rtmp_icp_gate_ctx_t));

        cln->handler = ngx_rtmp_icp_gate_cleanup;

        ngx_rtmp_set_ctx(s, ctx, ngx_rtmp_icp_gate_module);

        ctx->session = s;

        (void) ngx_icp_gate_domain_from_url(&s->tc_url, &host);

        ngx_icp_gate_judgement_init(&ctx->judgement, &host,
                                    ngx_rtmp_icp_gate_wake, ctx);

    } else if (ngx_icp_gate_judge_held(&ctx->judgement)) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "icp_gate: %V while the domain is looked up",
                      &ngx_rtmp_icp_gate_actions[action]);
        return NGX_ERROR;
    }

    ctx->action = action;
    ngx_memcpy(&ctx->cmd, cmd, size);

    if (ctx->judged) {
        /* a second stream of the session: its tcUrl was judged already */
        return ngx_rtmp_icp_gate_act(s, ctx);
    }

    if (ngx_icp_gate_judge(&gacf->gate, &ctx->judgement, s->connection->pool)
        == NGX_AGAIN)
    {
        ngx_log_debug2(NGX_LOG_DEBUG_RTMP, s->connection->log, 0,
                       "icp_gate: %V held for \"%V\"",
                       &ngx_rtmp_icp_gate_actions[action],
                       &ctx->judgement.domain);
#if (NGX_RTMP_ICP_GATE_FLV)
        ngx_rtmp_icp_gate_flv_hold(s, ctx);
#endif
        return NGX_OK;
    }

    return ngx_rtmp_icp_gate_act(s, ctx);
}


static ngx_int_t
ngx_rtmp_icp_gate_act(ngx_rtmp_session_t *s, ngx_rtmp_icp_gate_ctx_t *ctx)
{
    ngx_rtmp_icp_gate_app_conf_t  *gacf;

    gacf = ngx_rtmp_get_module_app_conf(s, ngx_rtmp_icp_gate_module);

    ctx->judged = 1;

#if (NGX_RTMP_ICP_GATE_FLV)
    ctx->proto = ngx_rtmp_icp_gate_flv_request(s)
                 ? NGX_ICP_GATE_PROTO_HTTP_FLV : NGX_ICP_GATE_PROTO_RTMP;
#else
    ctx->proto = NGX_ICP_GATE_PROTO_RTMP;
#endif

    ngx_icp_gate_count(decisions[ctx->proto][ctx->judgement.result]
                                [ctx->judgement.reason]);

    switch (ctx->judgement.result) {

    case NGX_ICP_GATE_RESULT_DENY:
        ngx_rtmp_icp_gate_log(s, ctx, 0);

#if (NGX_RTMP_ICP_GATE_FLV)
        if (ngx_rtmp_icp_gate_flv_request(s)) {
            /* the session stays held: its request is answered */
            ngx_rtmp_icp_gate_flv_refuse(s, ctx);
            return NGX_OK;
        }
#endif

        ngx_rtmp_icp_gate_refuse(s, ctx);
        return NGX_ERROR;

    case NGX_ICP_GATE_RESULT_DRY_RUN:
    case NGX_ICP_GATE_RESULT_NONE:      /* dry_run, before its verdict */
        ngx_rtmp_icp_gate_log(s, ctx, 0);
        break;

    case NGX_ICP_GATE_RESULT_EXEMPT:
        if (gacf->gate.region == NGX_ICP_GATE_REGION_OVERSEAS) {
            return NGX_DECLINED;
        }

        break;

    default:
        break;
    }

    if (gacf->recheck && !ctx->recheck.timer_set) {
        ngx_icp_gate_timer_init(&ctx->recheck, ngx_rtmp_icp_gate_recheck,
                                s->connection->log);

        ngx_add_timer(&ctx->recheck, gacf->recheck);

        if (!ctx->listed) {
            ngx_queue_insert_tail(&ngx_rtmp_icp_gate_live, &ctx->live);
            ctx->listed = 1;
            ngx_icp_gate_gauge(live[ctx->proto], 1);
        }
    }

    return NGX_DECLINED;
}


static void
ngx_rtmp_icp_gate_refuse(ngx_rtmp_session_t *s, ngx_rtmp_icp_gate_ctx_t *ctx)
{
    u_char                    *p;
    ngx_str_t                 *name;
    ngx_icp_gate_judgement_t  *j;
    u_char                     desc[NGX_ICP_GATE_DOMAIN_LEN + 128];

    j = &ctx->judgement;
    name = j->domain.len ? &j->domain : &j->host;

    /* the host may be anything a client sent: keep the text printable */

    p = ngx_snprintf(desc, sizeof(desc) - 1, "icp_gate: %V refused for ",
                     &ngx_rtmp_icp_gate_actions[ctx->action]);
    p = ngx_icp_gate_log_escape(p, name->data,
                                ngx_min(name->len,
                                        NGX_ICP_GATE_DOMAIN_LEN / 6));
    p = ngx_snprintf(p, desc + sizeof(desc) - 1 - p, ": %V",
                     &ngx_icp_gate_reason_names[j->reason]);
    *p = '\0';

    ngx_log_error(NGX_LOG_INFO, s->connection->log, 0, "%s", desc);

    (void) ngx_rtmp_send_status(s, ngx_rtmp_icp_gate_codes[ctx->action],
                                "error", (char *) desc);
}


static void
ngx_rtmp_icp_gate_log(ngx_rtmp_session_t *s, ngx_rtmp_icp_gate_ctx_t *ctx,
    ngx_uint_t live)
{
    u_char                        *name;
    ngx_str_t                      server;
    ngx_rtmp_icp_gate_app_conf_t  *gacf;
    ngx_icp_gate_log_entry_t       entry;
    ngx_icp_gate_log_field_t       fields[6];
#if (NGX_RTMP_ICP_GATE_FLV)
    ngx_http_request_t            *r;
#endif
    u_char                         addr[NGX_SOCKADDR_STRLEN];

    gacf = ngx_rtmp_get_module_app_conf(s, ngx_rtmp_icp_gate_module);

    if (gacf->gate.log == NULL) {
        return;
    }

    server.data = addr;
    server.len = NGX_SOCKADDR_STRLEN;

    if (ngx_connection_local_sockaddr(s->connection, &server, 1) != NGX_OK) {
        ngx_str_set(&server, "");
    }

    name = (ctx->action == NGX_RTMP_ICP_GATE_PUBLISH)
           ? ctx->cmd.publish.name : ctx->cmd.play.name;

    ngx_str_set(&entry.proto, "rtmp");
    entry.action = ngx_rtmp_icp_gate_actions[ctx->action];
    entry.client = s->connection->addr_text;
    entry.fields = fields;
    entry.nfields = 4;

    ngx_str_set(&fields[0].name, "server");
    fields[0].value = server;

    ngx_str_set(&fields[1].name, "app");
    fields[1].value = s->app;

    if (fields[1].value.data == NULL) {
        ngx_str_set(&fields[1].value, "");
    }

    ngx_str_set(&fields[2].name, "stream");
    fields[2].value.data = name;
    fields[2].value.len = ngx_strlen(name);

    /* "live": a session dropped while it streamed, not a command refused */

    ngx_str_set(&fields[3].name, "stage");
    fields[3].value = ngx_rtmp_icp_gate_stages[live ? 1 : 0];

#if (NGX_RTMP_ICP_GATE_FLV)
    r = ngx_rtmp_icp_gate_flv_request(s);

    if (r) {
        /* an HTTP-FLV play: logged as the HTTP gate logs a request */

        ngx_str_set(&entry.proto, "http");

        ngx_str_set(&fields[4].name, "uri");
        fields[4].value = r->uri;
        entry.nfields = 5;

        if (!live && ctx->judgement.result == NGX_ICP_GATE_RESULT_DENY) {
            ngx_str_set(&fields[5].name, "status");
            fields[5].value.data = NULL;
            fields[5].value.len = 0;
            fields[5].number = ngx_http_icp_gate_refusal_status(r);
            entry.nfields = 6;
        }
    }
#endif

    ngx_icp_gate_log_refusal(&gacf->gate, &ctx->judgement, &entry,
                             s->connection->pool, s->connection->log);
}


static void
ngx_rtmp_icp_gate_wake(ngx_icp_gate_waiter_t *w)
{
    ngx_int_t                      rc;
    ngx_rtmp_session_t            *s;
    ngx_rtmp_icp_gate_ctx_t       *ctx;
    ngx_rtmp_icp_gate_app_conf_t  *gacf;

    ctx = w->data;
    s = ctx->session;

    if (s->connection->destroyed) {
        return;
    }

    gacf = ngx_rtmp_get_module_app_conf(s, ngx_rtmp_icp_gate_module);

    ngx_icp_gate_judge_resume(&gacf->gate, &ctx->judgement);

#if (NGX_RTMP_ICP_GATE_FLV)
    ngx_rtmp_icp_gate_flv_release(s, ctx);
#endif

    ngx_log_debug3(NGX_LOG_DEBUG_RTMP, s->connection->log, 0,
                   "icp_gate: %V woken for \"%V\": %V",
                   &ngx_rtmp_icp_gate_actions[ctx->action],
                   &ctx->judgement.domain,
                   &ngx_icp_gate_result_names[ctx->judgement.result]);

    rc = ngx_rtmp_icp_gate_act(s, ctx);

    if (rc == NGX_DECLINED) {
        rc = (ctx->action == NGX_RTMP_ICP_GATE_PUBLISH)
             ? next_publish(s, &ctx->cmd.publish)
             : next_play(s, &ctx->cmd.play);
    }

    if (rc == NGX_ERROR) {

#if (NGX_RTMP_ICP_GATE_FLV)
        /*
         * a play let through that failed further on (a stream not found,
         * a bad name): the fork frees the request only of a session that
         * waits on a notification
         */

        if (ngx_rtmp_icp_gate_flv_request(s)
            && !s->notify_play && !s->notify_connect)
        {
            ngx_rtmp_icp_gate_flv_end(s, ctx, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
#endif

        ngx_rtmp_finalize_session(s);
    }
}


static void
ngx_rtmp_icp_gate_recheck(ngx_event_t *ev)
{
    ngx_uint_t                     was;
    ngx_rtmp_session_t            *s;
    ngx_rtmp_icp_gate_ctx_t       *ctx;
    ngx_rtmp_icp_gate_app_conf_t  *gacf;

    ctx = (ngx_rtmp_icp_gate_ctx_t *)
              ((u_char *) ev - offsetof(ngx_rtmp_icp_gate_ctx_t, recheck));

    s = ctx->session;

    if (s->connection->destroyed) {
        return;
    }

    gacf = ngx_rtmp_get_module_app_conf(s, ngx_rtmp_icp_gate_module);

    was = ctx->judgement.result;

    if (ngx_icp_gate_judge_again(&gacf->gate, &ctx->judgement) == NGX_OK) {

        ngx_log_debug3(NGX_LOG_DEBUG_RTMP, s->connection->log, 0,
                       "icp_gate: live %V rechecked, \"%V\": %V",
                       &ngx_rtmp_icp_gate_actions[ctx->action],
                       &ctx->judgement.domain,
                       &ngx_icp_gate_result_names[ctx->judgement.result]);

        if (ctx->judgement.result == NGX_ICP_GATE_RESULT_DENY) {
            ngx_rtmp_icp_gate_drop(s, ctx);
            return;
        }

        /* an open judgement had its would-be refusal logged already */

        if (ctx->judgement.result == NGX_ICP_GATE_RESULT_DRY_RUN
            && was != NGX_ICP_GATE_RESULT_DRY_RUN
            && was != NGX_ICP_GATE_RESULT_NONE)
        {
            ngx_rtmp_icp_gate_log(s, ctx, 1);
        }
    }

    ngx_add_timer(&ctx->recheck, gacf->recheck);
}


/*
 * Redis said the domain changed (NULL: any may have): the sessions on it
 * are checked again now, from the event loop, as their next tick would
 */

static void
ngx_rtmp_icp_gate_changed(ngx_str_t *domain)
{
    ngx_queue_t              *q;
    ngx_rtmp_icp_gate_ctx_t  *ctx;

    for (q = ngx_queue_head(&ngx_rtmp_icp_gate_live);
         q != ngx_queue_sentinel(&ngx_rtmp_icp_gate_live);
         q = ngx_queue_next(q))
    {
        ctx = ngx_queue_data(q, ngx_rtmp_icp_gate_ctx_t, live);

        if (domain
            && (ctx->judgement.domain.len != domain->len
                || ngx_strncmp(ctx->judgement.domain.data, domain->data,
                               domain->len) != 0))
        {
            continue;
        }

        if (ctx->recheck.timer_set) {
            ngx_del_timer(&ctx->recheck);
        }

        ngx_log_debug1(NGX_LOG_DEBUG_RTMP, ctx->recheck.log, 0,
                       "icp_gate: \"%V\" changed, checking the session again",
                       &ctx->judgement.domain);

        ngx_add_timer(&ctx->recheck, 0);
    }
}


static void
ngx_rtmp_icp_gate_unlist(ngx_rtmp_icp_gate_ctx_t *ctx)
{
    if (ctx->listed) {
        ngx_queue_remove(&ctx->live);
        ctx->listed = 0;
        ngx_icp_gate_gauge(live[ctx->proto], -1);
    }
}


/*
 * Closing at once would lose the status behind the media still queued for
 * a player, and a publisher, which writes, would only see "Broken pipe".
 * No media flows from now on: a player's live context is paused, and what
 * a publisher sends is read and thrown away.  The session ends when the
 * client leaves, at the latest after NGX_RTMP_ICP_GATE_DROP_LINGER.
 */

static void
ngx_rtmp_icp_gate_drop(ngx_rtmp_session_t *s, ngx_rtmp_icp_gate_ctx_t *ctx)
{
    ngx_connection_t     *c;
    ngx_rtmp_live_ctx_t  *lctx;
#if (NGX_RTMP_ICP_GATE_FLV)
    ngx_http_request_t   *r;
#endif

    c = s->connection;

    ngx_rtmp_icp_gate_unlist(ctx);
    ngx_rtmp_icp_gate_log(s, ctx, 1);

    ngx_icp_gate_count(live_dropped[ctx->proto]);

#if (NGX_RTMP_ICP_GATE_FLV)
    r = ngx_rtmp_icp_gate_flv_request(s);

    if (r != NULL) {
        ngx_rtmp_icp_gate_flv_end(s, ctx, ngx_http_icp_gate_refusal_status(r));
        return;
    }
#endif

    ngx_rtmp_icp_gate_refuse(s, ctx);

    lctx = ngx_rtmp_get_module_ctx(s, ngx_rtmp_live_module);

    if (lctx != NULL) {
        lctx->paused = 1;
    }

    c->read->handler = ngx_rtmp_icp_gate_drain;

    ctx->recheck.handler = ngx_rtmp_icp_gate_dropped;
    ngx_add_timer(&ctx->recheck, NGX_RTMP_ICP_GATE_DROP_LINGER);

    ngx_rtmp_icp_gate_drain(c->read);
}


static void
ngx_rtmp_icp_gate_drain(ngx_event_t *rev)
{
    ssize_t              n;
    ngx_uint_t           i;
    ngx_connection_t    *c;
    ngx_rtmp_session_t  *s;
    u_char               buf[4096];

    c = rev->data;
    s = c->data;

    if (c->destroyed) {
        return;
    }

    if (rev->timedout) {
        ngx_rtmp_finalize_session(s);
        return;
    }

    /* a bounded share of the worker's time: a fast sender goes on later */

    for (i = 0; i < 16; i++) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_rtmp_finalize_session(s);
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_log_debug0(NGX_LOG_DEBUG_RTMP, c->log, 0,
                           "icp_gate: the dropped client left");
            ngx_rtmp_finalize_session(s);
            return;
        }
    }

    ngx_post_event(rev, &ngx_posted_events);
}


static void
ngx_rtmp_icp_gate_dropped(ngx_event_t *ev)
{
    ngx_rtmp_icp_gate_ctx_t  *ctx;

    ctx = (ngx_rtmp_icp_gate_ctx_t *)
              ((u_char *) ev - offsetof(ngx_rtmp_icp_gate_ctx_t, recheck));

    ngx_rtmp_finalize_session(ctx->session);
}


static void
ngx_rtmp_icp_gate_cleanup(void *data)
{
    ngx_rtmp_icp_gate_ctx_t  *ctx = data;

    /* the session's pool goes now: no verdict or timer may find it */

    ngx_icp_gate_judge_cancel(&ctx->judgement);
    ngx_rtmp_icp_gate_unlist(ctx);

    if (ctx->recheck.timer_set) {
        ngx_del_timer(&ctx->recheck);
    }

#if (NGX_RTMP_ICP_GATE_FLV)
    if (ctx->answer.posted) {
        ngx_delete_posted_event(&ctx->answer);
    }
#endif
}


static void *
ngx_rtmp_icp_gate_create_app_conf(ngx_conf_t *cf)
{
    ngx_rtmp_icp_gate_app_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_rtmp_icp_gate_app_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    ngx_icp_gate_conf_init(&conf->gate);
    conf->recheck = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_rtmp_icp_gate_merge_app_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_rtmp_icp_gate_app_conf_t  *prev = parent;
    ngx_rtmp_icp_gate_app_conf_t  *conf = child;

    ngx_icp_gate_conf_merge(&conf->gate, &prev->gate);
    ngx_conf_merge_msec_value(conf->recheck, prev->recheck, 60000);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_rtmp_icp_gate_postconfiguration(ngx_conf_t *cf)
{
    ngx_rtmp_handler_pt        *h;
    ngx_rtmp_core_main_conf_t  *cmcf;

    cmcf = ngx_rtmp_conf_get_module_main_conf(cf, ngx_rtmp_core_module);

    h = ngx_array_push(&cmcf->events[NGX_RTMP_HANDSHAKE_DONE]);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_rtmp_icp_gate_handshake_done;

#if (NGX_RTMP_ICP_GATE_FLV)

    /* ahead of the fork's own handler, which it adds in init_process */

    h = ngx_array_push(&cmcf->events[NGX_HTTP_FLV_LIVE_REQUEST]);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_rtmp_icp_gate_flv_no_host;

#endif

    /*
     * a reload without a master (master_process off) runs no init_process,
     * and nothing hooks in one after it either
     */

    if (ngx_process == NGX_PROCESS_SINGLE
        && !ngx_is_init_cycle(cf->cycle->old_cycle))
    {
        ngx_rtmp_icp_gate_hook();
    }

    return NGX_OK;
}


/*
 * The chains are hooked here, not in postconfiguration: rtmp_auto_push
 * hooks publish in its init_process, which runs before this one, and a
 * refused publish must never reach it (it would start relaying the stream
 * to the other workers).  Every module hooked in postconfiguration (relay,
 * exec, record, hls, dash, notify, live) comes after the gate too.  The
 * master never runs this: each new worker starts from the chains nginx-rtmp
 * built in the master, without the gate.
 */

static ngx_int_t
ngx_rtmp_icp_gate_init_process(ngx_cycle_t *cycle)
{
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    ngx_rtmp_icp_gate_hook();

    ngx_queue_init(&ngx_rtmp_icp_gate_live);

    if (ngx_icp_gate_watch_add(ngx_rtmp_icp_gate_changed) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * not the engine's worker start: this core module comes before the
     * event modules, the HTTP gate's init_process starts it
     */

    return NGX_OK;
}


static void
ngx_rtmp_icp_gate_hook(void)
{
    /* no rtmp {} block: nginx-rtmp built no chain */

    if (ngx_rtmp_publish == NULL
        || ngx_rtmp_publish == ngx_rtmp_icp_gate_publish)
    {
        return;
    }

    next_publish = ngx_rtmp_publish;
    ngx_rtmp_publish = ngx_rtmp_icp_gate_publish;

    next_play = ngx_rtmp_play;
    ngx_rtmp_play = ngx_rtmp_icp_gate_play;
}


#if (NGX_RTMP_ICP_GATE_FLV)

/*
 * nginx-http-flv-module 1.2.13 builds the tcUrl of an HTTP-FLV play from
 * the Host header without looking whether there is one: an HTTP/1.0
 * request without it would crash the worker (a NULL dereference in
 * ngx_http_flv_live_connect_init) before any gate sees it.
 */

static ngx_int_t
ngx_rtmp_icp_gate_flv_no_host(ngx_rtmp_session_t *s, ngx_rtmp_header_t *h,
    ngx_chain_t *in)
{
    ngx_http_request_t  *r;

    r = ngx_rtmp_icp_gate_flv_request(s);

    if (r == NULL || r->headers_in.host != NULL) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                  "icp_gate: an HTTP-FLV request without \"Host\", "
                  "which nginx-http-flv-module cannot serve");

    return NGX_ERROR;
}


static ngx_http_request_t *
ngx_rtmp_icp_gate_flv_request(ngx_rtmp_session_t *s)
{
    return s->data;
}


/*
 * While its play is held, the connection is the HTTP request's again: the
 * fork's handlers would end a client that leaves with the rtmp session
 * alone, never freeing the request, and the fork's log context is too
 * small for nginx's HTTP code, which writes the current request into it.
 * The fork's own are put back on release.
 */

static void
ngx_rtmp_icp_gate_flv_hold(ngx_rtmp_session_t *s,
    ngx_rtmp_icp_gate_ctx_t *ctx)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ngx_rtmp_icp_gate_flv_request(s);

    if (r == NULL) {
        return;
    }

    c = s->connection;

    ctx->flv_read_handler = c->read->handler;
    ctx->flv_write_handler = c->write->handler;
    ctx->flv_log_handler = c->log->handler;
    ctx->flv_log_data = c->log->data;
    ctx->flv_write_event_handler = r->write_event_handler;

    ctx->http_log.connection = c;
    ctx->http_log.request = r;
    ctx->http_log.current_request = r;

    c->read->handler = ngx_rtmp_icp_gate_flv_event;
    c->write->handler = ngx_rtmp_icp_gate_flv_event;
    c->log->handler = ngx_rtmp_icp_gate_flv_log_error;
    c->log->data = &ctx->http_log;

    /* still the phase runner, which would start the fork's handler again */
    r->write_event_handler = ngx_http_request_empty_handler;
}


static void
ngx_rtmp_icp_gate_flv_release(ngx_rtmp_session_t *s,
    ngx_rtmp_icp_gate_ctx_t *ctx)
{
    ngx_connection_t  *c;

    if (ctx->flv_read_handler == NULL) {
        return;
    }

    c = s->connection;

    c->read->handler = ctx->flv_read_handler;
    c->write->handler = ctx->flv_write_handler;
    c->log->handler = ctx->flv_log_handler;
    c->log->data = ctx->flv_log_data;
    ngx_rtmp_icp_gate_flv_request(s)->write_event_handler =
                                                ctx->flv_write_event_handler;

    ctx->flv_read_handler = NULL;
    ctx->flv_write_handler = NULL;
}


/*
 * Refused while the fork's content handler runs, or from a verdict: the
 * request is answered from a posted event either way, once that handler
 * has returned, and is then finalized as any refused HTTP request.
 */

static void
ngx_rtmp_icp_gate_flv_refuse(ngx_rtmp_session_t *s,
    ngx_rtmp_icp_gate_ctx_t *ctx)
{
    ngx_http_request_t  *r;

    r = ngx_rtmp_icp_gate_flv_request(s);

    ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                  "icp_gate: HTTP-FLV play refused for \"%V\": %V",
                  &ctx->judgement.domain,
                  &ngx_icp_gate_reason_names[ctx->judgement.reason]);

    ngx_rtmp_icp_gate_flv_end(s, ctx, ngx_http_icp_gate_refusal_status(r));
}


/*
 * A session that joined a stream has its request freed by the fork when
 * it ends (its close_stream); any other is answered as an HTTP request.
 */

static void
ngx_rtmp_icp_gate_flv_end(ngx_rtmp_session_t *s,
    ngx_rtmp_icp_gate_ctx_t *ctx, ngx_uint_t status)
{
    ngx_http_request_t   *r;
    ngx_rtmp_live_ctx_t  *lctx;

    lctx = ngx_rtmp_get_module_ctx(s, ngx_rtmp_live_module);

    if (lctx != NULL && lctx->stream != NULL) {
        ngx_rtmp_finalize_session(s);
        return;
    }

    r = ngx_rtmp_icp_gate_flv_request(s);

    if (ctx->flv_read_handler == NULL) {
        ngx_rtmp_icp_gate_flv_hold(s, ctx);
    }

    /* an error_page for the refusal is served, whatever gates its location */

    if (ctx->judgement.result == NGX_ICP_GATE_RESULT_DENY
        && ngx_http_icp_gate_keep_refusal(r, &ctx->judgement) != NGX_OK)
    {
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->keepalive = 0;
    ctx->status = status;

    ctx->answer.handler = ngx_rtmp_icp_gate_flv_answer;
    ctx->answer.data = ctx;
    ctx->answer.log = s->connection->log;

    ngx_post_event(&ctx->answer, &ngx_posted_events);
}


static void
ngx_rtmp_icp_gate_flv_answer(ngx_event_t *ev)
{
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_rtmp_icp_gate_ctx_t  *ctx;

    ctx = ev->data;
    r = ngx_rtmp_icp_gate_flv_request(ctx->session);
    c = r->connection;

    ngx_http_finalize_request(r, ctx->status);
    ngx_http_run_posted_requests(c);
}


/* what nginx's own connection handler does for an HTTP/1 request */

static void
ngx_rtmp_icp_gate_flv_event(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    c = ev->data;
    r = c->data;

    /* never idle, so never closed on a graceful shutdown (c->close) */

    if (ev->write) {
        r->write_event_handler(r);

    } else {
        r->read_event_handler(r);
    }

    ngx_http_run_posted_requests(c);
}


/* nginx's own context for an HTTP request's log lines, in short */

static u_char *
ngx_rtmp_icp_gate_flv_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char              *p;
    ngx_http_log_ctx_t  *ctx;

    ctx = log->data;

    p = ngx_snprintf(buf, len, ", client: %V", &ctx->connection->addr_text);

    /* nginx sets request to NULL when it frees the request */

    if (ctx->request) {
        p = ngx_snprintf(p, len - (p - buf), ", request: \"%V\"",
                         &ctx->request->request_line);
    }

    return p;
}

#endif
