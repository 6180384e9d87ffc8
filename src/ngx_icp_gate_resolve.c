
/*
 * Copyright (C) icp_gate authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <netdb.h>

#include "ngx_icp_gate_resolve.h"
#include "ngx_icp_gate_socket.h"


/* how often the answer is looked for: soon at first, then less often */
#define NGX_ICP_GATE_RESOLVE_POLL_MIN  1
#define NGX_ICP_GATE_RESOLVE_POLL_MAX  20


struct ngx_icp_gate_resolve_s {
    struct gaicb                gai;
    struct gaicb               *list[1];
    struct addrinfo             hints;
    ngx_event_t                 timer;
    ngx_msec_t                  started;
    ngx_msec_t                  timeout;
    ngx_icp_gate_resolve_pt     handler;    /* NULL once cancelled */
    void                       *data;
    u_char                      name[NGX_MAXHOSTNAMELEN + 1];
};


static void ngx_icp_gate_resolve_poll(ngx_event_t *ev);
static ngx_uint_t ngx_icp_gate_resolve_dequeue(ngx_icp_gate_resolve_t *r);
static void ngx_icp_gate_resolve_done(ngx_icp_gate_resolve_t *r,
    ngx_int_t rc, ngx_str_t *addr);


/* NULL when the lookup could not start: the caller tries again later */

ngx_icp_gate_resolve_t *
ngx_icp_gate_resolve(ngx_str_t *host, ngx_msec_t timeout,
    ngx_icp_gate_resolve_pt handler, void *data)
{
    int                      rc;
    struct sigevent          sev;
    ngx_icp_gate_resolve_t  *r;

    if (host->len > NGX_MAXHOSTNAMELEN) {
        return NULL;
    }

    r = ngx_calloc(sizeof(ngx_icp_gate_resolve_t), ngx_cycle->log);
    if (r == NULL) {
        return NULL;
    }

    ngx_memcpy(r->name, host->data, host->len);

    r->hints.ai_family = AF_UNSPEC;
    r->hints.ai_socktype = SOCK_STREAM;

    r->gai.ar_name = (char *) r->name;
    r->gai.ar_request = &r->hints;
    r->list[0] = &r->gai;

    ngx_memzero(&sev, sizeof(struct sigevent));
    sev.sigev_notify = SIGEV_NONE;

    rc = getaddrinfo_a(GAI_NOWAIT, r->list, 1, &sev);

    if (rc != 0) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "icp_gate: resolving \"%V\" failed: %s", host,
                      gai_strerror(rc));
        ngx_free(r);
        return NULL;
    }

    r->handler = handler;
    r->data = data;
    r->started = ngx_current_msec;
    r->timeout = timeout;

    ngx_icp_gate_timer_init(&r->timer, ngx_icp_gate_resolve_poll,
                            ngx_cycle->log);

    ngx_add_timer(&r->timer, NGX_ICP_GATE_RESOLVE_POLL_MIN);

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "icp_gate: resolving \"%V\"", host);

    return r;
}


/*
 * The handler is not called.  A lookup still queued is freed now; one a
 * thread runs, once the thread is done with it.
 */

void
ngx_icp_gate_resolve_cancel(ngx_icp_gate_resolve_t *r)
{
    r->handler = NULL;

    (void) ngx_icp_gate_resolve_dequeue(r);
}


/*
 * glibc never marks a lookup it took off its queue as done: its
 * gai_error() stays EAI_INPROGRESS, so it must be freed here, or forever
 * polled
 */

static ngx_uint_t
ngx_icp_gate_resolve_dequeue(ngx_icp_gate_resolve_t *r)
{
    if (gai_cancel(&r->gai) != EAI_CANCELED) {
        return 0;
    }

    if (r->timer.timer_set) {
        ngx_del_timer(&r->timer);
    }

    ngx_free(r);

    return 1;
}


/* whether a host must be resolved: not an IPv4 or IPv6 address */

ngx_uint_t
ngx_icp_gate_resolve_needed(ngx_str_t *host)
{
    u_char           text[NGX_SOCKADDR_STRLEN + 1];
    struct in6_addr  a6;

    if (host->len > NGX_SOCKADDR_STRLEN) {
        return 1;
    }

    ngx_memcpy(text, host->data, host->len);
    text[host->len] = '\0';

    return inet_pton(AF_INET, (char *) text, &a6) != 1
           && inet_pton(AF_INET6, (char *) text, &a6) != 1;
}


static void
ngx_icp_gate_resolve_poll(ngx_event_t *ev)
{
    int                      rc;
    size_t                   len;
    ngx_str_t                addr;
    ngx_msec_t               waited;
    ngx_icp_gate_resolve_t  *r;
    u_char                   text[NGX_SOCKADDR_STRLEN];

    r = (ngx_icp_gate_resolve_t *)
            ((u_char *) ev - offsetof(ngx_icp_gate_resolve_t, timer));

    rc = gai_error(&r->gai);

    if (rc == EAI_INPROGRESS) {
        waited = ngx_current_msec - r->started;

        if (r->handler && waited >= r->timeout) {
            ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                          "icp_gate: resolving \"%s\" timed out",
                          r->name);

            ngx_icp_gate_resolve_done(r, NGX_ERROR, NULL);

            /* a thread that runs it goes on: freed when it is done */

            if (ngx_icp_gate_resolve_dequeue(r)) {
                return;
            }
        }

        waited = ngx_max(waited / 4, NGX_ICP_GATE_RESOLVE_POLL_MIN);
        ngx_add_timer(ev, ngx_min(waited, NGX_ICP_GATE_RESOLVE_POLL_MAX));
        return;
    }

    if (rc != 0 || r->gai.ar_result == NULL) {
        if (r->handler) {
            ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                          "icp_gate: resolving \"%s\" failed: %s", r->name,
                          rc == EAI_CANCELED ? "cancelled"
                                             : gai_strerror(rc));
        }

        ngx_icp_gate_resolve_done(r, NGX_ERROR, NULL);

    } else {
        len = ngx_sock_ntop(r->gai.ar_result->ai_addr,
                            r->gai.ar_result->ai_addrlen, text,
                            NGX_SOCKADDR_STRLEN, 0);

        /* an IPv6 address comes bracketed: hiredis wants it bare */

        addr.data = text;
        addr.len = len;

        if (len > 2 && text[0] == '[' && text[len - 1] == ']') {
            addr.data++;
            addr.len -= 2;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_CORE, ev->log, 0,
                       "icp_gate: \"%s\" is %V", r->name, &addr);

        ngx_icp_gate_resolve_done(r, NGX_OK, &addr);
    }

    if (r->gai.ar_result) {
        freeaddrinfo(r->gai.ar_result);
    }

    ngx_free(r);
}


static void
ngx_icp_gate_resolve_done(ngx_icp_gate_resolve_t *r, ngx_int_t rc,
    ngx_str_t *addr)
{
    ngx_icp_gate_resolve_pt  handler;

    handler = r->handler;
    r->handler = NULL;

    if (handler) {
        handler(r->data, rc, addr);
    }
}
