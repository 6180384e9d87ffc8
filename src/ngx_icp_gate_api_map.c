
/*
 * Copyright (C) icp_gate authors
 *
 * A filing source's answer, read by the rules of the icp_gate_api_*
 * mapping directives.  Nothing here is guessed: a field the rules name
 * but the answer lacks, a value no map knows, an envelope that does not
 * say success, is a failed lookup with a line saying which, never a
 * verdict, so that a source changing its format refuses nobody's filing
 * and lets no unfiled domain through.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>

#include "ngx_icp_gate_api_map.h"


/* what a logged value of an answer is cut to */
#define NGX_ICP_GATE_API_MAP_SHOWN  64


static char *ngx_icp_gate_api_map_default(ngx_pool_t *pool,
    ngx_icp_gate_api_field_t *field, char *pointer);
static char *ngx_icp_gate_api_map_rules(ngx_conf_t *cf,
    ngx_icp_gate_api_field_t *field, ngx_str_t *names, ngx_uint_t fail);
static char *ngx_icp_gate_api_map_pointer_arg(ngx_conf_t *cf,
    ngx_icp_gate_api_field_t *field);
static ngx_int_t ngx_icp_gate_api_map_value(ngx_icp_gate_api_value_t *mv,
    u_char *data, size_t len);
static ngx_uint_t ngx_icp_gate_api_map_is_number(u_char *p, size_t len);
static json_t *ngx_icp_gate_api_map_get(json_t *root,
    ngx_icp_gate_api_field_t *field);
static ngx_int_t ngx_icp_gate_api_map_index(ngx_str_t *token, size_t size,
    size_t *index);
static ngx_icp_gate_api_value_t *ngx_icp_gate_api_map_find(
    ngx_array_t *values, json_t *f);
static ngx_uint_t ngx_icp_gate_api_map_present(json_t *f);
static ngx_int_t ngx_icp_gate_api_map_status(ngx_icp_gate_api_map_t *map,
    json_t *root, ngx_icp_gate_verdict_t *v, ngx_str_t *why);
static void ngx_icp_gate_api_map_region(ngx_icp_gate_api_map_t *map,
    json_t *root, ngx_icp_gate_verdict_t *v);
static void ngx_icp_gate_api_map_why(ngx_str_t *why, const char *fmt,
    ngx_icp_gate_api_field_t *field, json_t *f);


static ngx_str_t  ngx_icp_gate_api_map_error = ngx_string("error");
static ngx_str_t  ngx_icp_gate_api_map_none = ngx_string("none");


/*
 * icp_gate_api_status POINTER [VALUE=STATUS ...] [absent=STATUS]
 * icp_gate_api_status POINTER present
 * icp_gate_api_region POINTER [VALUE=REGION ...] | off
 * icp_gate_api_icp POINTER | off;  icp_gate_api_domain POINTER | off
 *
 * cmd->offset: the field's; cmd->post: the names its values map to (NULL:
 * the field is a string, taken as it is)
 */

char *
ngx_icp_gate_api_map_field(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_icp_gate_api_field_t  *field = (ngx_icp_gate_api_field_t *)
                                       ((char *) conf + cmd->offset);

    ngx_str_t  *value, *names;

    names = cmd->post;
    value = cf->args->elts;

    if (field->rule != NGX_ICP_GATE_API_MAP_UNSET) {
        return "is duplicate";
    }

    /* every field but the status may be left out of the answer */

    if (names != ngx_icp_gate_status_names
        && cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0)
    {
        field->rule = NGX_ICP_GATE_API_MAP_OFF;
        return NGX_CONF_OK;
    }

    /* icp, domain: a pointer to a string */

    if (names == NULL) {
        if (cf->args->nelts != 2) {
            return "takes one JSON pointer, or off";
        }

        if (ngx_icp_gate_api_map_pointer_arg(cf, field) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }

        field->rule = NGX_ICP_GATE_API_MAP_VALUES;
        return NGX_CONF_OK;
    }

    if (names == ngx_icp_gate_status_names
        && cf->args->nelts == 3 && ngx_strcmp(value[2].data, "present") == 0)
    {
        if (ngx_icp_gate_api_map_pointer_arg(cf, field) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }

        field->rule = NGX_ICP_GATE_API_MAP_PRESENCE;
        return NGX_CONF_OK;
    }

    return ngx_icp_gate_api_map_rules(cf, field, names,
                                      names == ngx_icp_gate_status_names);
}


/* icp_gate_api_success POINTER VALUE ... (absent among them) */

char *
ngx_icp_gate_api_map_success(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_icp_gate_api_field_t  *success = (ngx_icp_gate_api_field_t *)
                                         ((char *) conf + cmd->offset);

    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_icp_gate_api_value_t  *mv;

    if (success->rule != NGX_ICP_GATE_API_MAP_UNSET) {
        return "is duplicate";
    }

    if (ngx_icp_gate_api_map_pointer_arg(cf, success) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    success->values = ngx_array_create(cf->pool, cf->args->nelts,
                                       sizeof(ngx_icp_gate_api_value_t));
    if (success->values == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "absent") == 0) {
            success->has_absent = 1;
            continue;
        }

        mv = ngx_array_push(success->values);
        if (mv == NULL) {
            return NGX_CONF_ERROR;
        }

        (void) ngx_icp_gate_api_map_value(mv, value[i].data, value[i].len);
        mv->meaning = 1;
    }

    success->rule = NGX_ICP_GATE_API_MAP_VALUES;

    return NGX_CONF_OK;
}


/* icp_gate_api_unfiled_status CODE ... | off */

char *
ngx_icp_gate_api_map_unfiled(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_array_t  **unfiled = (ngx_array_t **) ((char *) conf + cmd->offset);

    ngx_int_t    code;
    ngx_str_t   *value;
    ngx_uint_t   i, *status;

    if (*unfiled) {
        return "is duplicate";
    }

    *unfiled = ngx_array_create(cf->pool, cf->args->nelts,
                                sizeof(ngx_uint_t));
    if (*unfiled == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        code = ngx_atoi(value[i].data, value[i].len);

        /* 200 is an answer to read, never "not filed" whatever it says */

        if (code < 100 || code > 599 || code == 200) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid HTTP status \"%V\" in "
                               "\"icp_gate_api_unfiled_status\", expected "
                               "100 to 599 but 200, or off", &value[i]);
            return NGX_CONF_ERROR;
        }

        status = ngx_array_push(*unfiled);
        if (status == NULL) {
            return NGX_CONF_ERROR;
        }

        *status = code;
    }

    return NGX_CONF_OK;
}


/* the rules not configured read the gate's own answer (README, "The
 * filing API") */

char *
ngx_icp_gate_api_map_init(ngx_pool_t *pool, ngx_icp_gate_api_map_t *map)
{
    ngx_uint_t  *status;

    if (ngx_icp_gate_api_map_default(pool, &map->status, "/status")
        != NGX_CONF_OK
        || ngx_icp_gate_api_map_default(pool, &map->icp, "/icp")
           != NGX_CONF_OK
        || ngx_icp_gate_api_map_default(pool, &map->region, "/region")
           != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (map->unfiled == NULL) {
        map->unfiled = ngx_array_create(pool, 1, sizeof(ngx_uint_t));
        if (map->unfiled == NULL) {
            return NGX_CONF_ERROR;
        }

        status = ngx_array_push(map->unfiled);
        if (status == NULL) {
            return NGX_CONF_ERROR;
        }

        *status = 404;
    }

    if (map->default_region == NGX_CONF_UNSET_UINT) {
        map->default_region = NGX_ICP_GATE_REGION_NONE;
    }

    return NGX_CONF_OK;
}


/*
 * RFC 6901: "" is the whole answer; else "/" before each token, in which
 * "~1" stands for "/" and "~0" for "~"; NGX_CONF_OK, or why not
 */

char *
ngx_icp_gate_api_map_pointer(ngx_pool_t *pool, ngx_str_t *text,
    ngx_icp_gate_api_field_t *field)
{
    u_char     *p, *last, *d;
    ngx_str_t  *token;

    if (text->len && text->data[0] != '/') {
        return "must be empty or begin with \"/\"";
    }

    field->pointer = *text;

    field->tokens = ngx_array_create(pool, 4, sizeof(ngx_str_t));
    if (field->tokens == NULL) {
        return NGX_CONF_ERROR;
    }

    p = text->data;
    last = text->data + text->len;

    while (p < last) {
        p++;    /* the "/" */

        token = ngx_array_push(field->tokens);
        if (token == NULL) {
            return NGX_CONF_ERROR;
        }

        token->data = ngx_pnalloc(pool, last - p + 1);
        if (token->data == NULL) {
            return NGX_CONF_ERROR;
        }

        for (d = token->data; p < last && *p != '/'; p++) {

            if (*p != '~') {
                *d++ = *p;
                continue;
            }

            if (p + 1 == last || (p[1] != '0' && p[1] != '1')) {
                return "has a \"~\" not followed by 0 or 1";
            }

            *d++ = (p[1] == '0') ? '~' : '/';
            p++;
        }

        token->len = d - token->data;
    }

    return NGX_CONF_OK;
}


ngx_uint_t
ngx_icp_gate_api_map_is_unfiled(ngx_icp_gate_api_map_t *map, ngx_uint_t code)
{
    ngx_uint_t   i, *status;

    status = map->unfiled->elts;

    for (i = 0; i < map->unfiled->nelts; i++) {
        if (status[i] == code) {
            return 1;
        }
    }

    return 0;
}


/*
 * A 200's body as a verdict: NGX_OK and *v, or NGX_ERROR and *why, a line
 * for the error log (why->data has room for NGX_ICP_GATE_API_MAP_WHY)
 */

ngx_int_t
ngx_icp_gate_api_map_answer(ngx_icp_gate_api_map_t *map, ngx_str_t *domain,
    u_char *body, size_t len, ngx_icp_gate_verdict_t *v, ngx_str_t *why)
{
    u_char        *p;
    json_t        *root, *f;
    ngx_int_t      rc;
    json_error_t   err;

    ngx_memzero(v, sizeof(ngx_icp_gate_verdict_t));

    root = json_loadb((const char *) body, len, 0, &err);
    if (root == NULL) {

        /* jansson quotes the byte it stopped at: the answer's, any byte */

        for (p = (u_char *) err.text; *p; p++) {
            if (*p < 0x20 || *p >= 0x7f) {
                *p = '?';
            }
        }

        why->len = ngx_snprintf(why->data, NGX_ICP_GATE_API_MAP_WHY,
                                "with a body that is not JSON: %s",
                                err.text)
                   - why->data;
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    /* the envelope first: a query that failed tells nothing of the domain */

    if (map->success.rule == NGX_ICP_GATE_API_MAP_VALUES) {
        f = ngx_icp_gate_api_map_get(root, &map->success);

        if (f == NULL ? !map->success.has_absent
                      : ngx_icp_gate_api_map_find(map->success.values, f)
                        == NULL)
        {
            ngx_icp_gate_api_map_why(why, "with \"%V\": %s, not a success "
                                     "(icp_gate_api_success)",
                                     &map->success, f);
            goto done;
        }
    }

    if (map->domain.rule == NGX_ICP_GATE_API_MAP_VALUES) {
        f = ngx_icp_gate_api_map_get(root, &map->domain);

        if (f
            && (!json_is_string(f)
                || json_string_length(f) != domain->len
                || ngx_strncasecmp((u_char *) json_string_value(f),
                                   domain->data, domain->len) != 0))
        {
            ngx_icp_gate_api_map_why(why, "for another domain, \"%V\": %s",
                                     &map->domain, f);
            goto done;
        }
    }

    if (ngx_icp_gate_api_map_status(map, root, v, why) != NGX_OK) {
        goto done;
    }

    if (map->icp.rule == NGX_ICP_GATE_API_MAP_VALUES) {
        f = ngx_icp_gate_api_map_get(root, &map->icp);

        if (json_is_string(f)) {
            ngx_icp_gate_verdict_set_icp(v, (u_char *) json_string_value(f),
                                         json_string_length(f));
        }
    }

    ngx_icp_gate_api_map_region(map, root, v);

    rc = NGX_OK;

done:

    json_decref(root);

    return rc;
}


/* a field no directive set: the gate's own answer's, its values the names */

static char *
ngx_icp_gate_api_map_default(ngx_pool_t *pool,
    ngx_icp_gate_api_field_t *field, char *pointer)
{
    ngx_str_t  text;

    if (field->rule != NGX_ICP_GATE_API_MAP_UNSET) {
        return NGX_CONF_OK;
    }

    text.data = (u_char *) pointer;
    text.len = ngx_strlen(pointer);

    field->rule = NGX_ICP_GATE_API_MAP_VALUES;

    return ngx_icp_gate_api_map_pointer(pool, &text, field);
}


/* POINTER [VALUE=NAME ...] [absent=NAME], NAME one of names or "error" */

static char *
ngx_icp_gate_api_map_rules(ngx_conf_t *cf, ngx_icp_gate_api_field_t *field,
    ngx_str_t *names, ngx_uint_t fail)
{
    u_char                    *eq;
    ngx_str_t                 *value, name, *none;
    ngx_uint_t                 i, meaning;
    ngx_icp_gate_api_value_t  *mv;

    if (ngx_icp_gate_api_map_pointer_arg(cf, field) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    field->rule = NGX_ICP_GATE_API_MAP_VALUES;

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    field->values = ngx_array_create(cf->pool, cf->args->nelts,
                                     sizeof(ngx_icp_gate_api_value_t));
    if (field->values == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;
    none = fail ? &ngx_icp_gate_api_map_error : &ngx_icp_gate_api_map_none;

    for (i = 2; i < cf->args->nelts; i++) {

        /* the last "=": names have none, values may */

        eq = NULL;

        for (name.data = value[i].data + value[i].len;
             name.data > value[i].data;
             name.data--)
        {
            if (name.data[-1] == '=') {
                eq = name.data - 1;
                break;
            }
        }

        if (eq == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid map \"%V\" in \"%V\", expected "
                               "VALUE=NAME", &value[i], &value[0]);
            return NGX_CONF_ERROR;
        }

        name.len = value[i].data + value[i].len - name.data;

        if (name.len == none->len
            && ngx_strncmp(name.data, none->data, none->len) == 0)
        {
            meaning = fail ? NGX_ICP_GATE_API_MAP_FAIL
                           : NGX_ICP_GATE_REGION_NONE;

        } else {
            meaning = ngx_icp_gate_verdict_name(names, name.data, name.len);

            if (meaning == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "unknown name \"%V\" in \"%V\" of \"%V\", "
                                   "expected %s", &name, &value[i],
                                   &value[0],
                                   fail ? "filed, pending, revoked, "
                                          "unfiled or error"
                                        : "mainland, global, overseas "
                                          "or none");
                return NGX_CONF_ERROR;
            }
        }

        if (fail && eq - value[i].data == 6
            && ngx_strncmp(value[i].data, "absent", 6) == 0)
        {
            field->absent = meaning;
            field->has_absent = 1;
            continue;
        }

        mv = ngx_array_push(field->values);
        if (mv == NULL) {
            return NGX_CONF_ERROR;
        }

        (void) ngx_icp_gate_api_map_value(mv, value[i].data,
                                          eq - value[i].data);
        mv->meaning = meaning;
    }

    if (field->values->nelts == 0) {

        /* only absent=: the present values are the gate's names */

        field->values = NULL;
    }

    return NGX_CONF_OK;
}


static char *
ngx_icp_gate_api_map_pointer_arg(ngx_conf_t *cf,
    ngx_icp_gate_api_field_t *field)
{
    char       *rc;
    ngx_str_t  *value;

    value = cf->args->elts;

    rc = ngx_icp_gate_api_map_pointer(cf->pool, &value[1], field);

    if (rc == NGX_CONF_OK || rc == NGX_CONF_ERROR) {
        return rc;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid JSON pointer \"%V\" in \"%V\": it %s",
                       &value[1], &value[0], rc);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_icp_gate_api_map_value(ngx_icp_gate_api_value_t *mv, u_char *data,
    size_t len)
{
    u_char  buf[64];

    mv->text.data = data;
    mv->text.len = len;
    mv->is_number = 0;
    mv->number = 0;

    if (len < sizeof(buf) && ngx_icp_gate_api_map_is_number(data, len)) {
        ngx_memcpy(buf, data, len);
        buf[len] = '\0';

        mv->number = strtod((char *) buf, NULL);
        mv->is_number = 1;
    }

    return NGX_OK;
}


/* JSON's grammar of a number, which strtod() alone is looser than */

static ngx_uint_t
ngx_icp_gate_api_map_is_number(u_char *p, size_t len)
{
    u_char  *last;

    last = p + len;

    if (p < last && *p == '-') {
        p++;
    }

    if (p == last || *p < '0' || *p > '9') {
        return 0;
    }

    if (*p == '0') {
        p++;

    } else {
        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < last && *p == '.') {
        if (++p == last || *p < '0' || *p > '9') {
            return 0;
        }

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < last && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < last && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == last || *p < '0' || *p > '9') {
            return 0;
        }

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    return p == last;
}


/* the value a field's pointer finds; NULL when none, null counting as none */

static json_t *
ngx_icp_gate_api_map_get(json_t *root, ngx_icp_gate_api_field_t *field)
{
    size_t      index;
    json_t     *f;
    ngx_str_t  *token;
    ngx_uint_t  i;

    f = root;
    token = field->tokens->elts;

    for (i = 0; f && i < field->tokens->nelts; i++) {

        if (json_is_object(f)) {
            f = json_object_getn(f, (const char *) token[i].data,
                                 token[i].len);

        } else if (json_is_array(f)) {
            f = (ngx_icp_gate_api_map_index(&token[i], json_array_size(f),
                                            &index)
                 == NGX_OK)
                ? json_array_get(f, index) : NULL;

        } else {
            f = NULL;
        }
    }

    return json_is_null(f) ? NULL : f;
}


/* RFC 6901: "0", or digits without a leading zero; "-" is past the end */

static ngx_int_t
ngx_icp_gate_api_map_index(ngx_str_t *token, size_t size, size_t *index)
{
    size_t   n;
    u_char  *p;

    if (token->len == 0 || token->len > 9
        || (token->data[0] == '0' && token->len > 1))
    {
        return NGX_DECLINED;
    }

    n = 0;

    for (p = token->data; p < token->data + token->len; p++) {
        if (*p < '0' || *p > '9') {
            return NGX_DECLINED;
        }

        n = n * 10 + (*p - '0');
    }

    if (n >= size) {
        return NGX_DECLINED;
    }

    *index = n;

    return NGX_OK;
}


/*
 * A string matches its own bytes; a number, a configured value of the
 * same number (5 matches 5.0 and "5"); true, false and null their names
 */

static ngx_icp_gate_api_value_t *
ngx_icp_gate_api_map_find(ngx_array_t *values, json_t *f)
{
    size_t                     len;
    ngx_uint_t                 i;
    const char                *text;
    ngx_icp_gate_api_value_t  *mv;

    mv = values->elts;

    for (i = 0; i < values->nelts; i++) {

        switch (json_typeof(f)) {

        case JSON_STRING:
            text = json_string_value(f);
            len = json_string_length(f);
            break;

        case JSON_INTEGER:
        case JSON_REAL:
            if (mv[i].is_number && json_number_value(f) == mv[i].number) {
                return &mv[i];
            }

            continue;

        case JSON_TRUE:
            text = "true";
            len = 4;
            break;

        case JSON_FALSE:
            text = "false";
            len = 5;
            break;

        default:
            return NULL;
        }

        if (mv[i].text.len == len
            && ngx_strncmp(mv[i].text.data, text, len) == 0)
        {
            return &mv[i];
        }
    }

    return NULL;
}


/* the presence rule: a value that says something, nothing or empty not */

static ngx_uint_t
ngx_icp_gate_api_map_present(json_t *f)
{
    switch (json_typeof(f)) {

    case JSON_STRING:
        return json_string_length(f) != 0;

    case JSON_INTEGER:
    case JSON_REAL:
        return json_number_value(f) != 0;

    case JSON_TRUE:
        return 1;

    case JSON_OBJECT:
        return json_object_size(f) != 0;

    case JSON_ARRAY:
        return json_array_size(f) != 0;

    default:
        return 0;
    }
}


static ngx_int_t
ngx_icp_gate_api_map_status(ngx_icp_gate_api_map_t *map, json_t *root,
    ngx_icp_gate_verdict_t *v, ngx_str_t *why)
{
    json_t                    *f;
    ngx_uint_t                 meaning;
    ngx_icp_gate_api_value_t  *mv;

    f = ngx_icp_gate_api_map_get(root, &map->status);

    if (map->status.rule == NGX_ICP_GATE_API_MAP_PRESENCE) {
        v->status = (f && ngx_icp_gate_api_map_present(f))
                    ? NGX_ICP_GATE_STATUS_FILED
                    : NGX_ICP_GATE_STATUS_UNFILED;
        return NGX_OK;
    }

    if (f == NULL) {
        if (!map->status.has_absent) {
            ngx_icp_gate_api_map_why(why, "without \"%V\"", &map->status,
                                     NULL);
            return NGX_ERROR;
        }

        meaning = map->status.absent;

    } else if (map->status.values) {
        mv = ngx_icp_gate_api_map_find(map->status.values, f);
        meaning = mv ? mv->meaning : 0;

    } else {
        meaning = json_is_string(f)
                  ? ngx_icp_gate_verdict_name(ngx_icp_gate_status_names,
                                              (u_char *) json_string_value(f),
                                              json_string_length(f))
                  : 0;
    }

    if (meaning == 0) {
        ngx_icp_gate_api_map_why(why, "with \"%V\": %s, which "
                                 "icp_gate_api_status does not map",
                                 &map->status, f);
        return NGX_ERROR;
    }

    if (meaning == NGX_ICP_GATE_API_MAP_FAIL) {
        ngx_icp_gate_api_map_why(why, "with \"%V\": %s, which "
                                 "icp_gate_api_status maps to error",
                                 &map->status, f);
        return NGX_ERROR;
    }

    v->status = meaning;

    return NGX_OK;
}


/* an unknown region counts as none: it never exempts a domain */

static void
ngx_icp_gate_api_map_region(ngx_icp_gate_api_map_t *map, json_t *root,
    ngx_icp_gate_verdict_t *v)
{
    json_t                    *f;
    ngx_icp_gate_api_value_t  *mv;

    v->region = map->default_region;

    if (map->region.rule != NGX_ICP_GATE_API_MAP_VALUES) {
        return;
    }

    f = ngx_icp_gate_api_map_get(root, &map->region);

    if (f == NULL) {
        return;
    }

    if (map->region.values) {
        mv = ngx_icp_gate_api_map_find(map->region.values, f);
        v->region = mv ? mv->meaning : NGX_ICP_GATE_REGION_NONE;
        return;
    }

    v->region = json_is_string(f)
                ? ngx_icp_gate_verdict_name(ngx_icp_gate_region_names,
                                            (u_char *) json_string_value(f),
                                            json_string_length(f))
                : NGX_ICP_GATE_REGION_NONE;
}


/* fmt has a %V for the field's pointer and, unless f is NULL, a %s for f */

static void
ngx_icp_gate_api_map_why(ngx_str_t *why, const char *fmt,
    ngx_icp_gate_api_field_t *field, json_t *f)
{
    char    *dump;
    u_char  *cut;
    size_t   len;

    dump = f ? json_dumps(f, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;

    if (dump) {
        len = ngx_strlen(dump);

        if (len > NGX_ICP_GATE_API_MAP_SHOWN) {

            /* not within a UTF-8 character */

            cut = (u_char *) dump + NGX_ICP_GATE_API_MAP_SHOWN - 3;

            while (cut > (u_char *) dump && (*cut & 0xc0) == 0x80) {
                cut--;
            }

            ngx_memcpy(cut, "...", 4);
        }
    }

    why->len = ngx_snprintf(why->data, NGX_ICP_GATE_API_MAP_WHY - 1, fmt,
                            &field->pointer,
                            dump ? dump : (f ? "(a value)" : ""))
               - why->data;

    if (dump) {
        free(dump);
    }
}
