/* --group / --versus (group_opts.h). */
#include "group_opts.h"

int cli_group_option(cli_group *g, int opt, const char *arg)
{
    if (opt == OPT_GROUP)
        g->spec = arg;
    else if (opt == OPT_VERSUS)
        g->versus = arg;
    else
        return 0;
    return 1;
}

int cli_group_check(const cli_common *c, const cli_group *g)
{
    if (g->versus && !g->spec)
        return cli_usage_error(c, "--versus needs --group");
    return 0;
}

int cli_group_make(const cli_common *c, const cli_group *g, const ps_dataset *ds, const char *items,
                   ps_item_group *out)
{
    ps_error err;
    if (ps_item_group_make(out, ds, g->spec, g->versus, items, &err) != PS_OK)
        return cli_error(c, "%s", err.msg);
    cli_note(c, "item group: %s", out->desc);
    if (out->tokens_filtered)
        cli_note(c, "item group: %lld ids of items that filtering removed were skipped",
                 (long long)out->tokens_filtered);
    return 0;
}
