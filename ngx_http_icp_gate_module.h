
/*
 * Copyright (C) icp_gate authors
 *
 * What the HTTP gate offers the RTMP gate: the status an HTTP-FLV play it
 * refuses is answered with.
 */


#ifndef _NGX_HTTP_ICP_GATE_MODULE_H_INCLUDED_
#define _NGX_HTTP_ICP_GATE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


ngx_uint_t ngx_http_icp_gate_refusal_status(ngx_http_request_t *r);


#endif /* _NGX_HTTP_ICP_GATE_MODULE_H_INCLUDED_ */
