
/*
 * Copyright (C) icp_gate authors
 *
 * A list of filing verdicts, as icp-gate-import and icp_gate_file read it:
 * lines of CSV or JSON, each host reduced to its registrable domain by the
 * gate's own code, and one verdict a domain, the most restrictive of its
 * lines'.
 */


#ifndef _NGX_ICP_GATE_FILINGS_H_INCLUDED_
#define _NGX_ICP_GATE_FILINGS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* how lines are read: by their first byte, or all alike */
#define NGX_ICP_GATE_FILINGS_ANY      0
#define NGX_ICP_GATE_FILINGS_CSV      1
#define NGX_ICP_GATE_FILINGS_JSONL    2

/* a longer line is refused whole: no record comes near it */
#define NGX_ICP_GATE_FILINGS_LINE_MAX 65535


/* a domain's verdict: its most restrictive line's */
typedef struct {
    u_char                     *domain;
    u_char                     *icp;
    uint32_t                    hash;
    uint32_t                    line;
    uint32_t                    file;       /* the reader's index of it */
    u_char                      domain_len;
    u_char                      icp_len;
    u_char                      status;
    u_char                      region;
    unsigned                    subdomain:1;    /* the line named one */
    unsigned                    conflict:1;     /* another line differed */
} ngx_icp_gate_filing_t;


typedef struct ngx_icp_gate_filings_s  ngx_icp_gate_filings_t;

/* a line that cannot be used: text, of len bytes, is the line as read */
typedef void (*ngx_icp_gate_filings_skip_pt)(ngx_icp_gate_filings_t *fs,
    ngx_uint_t file, ngx_uint_t line, u_char *text, size_t len, char *why);

/* a line whose verdict differs from the one kept: heavier, it replaces it */
typedef void (*ngx_icp_gate_filings_conflict_pt)(ngx_icp_gate_filings_t *fs,
    ngx_icp_gate_filing_t *d, ngx_icp_gate_filing_t *kept,
    ngx_uint_t heavier);


struct ngx_icp_gate_filings_s {
    /* every domain read, in the order first read, and a table to find it */
    ngx_icp_gate_filing_t      *domains;
    ngx_uint_t                  n;
    ngx_uint_t                  size;
    uint64_t                   *slots;      /* hash, 1 + index; 0: free */
    ngx_uint_t                  mask;
    ngx_pool_t                 *text;       /* names and numbers kept */
    ngx_pool_t                 *scratch;    /* a line's, reset now and then */

    /* the reader */
    FILE                       *in;
    u_char                     *start;
    u_char                     *pos;
    u_char                     *last;
    u_char                     *end;
    ngx_uint_t                  eof;
    u_char                      head[60];   /* the start of a long line */

    ngx_uint_t                  format;
    ngx_uint_t                  lines;      /* records, blank ones not */
    ngx_uint_t                  skipped;
    ngx_uint_t                  conflicts;  /* domains */
    char                       *failure;    /* of ngx_icp_gate_filings_read */

    ngx_icp_gate_filings_skip_pt      skip;
    ngx_icp_gate_filings_conflict_pt  conflict;
    void                             *data;
    ngx_log_t                        *log;
};


ngx_int_t ngx_icp_gate_filings_init(ngx_icp_gate_filings_t *fs,
    ngx_log_t *log);
ngx_int_t ngx_icp_gate_filings_read(ngx_icp_gate_filings_t *fs, FILE *in,
    ngx_uint_t file);
void ngx_icp_gate_filings_free(ngx_icp_gate_filings_t *fs);
ngx_uint_t ngx_icp_gate_filings_weight(ngx_icp_gate_filing_t *d);
u_char *ngx_icp_gate_filings_describe(u_char *p, u_char *last,
    ngx_icp_gate_filing_t *d);


#endif /* _NGX_ICP_GATE_FILINGS_H_INCLUDED_ */
