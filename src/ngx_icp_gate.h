
/*
 * Copyright (C) icp_gate authors
 *
 * The shared engine of the HTTP and RTMP gates: what a protocol module
 * needs to judge a host and act on the verdict.
 */


#ifndef _NGX_ICP_GATE_H_INCLUDED_
#define _NGX_ICP_GATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


#define NGX_ICP_GATE_DOMAIN_LEN     253
#define NGX_ICP_GATE_ICP_LEN        96


/* filing status, as the filing API and Redis spell it */
#define NGX_ICP_GATE_STATUS_NONE       0
#define NGX_ICP_GATE_STATUS_FILED      1
#define NGX_ICP_GATE_STATUS_PENDING    2
#define NGX_ICP_GATE_STATUS_REVOKED    3
#define NGX_ICP_GATE_STATUS_UNFILED    4

#define NGX_ICP_GATE_REGION_NONE       0
#define NGX_ICP_GATE_REGION_MAINLAND   1
#define NGX_ICP_GATE_REGION_GLOBAL     2
#define NGX_ICP_GATE_REGION_OVERSEAS   3

/* icp_gate off | on | dry_run */
#define NGX_ICP_GATE_MODE_OFF          0
#define NGX_ICP_GATE_MODE_ON           1
#define NGX_ICP_GATE_MODE_DRY_RUN      2

#define NGX_ICP_GATE_ON_ERROR_DENY     0
#define NGX_ICP_GATE_ON_ERROR_ALLOW    1

/* the outcome, as $icp_gate_result spells it */
#define NGX_ICP_GATE_RESULT_NONE       0
#define NGX_ICP_GATE_RESULT_ALLOW      1
#define NGX_ICP_GATE_RESULT_DENY       2
#define NGX_ICP_GATE_RESULT_EXEMPT     3
#define NGX_ICP_GATE_RESULT_DRY_RUN    4

/* why, as $icp_gate_reason and the rejection log spell it */
#define NGX_ICP_GATE_REASON_NONE           0
#define NGX_ICP_GATE_REASON_NO_HOST        1
#define NGX_ICP_GATE_REASON_IP_LITERAL     2
#define NGX_ICP_GATE_REASON_INVALID_HOST   3
#define NGX_ICP_GATE_REASON_OVERSEAS       4
#define NGX_ICP_GATE_REASON_UNFILED        5
#define NGX_ICP_GATE_REASON_PENDING        6
#define NGX_ICP_GATE_REASON_REVOKED        7
#define NGX_ICP_GATE_REASON_LOOKUP_FAILED  8


typedef struct {
    ngx_uint_t                  status;
    ngx_uint_t                  region;
    time_t                      checked_at;
    size_t                      icp_len;
    u_char                      icp[NGX_ICP_GATE_ICP_LEN];
} ngx_icp_gate_verdict_t;


typedef struct ngx_icp_gate_waiter_s  ngx_icp_gate_waiter_t;

typedef void (*ngx_icp_gate_waiter_pt)(ngx_icp_gate_waiter_t *w);

struct ngx_icp_gate_waiter_s {
    ngx_queue_t                 queue;
    ngx_event_t                 timer;
    ngx_icp_gate_waiter_pt      handler;
    void                       *data;
    ngx_int_t                   rc;
    ngx_icp_gate_verdict_t     *verdict;    /* filled in when rc is NGX_OK */
    unsigned                    waiting:1;
};


/* the gate directives, embedded in the HTTP and RTMP block configurations */
typedef struct {
    ngx_uint_t                  mode;
    ngx_uint_t                  region;
    ngx_msec_t                  wait;
    ngx_uint_t                  on_error;
    ngx_open_file_t            *log;
    ngx_msec_t                  recheck;
} ngx_icp_gate_conf_t;


typedef struct {
    ngx_str_t                   host;
    ngx_str_t                   domain;
    ngx_uint_t                  result;
    ngx_uint_t                  reason;
    ngx_icp_gate_verdict_t      verdict;
    ngx_icp_gate_waiter_t       waiter;
} ngx_icp_gate_judgement_t;


extern ngx_module_t      ngx_icp_gate_module;

extern ngx_conf_enum_t   ngx_icp_gate_modes[];
extern ngx_conf_enum_t   ngx_icp_gate_regions[];
extern ngx_conf_enum_t   ngx_icp_gate_on_errors[];

extern ngx_str_t         ngx_icp_gate_status_names[];
extern ngx_str_t         ngx_icp_gate_region_names[];
extern ngx_str_t         ngx_icp_gate_result_names[];
extern ngx_str_t         ngx_icp_gate_reason_names[];


/*
 * The directives of a gate, for a protocol module whose block configuration
 * of type "type" embeds an ngx_icp_gate_conf_t named "gate".
 */

#define NGX_ICP_GATE_COMMANDS(contexts, offset, type)                         \
                                                                              \
    { ngx_string("icp_gate"),                                                 \
      contexts|NGX_CONF_TAKE1,                                                \
      ngx_icp_gate_conf_set_mode,                                             \
      offset,                                                                 \
      offsetof(type, gate.mode),                                              \
      &ngx_icp_gate_modes },                                                  \
                                                                              \
    { ngx_string("icp_gate_region"),                                          \
      contexts|NGX_CONF_TAKE1,                                                \
      ngx_icp_gate_conf_set_enum,                                             \
      offset,                                                                 \
      offsetof(type, gate.region),                                            \
      &ngx_icp_gate_regions },                                                \
                                                                              \
    { ngx_string("icp_gate_wait"),                                            \
      contexts|NGX_CONF_TAKE1,                                                \
      ngx_conf_set_msec_slot,                                                 \
      offset,                                                                 \
      offsetof(type, gate.wait),                                              \
      NULL },                                                                 \
                                                                              \
    { ngx_string("icp_gate_on_error"),                                        \
      contexts|NGX_CONF_TAKE1,                                                \
      ngx_icp_gate_conf_set_enum,                                             \
      offset,                                                                 \
      offsetof(type, gate.on_error),                                          \
      &ngx_icp_gate_on_errors },                                              \
                                                                              \
    { ngx_string("icp_gate_log"),                                             \
      contexts|NGX_CONF_TAKE1,                                                \
      ngx_icp_gate_conf_set_log,                                              \
      offset,                                                                 \
      offsetof(type, gate.log),                                               \
      NULL }


char *ngx_icp_gate_conf_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_icp_gate_conf_set_mode(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_icp_gate_conf_set_log(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_icp_gate_conf_init(ngx_icp_gate_conf_t *gcf);
void ngx_icp_gate_conf_merge(ngx_icp_gate_conf_t *conf,
    ngx_icp_gate_conf_t *prev);

ngx_int_t ngx_icp_gate_init_worker(ngx_cycle_t *cycle);

void ngx_icp_gate_judgement_init(ngx_icp_gate_judgement_t *j,
    ngx_str_t *host, ngx_icp_gate_waiter_pt handler, void *data,
    ngx_log_t *log);
ngx_int_t ngx_icp_gate_judge(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j, ngx_pool_t *pool);
ngx_int_t ngx_icp_gate_judge_again(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j);
void ngx_icp_gate_judge_resume(ngx_icp_gate_conf_t *gcf,
    ngx_icp_gate_judgement_t *j);
void ngx_icp_gate_judge_cancel(ngx_icp_gate_judgement_t *j);

ngx_uint_t ngx_icp_gate_name_lookup(ngx_str_t *names, u_char *data,
    size_t len);
void ngx_icp_gate_verdict_set_icp(ngx_icp_gate_verdict_t *v, u_char *data,
    size_t len);


#endif /* _NGX_ICP_GATE_H_INCLUDED_ */
