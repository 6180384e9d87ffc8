
/*
 * Copyright (C) icp_gate authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_icp_gate_conf.h"
#include "ngx_icp_gate_module.h"


ngx_conf_enum_t  ngx_icp_gate_modes[] = {
    { ngx_string("off"), NGX_ICP_GATE_MODE_OFF },
    { ngx_string("on"), NGX_ICP_GATE_MODE_ON },
    { ngx_string("dry_run"), NGX_ICP_GATE_MODE_DRY_RUN },
    { ngx_null_string, 0 }
};


ngx_conf_enum_t  ngx_icp_gate_regions[] = {
    { ngx_string("mainland"), NGX_ICP_GATE_REGION_MAINLAND },
    { ngx_string("global"), NGX_ICP_GATE_REGION_GLOBAL },
    { ngx_string("overseas"), NGX_ICP_GATE_REGION_OVERSEAS },
    { ngx_null_string, 0 }
};


ngx_conf_enum_t  ngx_icp_gate_on_errors[] = {
    { ngx_string("deny"), NGX_ICP_GATE_ON_ERROR_DENY },
    { ngx_string("allow"), NGX_ICP_GATE_ON_ERROR_ALLOW },
    { ngx_null_string, 0 }
};


/* ngx_conf_set_enum_slot() that names the directive and its values */

char *
ngx_icp_gate_conf_set_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char           *p;
    ngx_str_t        *value;
    ngx_uint_t       *field;
    ngx_conf_enum_t  *e;
    u_char            values[128];

    field = (ngx_uint_t *) ((char *) conf + cmd->offset);

    if (*field != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p = values;

    for (e = cmd->post; e->name.len; e++) {
        if (e->name.len == value[1].len
            && ngx_strcmp(e->name.data, value[1].data) == 0)
        {
            *field = e->value;
            return NGX_CONF_OK;
        }

        p = ngx_slprintf(p, values + sizeof(values), "%s\"%V\"",
                         p == values ? "" : e[1].name.len ? ", " : " or ",
                         &e->name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\", expected %*s",
                       &value[1], &cmd->name, p - values, values);

    return NGX_CONF_ERROR;
}


char *
ngx_icp_gate_conf_set_mode(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char        *rv;
    ngx_uint_t  *mode;

    rv = ngx_icp_gate_conf_set_enum(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    mode = (ngx_uint_t *) ((char *) conf + cmd->offset);

    if (*mode != NGX_ICP_GATE_MODE_OFF && ngx_icp_gate_use(cf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_icp_gate_conf_set_log(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t         *value;
    ngx_open_file_t  **file;

    file = (ngx_open_file_t **) ((char *) conf + cmd->offset);

    if (*file != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        *file = NULL;
        return NGX_CONF_OK;
    }

    /* opened, and reopened on "nginx -s reopen", with nginx's own logs */

    *file = ngx_conf_open_file(cf->cycle, &value[1]);
    if (*file == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


void
ngx_icp_gate_conf_init(ngx_icp_gate_conf_t *gcf)
{
    gcf->mode = NGX_CONF_UNSET_UINT;
    gcf->region = NGX_CONF_UNSET_UINT;
    gcf->wait = NGX_CONF_UNSET_MSEC;
    gcf->on_error = NGX_CONF_UNSET_UINT;
    gcf->log = NGX_CONF_UNSET_PTR;
}


void
ngx_icp_gate_conf_merge(ngx_icp_gate_conf_t *conf, ngx_icp_gate_conf_t *prev)
{
    ngx_conf_merge_uint_value(conf->mode, prev->mode, NGX_ICP_GATE_MODE_OFF);
    ngx_conf_merge_uint_value(conf->region, prev->region,
                              NGX_ICP_GATE_REGION_MAINLAND);
    ngx_conf_merge_msec_value(conf->wait, prev->wait, 3000);
    ngx_conf_merge_uint_value(conf->on_error, prev->on_error,
                              NGX_ICP_GATE_ON_ERROR_DENY);
    ngx_conf_merge_ptr_value(conf->log, prev->log, NULL);
}
