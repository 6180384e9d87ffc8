
/*
 * Copyright (C) icp_gate authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_icp_gate_hiredis.h"
#include "ngx_icp_gate_socket.h"


/*
 * The checks read hiredis 0.14's reader (its task stack) and async context
 * (its callback lists), which 1.x laid out anew
 */
#if (HIREDIS_MAJOR != 0 || HIREDIS_MINOR < 14)
#error "icp_gate needs hiredis 0.14 (Debian bookworm's libhiredis-dev)"
#endif


/* what a malformed reply was, as the logs say it */
#define NGX_ICP_GATE_HIREDIS_WHY_LEN  128

/*
 * What a reader may hold unread: one element short of its end (a string
 * of at most NGX_ICP_GATE_HIREDIS_STRING_MAX, a line) and what came after
 * it in the same read, at most 16K
 */
#define NGX_ICP_GATE_HIREDIS_UNREAD_MAX  (2 * NGX_ICP_GATE_HIREDIS_STRING_MAX)


/* a context's reader: what it checks of the reply being read */
typedef struct {
    redisAsyncContext          *ac;
    size_t                      size;       /* of the reply, held so far */
    unsigned                    push:1;     /* it is a pub/sub message */
    unsigned                    subscribe:1;    /* a subscription's */
    ngx_icp_gate_hiredis_exit_pt  exiting;
    u_char                      why[NGX_ICP_GATE_HIREDIS_WHY_LEN];
} ngx_icp_gate_hiredis_t;


static void ngx_icp_gate_hiredis_read_handler(ngx_event_t *rev);
static void ngx_icp_gate_hiredis_write_handler(ngx_event_t *wev);
static void ngx_icp_gate_hiredis_add_read(void *privdata);
static void ngx_icp_gate_hiredis_del_read(void *privdata);
static void ngx_icp_gate_hiredis_add_write(void *privdata);
static void ngx_icp_gate_hiredis_del_write(void *privdata);
static void ngx_icp_gate_hiredis_cleanup(void *privdata);

static void *ngx_icp_gate_hiredis_create_string(const redisReadTask *task,
    char *str, size_t len);
static void *ngx_icp_gate_hiredis_create_array(const redisReadTask *task,
    int elements);
static void *ngx_icp_gate_hiredis_create_integer(const redisReadTask *task,
    long long value);
static void *ngx_icp_gate_hiredis_create_nil(const redisReadTask *task);
static ngx_int_t ngx_icp_gate_hiredis_admit(ngx_icp_gate_hiredis_t *h,
    const redisReadTask *task, int type, char *str, size_t n);
static ngx_int_t ngx_icp_gate_hiredis_expected(ngx_icp_gate_hiredis_t *h,
    int type);
static ngx_int_t ngx_icp_gate_hiredis_pubsub(ngx_icp_gate_hiredis_t *h,
    const redisReadTask *task, int type, char *str, size_t n);
static ngx_int_t ngx_icp_gate_hiredis_unread(ngx_icp_gate_hiredis_t *h);
static ngx_int_t ngx_icp_gate_hiredis_refuse(ngx_icp_gate_hiredis_t *h,
    const char *fmt, ...);


/* hiredis's own, which build the replies once they are admitted */
static redisReplyObjectFunctions   *ngx_icp_gate_hiredis_own;

static redisReplyObjectFunctions    ngx_icp_gate_hiredis_checked = {
    ngx_icp_gate_hiredis_create_string,
    ngx_icp_gate_hiredis_create_array,
    ngx_icp_gate_hiredis_create_integer,
    ngx_icp_gate_hiredis_create_nil,
    freeReplyObject
};

/* the reader being read, until its context goes */
static ngx_icp_gate_hiredis_t      *ngx_icp_gate_hiredis_reading;

/* a context closed for what it read, while its disconnect callback runs */
static const redisAsyncContext     *ngx_icp_gate_hiredis_refused;
static u_char       ngx_icp_gate_hiredis_why[NGX_ICP_GATE_HIREDIS_WHY_LEN];


ngx_int_t
ngx_icp_gate_hiredis_attach(redisAsyncContext *ac)
{
    redisReader             *r;
    ngx_connection_t        *nc;
    ngx_icp_gate_hiredis_t  *h;

    r = ac->c.reader;

    h = ngx_calloc(sizeof(ngx_icp_gate_hiredis_t), ngx_cycle->log);
    if (h == NULL) {
        return NGX_ERROR;
    }

    nc = ngx_icp_gate_socket_wrap(ac->c.fd, ngx_icp_gate_hiredis_read_handler,
                                  ngx_icp_gate_hiredis_write_handler, ac);
    if (nc == NULL) {
        ngx_free(h);
        return NGX_ERROR;
    }

    if (ngx_icp_gate_hiredis_own == NULL) {
        ngx_icp_gate_hiredis_own = r->fn;
    }

    h->ac = ac;
    r->fn = &ngx_icp_gate_hiredis_checked;
    r->privdata = h;

    ac->ev.data = nc;
    ac->ev.addRead = ngx_icp_gate_hiredis_add_read;
    ac->ev.delRead = ngx_icp_gate_hiredis_del_read;
    ac->ev.addWrite = ngx_icp_gate_hiredis_add_write;
    ac->ev.delWrite = ngx_icp_gate_hiredis_del_write;
    ac->ev.cleanup = ngx_icp_gate_hiredis_cleanup;

    return NGX_OK;
}


/*
 * The context is told when the worker begins a graceful exit: nginx calls
 * the read handler of every idle connection (ngx_close_idle_connections())
 * before it looks whether a timer keeps the worker alive, the one moment
 * to arm such a timer
 */

void
ngx_icp_gate_hiredis_on_exit(redisAsyncContext *ac,
    ngx_icp_gate_hiredis_exit_pt handler)
{
    ngx_connection_t        *c;
    ngx_icp_gate_hiredis_t  *h;

    c = ac->ev.data;
    h = ac->c.reader->privdata;

    h->exiting = handler;
    c->idle = 1;
}


/*
 * What was wrong with what a context's server sent, when that closed the
 * context (our checks, or a protocol error hiredis found), or NULL: valid
 * in its disconnect callback
 */

u_char *
ngx_icp_gate_hiredis_malformed(const redisAsyncContext *ac)
{
    if (ac == NULL || ac != ngx_icp_gate_hiredis_refused) {
        return NULL;
    }

    return ngx_icp_gate_hiredis_why;
}


/* one malformed reply more: 1 when it begins an episode, to be logged */

ngx_uint_t
ngx_icp_gate_hiredis_episode(ngx_icp_gate_hiredis_episode_t *ep)
{
    ngx_uint_t  begins;

    begins = !ep->seen
             || ngx_current_msec - ep->last >= NGX_ICP_GATE_HIREDIS_EPISODE;

    ep->seen = 1;
    ep->last = ngx_current_msec;

    return begins;
}


const char *
ngx_icp_gate_hiredis_type(int type)
{
    switch (type) {

    case REDIS_REPLY_STRING:
        return "a bulk string";

    case REDIS_REPLY_ARRAY:
        return "an array";

    case REDIS_REPLY_INTEGER:
        return "an integer";

    case REDIS_REPLY_NIL:
        return "nil";

    case REDIS_REPLY_STATUS:
        return "a status";

    case REDIS_REPLY_ERROR:
        return "an error";

    default:
        return "a reply of no known type";
    }
}


static void
ngx_icp_gate_hiredis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t        *c = rev->data;

    redisAsyncContext       *ac;
    ngx_icp_gate_hiredis_t  *h;

    ac = c->data;
    h = ac->c.reader->privdata;

    /* the worker exits, or its worker_shutdown_timeout is up */

    if (c->close) {
        c->close = 0;

        if (h->exiting) {
            h->exiting(ac);
            return;
        }
    }

    ngx_icp_gate_hiredis_reading = h;
    ngx_icp_gate_hiredis_refused = NULL;

    redisAsyncHandleRead(ac);

    /* still there (its cleanup forgets it): what it holds unread, bounded */

    if (ngx_icp_gate_hiredis_reading == h
        && ngx_icp_gate_hiredis_unread(h) != NGX_OK)
    {
        redisAsyncFree(ac);
    }

    ngx_icp_gate_hiredis_reading = NULL;
    ngx_icp_gate_hiredis_refused = NULL;
}


static void
ngx_icp_gate_hiredis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t  *c = wev->data;

    redisAsyncHandleWrite(c->data);
}


static void
ngx_icp_gate_hiredis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_icp_gate_socket_want(c->read, 1);
}


static void
ngx_icp_gate_hiredis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_icp_gate_socket_want(c->read, 0);
}


static void
ngx_icp_gate_hiredis_add_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_icp_gate_socket_want(c->write, 1);
}


static void
ngx_icp_gate_hiredis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_icp_gate_socket_want(c->write, 0);
}


/*
 * Before the disconnect callback, and before hiredis closes the socket:
 * a reply refused here fails the reader as if memory ran out, and the
 * callback is told what was wrong instead
 */

static void
ngx_icp_gate_hiredis_cleanup(void *privdata)
{
    ngx_connection_t        *c = privdata;

    redisReader             *r;
    redisAsyncContext       *ac;
    ngx_icp_gate_hiredis_t  *h;

    ac = c->data;
    r = ac->c.reader;
    h = r->privdata;

    if (h->why[0]) {
        ac->c.err = REDIS_ERR_PROTOCOL;
        ac->err = REDIS_ERR_PROTOCOL;
        ac->errstr = ac->c.errstr;
        ngx_cpystrn((u_char *) ac->c.errstr, h->why, sizeof(ac->c.errstr));
    }

    if (ac->c.err == REDIS_ERR_PROTOCOL) {
        ngx_icp_gate_hiredis_refused = ac;
        ngx_cpystrn(ngx_icp_gate_hiredis_why, (u_char *) ac->c.errstr,
                    NGX_ICP_GATE_HIREDIS_WHY_LEN);
    }

    if (ngx_icp_gate_hiredis_reading == h) {
        ngx_icp_gate_hiredis_reading = NULL;
    }

    r->fn = ngx_icp_gate_hiredis_own;
    r->privdata = NULL;
    ngx_free(h);

    ngx_icp_gate_socket_release(c, 0);
}


/*
 * The reader's object functions: each part of a reply is admitted before
 * hiredis builds it; a refusal (NULL) fails the reader, and with it the
 * context, before the reply reaches hiredis's callbacks
 */

static void *
ngx_icp_gate_hiredis_create_string(const redisReadTask *task, char *str,
    size_t len)
{
    if (ngx_icp_gate_hiredis_admit(task->privdata, task, task->type, str,
                                   len)
        != NGX_OK)
    {
        return NULL;
    }

    return ngx_icp_gate_hiredis_own->createString(task, str, len);
}


static void *
ngx_icp_gate_hiredis_create_array(const redisReadTask *task, int elements)
{
    if (ngx_icp_gate_hiredis_admit(task->privdata, task, REDIS_REPLY_ARRAY,
                                   NULL, (size_t) elements)
        != NGX_OK)
    {
        return NULL;
    }

    return ngx_icp_gate_hiredis_own->createArray(task, elements);
}


static void *
ngx_icp_gate_hiredis_create_integer(const redisReadTask *task,
    long long value)
{
    if (ngx_icp_gate_hiredis_admit(task->privdata, task, REDIS_REPLY_INTEGER,
                                   NULL, 0)
        != NGX_OK)
    {
        return NULL;
    }

    return ngx_icp_gate_hiredis_own->createInteger(task, value);
}


static void *
ngx_icp_gate_hiredis_create_nil(const redisReadTask *task)
{
    /* its task says bulk string or array: the type byte before the -1 */

    if (ngx_icp_gate_hiredis_admit(task->privdata, task, REDIS_REPLY_NIL,
                                   NULL, 0)
        != NGX_OK)
    {
        return NULL;
    }

    return ngx_icp_gate_hiredis_own->createNil(task);
}


/* n: an array's elements, a string's length */

static ngx_int_t
ngx_icp_gate_hiredis_admit(ngx_icp_gate_hiredis_t *h,
    const redisReadTask *task, int type, char *str, size_t n)
{
    size_t  size;

    size = sizeof(redisReply);

    if (task->parent == NULL) {
        h->size = 0;
        h->push = 0;

        if (ngx_icp_gate_hiredis_expected(h, type) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    switch (type) {

    case REDIS_REPLY_ARRAY:
        if (n > NGX_ICP_GATE_HIREDIS_ELEMENTS_MAX) {
            return ngx_icp_gate_hiredis_refuse(h,
                       "an array of %uz elements, more than %d",
                       n, NGX_ICP_GATE_HIREDIS_ELEMENTS_MAX);
        }

        size += n * sizeof(redisReply *);
        break;

    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        if (n > NGX_ICP_GATE_HIREDIS_STRING_MAX) {
            return ngx_icp_gate_hiredis_refuse(h,
                       "%s of %uz bytes, more than %d",
                       ngx_icp_gate_hiredis_type(type), n,
                       NGX_ICP_GATE_HIREDIS_STRING_MAX);
        }

        size += n + 1;
        break;
    }

    h->size += size;

    if (h->size > NGX_ICP_GATE_HIREDIS_REPLY_MAX) {
        return ngx_icp_gate_hiredis_refuse(h,
                   "a reply of more than %d bytes",
                   NGX_ICP_GATE_HIREDIS_REPLY_MAX);
    }

    if (h->push) {
        return ngx_icp_gate_hiredis_pubsub(h, task, type, str, n);
    }

    return NGX_OK;
}


/*
 * A reply begins: the answer to a command, a pub/sub message on a
 * subscribed context, or an error (hiredis closes the context with its
 * text: "max number of clients reached").  Anything else hiredis 0.14
 * would assert on.
 */

static ngx_int_t
ngx_icp_gate_hiredis_expected(ngx_icp_gate_hiredis_t *h, int type)
{
    redisAsyncContext  *ac;

    ac = h->ac;

    if (ac->replies.head != NULL || ac->sub.invalid.head != NULL
        || type == REDIS_REPLY_ERROR)
    {
        return NGX_OK;
    }

    if (ac->c.flags & REDIS_SUBSCRIBED) {
        h->push = 1;
        return NGX_OK;
    }

    return ngx_icp_gate_hiredis_refuse(h, "%s that answers no command",
                                       ngx_icp_gate_hiredis_type(type));
}


/*
 * A pub/sub message, as Redis sends one to a context that subscribed and
 * never unsubscribes: ["subscribe", channel, count] or ["message",
 * channel, payload].  hiredis asserts on a first or second element that
 * is no bulk string, reads a third that is not there, and an unsubscribe
 * it was not asked for leaves it no longer subscribed, asserting on the
 * next message.
 */

static ngx_int_t
ngx_icp_gate_hiredis_pubsub(ngx_icp_gate_hiredis_t *h,
    const redisReadTask *task, int type, char *str, size_t n)
{
    size_t       i;
    ngx_uint_t   word;
    const char  *what;

    what = ngx_icp_gate_hiredis_type(type);

    if (task->parent == NULL) {

        if (type != REDIS_REPLY_ARRAY) {
            return ngx_icp_gate_hiredis_refuse(h,
                       "a pub/sub message that is %s", what);
        }

        if (n != 3) {
            return ngx_icp_gate_hiredis_refuse(h,
                       "a pub/sub message of %uz element%s",
                       n, n == 1 ? "" : "s");
        }

        return NGX_OK;
    }

    /* the elements within the third are the payload's, anything */

    if (task->parent->parent != NULL) {
        return NGX_OK;
    }

    switch (task->idx) {

    case 0:
        if (type != REDIS_REPLY_STRING) {
            return ngx_icp_gate_hiredis_refuse(h,
                       "a pub/sub message whose kind is %s", what);
        }

        if (n == sizeof("message") - 1
            && ngx_strncasecmp((u_char *) str, (u_char *) "message", n) == 0)
        {
            h->subscribe = 0;
            return NGX_OK;
        }

        if (n == sizeof("subscribe") - 1
            && ngx_strncasecmp((u_char *) str, (u_char *) "subscribe", n)
               == 0)
        {
            h->subscribe = 1;
            return NGX_OK;
        }

        /* a word is told ("unsubscribe", "pmessage"), other bytes are not */

        word = (n <= 16);

        for (i = 0; word && i < n; i++) {
            word = (str[i] >= 'a' && str[i] <= 'z');
        }

        if (word) {
            return ngx_icp_gate_hiredis_refuse(h,
                       "a pub/sub message of kind \"%*s\"", n, str);
        }

        return ngx_icp_gate_hiredis_refuse(h,
                   "a pub/sub message of no known kind");

    case 1:
        if (type != REDIS_REPLY_STRING) {
            return ngx_icp_gate_hiredis_refuse(h,
                       "a pub/sub message whose channel is %s", what);
        }

        return NGX_OK;

    default:
        if (h->subscribe && type != REDIS_REPLY_INTEGER) {
            return ngx_icp_gate_hiredis_refuse(h,
                       "a subscription whose count is %s", what);
        }

        return NGX_OK;
    }
}


/*
 * hiredis holds a bulk string until all of it came, and a line until its
 * end: a length over the limit is refused as soon as it is read, and no
 * more than the limit is held waiting for an end
 */

static ngx_int_t
ngx_icp_gate_hiredis_unread(ngx_icp_gate_hiredis_t *h)
{
    off_t         len;
    u_char       *p, *last, *eol;
    redisReader  *r;

    r = h->ac->c.reader;

    if (r->err || r->ridx < 0) {
        return NGX_OK;
    }

    p = (u_char *) r->buf + r->pos;
    last = (u_char *) r->buf + r->len;

    if (r->rstack[r->ridx].type == REDIS_REPLY_STRING) {

        /* past the '$': the length hiredis read already, and waits for */

        eol = ngx_strlchr(p, last, CR);

        if (eol) {
            len = ngx_atoof(p, eol - p);

            if (len > NGX_ICP_GATE_HIREDIS_STRING_MAX) {
                return ngx_icp_gate_hiredis_refuse(h,
                           "a bulk string of %O bytes, more than %d",
                           len, NGX_ICP_GATE_HIREDIS_STRING_MAX);
            }
        }
    }

    if ((size_t) (last - p) > NGX_ICP_GATE_HIREDIS_UNREAD_MAX) {
        return ngx_icp_gate_hiredis_refuse(h,
                   "more than %d bytes of a reply with no end in sight",
                   NGX_ICP_GATE_HIREDIS_UNREAD_MAX);
    }

    return NGX_OK;
}


/* the first reason is kept: what follows a refusal is its consequence */

static ngx_int_t
ngx_icp_gate_hiredis_refuse(ngx_icp_gate_hiredis_t *h, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    if (h->why[0] == '\0') {
        va_start(args, fmt);
        p = ngx_vslprintf(h->why, h->why + NGX_ICP_GATE_HIREDIS_WHY_LEN - 1,
                          fmt, args);
        va_end(args);

        *p = '\0';
    }

    return NGX_ERROR;
}
