#include "steer_opts.h"

#include <string.h>

void cli_steer_init(cli_steer *s)
{
    memset(s, 0, sizeof *s);
}

int cli_steer_option(const cli_common *c, cli_steer *s, int opt, const char *arg)
{
    switch (opt) {
    case OPT_SAE: s->sae_path = arg; return 1;
    case OPT_LATENTS: s->latents_path = arg; return 1;
    case OPT_ALPHA:
        s->alpha_set = 1;
        /* negative alpha would push users towards popular items: refused (see steer.h) */
        return cli_parse_double(c, "alpha", arg, 0, 1e6, &s->alpha) < 0 ? -1 : 1;
    case OPT_NEURONS: return cli_parse_long(c, "neurons", arg, 1, 1 << 30, &s->neurons) < 0 ? -1 : 1;
    default: return 0;
    }
}

static int make_plan(const cli_common *c, cli_steer *s)
{
    ps_error err;
    ps_latent_table t;
    int m = s->sae->cfg.n_latents;
    if (ps_latents_csv_read(s->latents_path, m, &t, &err) != PS_OK)
        return cli_error(c, "%s", err.msg);
    int N = s->neurons ? (int)(s->neurons > m ? m + 1 : s->neurons) : m;
    int rc = ps_steer_plan_make(t.d, t.std_pop, t.std_unpop, m, N, s->alpha, &s->plan, &err);
    ps_latent_table_free(&t);
    if (rc != PS_OK)
        return cli_error(c, "%s", err.msg);
    s->has_plan = 1;
    return 0;
}

int cli_steer_scorer(const cli_common *c, cli_steer *s, const ps_sasrec *m, int max_batch, ps_scorer *out)
{
    ps_error err;
    if (!s->sae_path) {
        if (s->latents_path || s->alpha_set || s->neurons)
            return cli_usage_error(c, "--latents, --alpha and --neurons need --sae");
        if (ps_sasrec_scorer_init(&s->plain, m, max_batch, &err) != PS_OK)
            return cli_error(c, "%s", err.msg);
        *out = ps_sasrec_scorer_as_scorer(&s->plain);
        return 0;
    }
    if ((s->alpha_set || s->neurons) && !s->latents_path)
        return cli_usage_error(c, "--alpha and --neurons need --latents (the probe's table)");
    s->sae = ps_sae_load(s->sae_path, &err);
    if (!s->sae)
        return cli_error(c, "%s", err.msg);
    int rc = s->latents_path ? make_plan(c, s) : 0;
    if (rc)
        return rc;
    if (ps_steer_scorer_init(&s->steered, m, s->sae, s->has_plan ? &s->plan : NULL, max_batch, &err) != PS_OK)
        return cli_error(c, "%s: %s", s->sae_path, err.msg);
    *out = ps_steer_scorer_as_scorer(&s->steered);
    return 0;
}

void cli_steer_free(cli_steer *s)
{
    ps_sasrec_scorer_free(&s->plain);
    ps_steer_scorer_free(&s->steered);
    if (s->has_plan)
        ps_steer_plan_free(&s->plan);
    ps_sae_free(s->sae);
    s->sae = NULL;
    s->has_plan = 0;
}

void cli_steer_describe(const cli_steer *s, char *buf, unsigned size)
{
    if (!s->sae_path)
        snprintf(buf, size, "SASRec");
    else if (!s->has_plan)
        snprintf(buf, size, "SAE-reconstructed SASRec (alpha 0)");
    else
        snprintf(buf, size, "PopSteer (alpha %g, %d of %d latents)", s->alpha, s->plan.n, s->plan.m);
}
