
/*
 * Copyright (C) icp_gate authors
 *
 * What the HTTP gate offers the RTMP gate: the status an HTTP-FLV play it
 * refuses is answered with, and a refusal kept across the redirect to the
 * error page it is answered through.
 */


#ifndef _NGX_HTTP_ICP_GATE_MODULE_H_INCLUDED_
#define _NGX_HTTP_ICP_GATE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_icp_gate_judge.h"


ngx_uint_t ngx_http_icp_gate_refusal_status(ngx_http_request_t *r);
ngx_int_t ngx_http_icp_gate_keep_refusal(ngx_http_request_t *r,
    ngx_icp_gate_judgement_t *j);


#endif /* _NGX_HTTP_ICP_GATE_MODULE_H_INCLUDED_ */
