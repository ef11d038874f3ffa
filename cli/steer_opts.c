#include "steer_opts.h"

#include <stdlib.h>
#include <string.h>

#include "popsteer/steer_decoder.h"

void cli_steer_init(cli_steer *s)
{
    memset(s, 0, sizeof *s);
    s->rule = CLI_RULE_PAPER;
    s->alpha_pop = s->alpha_unpop = -1;
    s->gate = PS_RULE_GATE_USER;
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
    case OPT_RULE:
        if (!strcmp(arg, "paper"))
            s->rule = CLI_RULE_PAPER;
        else if (!strcmp(arg, "peruser"))
            s->rule = CLI_RULE_PERUSER;
        else if (!strcmp(arg, "decoder"))
            s->rule = CLI_RULE_DECODER;
        else
            return cli_usage_error(c, "--rule: expected 'paper', 'peruser' or 'decoder', got '%s'", arg), -1;
        return 1;
    case OPT_ALPHA_POP:
        s->rule_opts_set = 1;
        return cli_parse_double(c, "alpha-pop", arg, 0, 1e6, &s->alpha_pop) < 0 ? -1 : 1;
    case OPT_ALPHA_UNPOP:
        s->rule_opts_set = 1;
        return cli_parse_double(c, "alpha-unpop", arg, 0, 1e6, &s->alpha_unpop) < 0 ? -1 : 1;
    case OPT_GATE:
        s->rule_opts_set = 1;
        if (!strcmp(arg, "user"))
            s->gate = PS_RULE_GATE_USER;
        else if (!strcmp(arg, "none"))
            s->gate = PS_RULE_GATE_NONE;
        else
            return cli_usage_error(c, "--gate: expected 'user' or 'none', got '%s'", arg), -1;
        return 1;
    case OPT_SKIP_DEAD: s->rule_opts_set = s->skip_dead = 1; return 1;
    case OPT_KEEP_ERROR: s->rule_opts_set = s->keep_error = 1; return 1;
    default: return 0;
    }
}

/* PopSteer-U from the probe's table: --alpha-pop/--alpha-unpop default to --alpha. */
static int make_rule(const cli_common *c, cli_steer *s, const ps_latent_table *t, int N)
{
    ps_error err;
    ps_steer_rule_params p;
    ps_steer_rule_params_paper(&p, N, s->alpha);
    if (s->alpha_pop >= 0)
        p.alpha_pop = s->alpha_pop;
    if (s->alpha_unpop >= 0)
        p.alpha_unpop = s->alpha_unpop;
    p.gate = s->gate;
    p.skip_dead = s->skip_dead;
    p.keep_error = s->keep_error;
    ps_steer_rule_probe pr = {t->m, t->d, t->mean_pop, t->std_pop, t->mean_unpop, t->std_unpop, t->fire_rate};
    if (ps_steer_rule_make(&pr, &p, &s->srule, &err) != PS_OK)
        return cli_error(c, "%s", err.msg);
    s->has_rule = 1;
    if (p.skip_dead)
        cli_note(c, "steering rule: %d latents never fire on real users and are left out", s->srule.n_dead_skipped);
    return 0;
}

/* PopSteer-I: ν from the validation users, then the decoder rows' vector (steer_decoder.h). */
static int make_delta(const cli_common *c, cli_steer *s, const ps_latent_table *t, int N, const ps_sasrec *m,
                      const ps_dataset *ds)
{
    ps_error err;
    s->delta = ps_calloc((size_t)m->cfg.d, sizeof *s->delta, "steering vector", &err);
    int rc = s->delta ? ps_validation_mean_norm(m, ds, &s->nu, &err) : PS_ERR;
    s->n_steered = N > t->m ? t->m : N;
    if (rc == PS_OK)
        rc = ps_decoder_delta(s->sae, t->d, s->n_steered, s->alpha, s->nu, s->delta, &err);
    return rc == PS_OK ? 0 : cli_error(c, "%s", err.msg);
}

static int make_plan(const cli_common *c, cli_steer *s, const ps_sasrec *model, const ps_dataset *ds)
{
    ps_error err;
    ps_latent_table t;
    int m = s->sae->cfg.n_latents;
    if (ps_latents_csv_read(s->latents_path, m, &t, &err) != PS_OK)
        return cli_error(c, "%s", err.msg);
    int N = s->neurons ? (int)(s->neurons > m ? m + 1 : s->neurons) : m;
    if (s->rule != CLI_RULE_PAPER) {
        int r = s->rule == CLI_RULE_PERUSER ? make_rule(c, s, &t, N) : make_delta(c, s, &t, N, model, ds);
        ps_latent_table_free(&t);
        return r;
    }
    int rc = ps_steer_plan_make(t.d, t.std_pop, t.std_unpop, m, N, s->alpha, &s->plan, &err);
    ps_latent_table_free(&t);
    if (rc != PS_OK)
        return cli_error(c, "%s", err.msg);
    s->has_plan = 1;
    return 0;
}

int cli_steer_check(const cli_common *c, const cli_steer *s)
{
    if (!s->sae_path) {
        if (s->latents_path || s->alpha_set || s->neurons || s->rule != CLI_RULE_PAPER || s->rule_opts_set)
            return cli_usage_error(c, "--latents, --alpha, --neurons and --rule need --sae");
        return 0;
    }
    if ((s->alpha_set || s->neurons) && !s->latents_path)
        return cli_usage_error(c, "--alpha and --neurons need --latents (the probe's table)");
    if (s->rule != CLI_RULE_PAPER && !s->latents_path)
        return cli_usage_error(c, "--rule %s needs --latents (the probe's table)",
                               s->rule == CLI_RULE_PERUSER ? "peruser" : "decoder");
    /* the paper's rule and PopSteer-I have one alpha and no gate: those parameters are never
     * silently ignored (PopSteer-I always keeps the SAE's error: it adds to SASRec's own h) */
    if (s->rule != CLI_RULE_PERUSER && s->rule_opts_set)
        return cli_usage_error(c, "--alpha-pop, --alpha-unpop, --gate, --skip-dead and --keep-error need "
                                  "--rule peruser");
    return 0;
}

int cli_steer_scorer(const cli_common *c, cli_steer *s, const ps_sasrec *m, const ps_dataset *ds, int max_batch,
                     ps_scorer *out)
{
    ps_error err;
    int status = cli_steer_check(c, s);
    if (status)
        return status;
    if (!s->sae_path) {
        if (ps_sasrec_scorer_init(&s->plain, m, max_batch, &err) != PS_OK)
            return cli_error(c, "%s", err.msg);
        *out = ps_sasrec_scorer_as_scorer(&s->plain);
        return 0;
    }
    s->sae = ps_sae_load(s->sae_path, &err);
    if (!s->sae)
        return cli_error(c, "%s", err.msg);
    int rc = s->latents_path ? make_plan(c, s, m, ds) : 0;
    if (rc)
        return rc;
    if (s->delta) {
        if (ps_ablation_scorer_init(&s->moved, PS_ABLATION_DIRECTION, m, NULL, NULL, NULL, s->delta, max_batch,
                                    &err) != PS_OK)
            return cli_error(c, "%s", err.msg);
        *out = ps_ablation_scorer_as_scorer(&s->moved);
        return 0;
    }
    if (s->has_rule) {
        if (ps_rule_scorer_init(&s->ruled, m, s->sae, &s->srule, max_batch, &err) != PS_OK)
            return cli_error(c, "%s: %s", s->sae_path, err.msg);
        *out = ps_rule_scorer_as_scorer(&s->ruled);
        return 0;
    }
    if (ps_steer_scorer_init(&s->steered, m, s->sae, s->has_plan ? &s->plan : NULL, max_batch, &err) != PS_OK)
        return cli_error(c, "%s: %s", s->sae_path, err.msg);
    *out = ps_steer_scorer_as_scorer(&s->steered);
    return 0;
}

void cli_steer_free(cli_steer *s)
{
    ps_sasrec_scorer_free(&s->plain);
    ps_steer_scorer_free(&s->steered);
    ps_rule_scorer_free(&s->ruled);
    ps_ablation_scorer_free(&s->moved);
    free(s->delta);
    s->delta = NULL;
    if (s->has_rule)
        ps_steer_rule_free(&s->srule);
    s->has_rule = 0;
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
    else if (s->has_rule) {
        const ps_steer_rule *r = &s->srule;
        double mean_gate = s->ruled.gate_rows ? s->ruled.gate_sum / (double)s->ruled.gate_rows : 1.0;
        snprintf(buf, size, "PopSteer-U (alpha_pop %g, alpha_unpop %g, %d of %d latents%s, gate %s, mean gate %.3f%s)",
                 r->p.alpha_pop, r->p.alpha_unpop, r->n, r->m, r->p.skip_dead ? " that fire" : "",
                 r->p.gate == PS_RULE_GATE_USER ? "per user" : "none", mean_gate,
                 r->p.keep_error ? ", SAE error kept" : "");
    } else if (s->delta)
        snprintf(buf, size, "PopSteer-I (alpha %g, %d of %d latents' decoder rows, nu %.4g)", s->alpha, s->n_steered,
                 s->sae->cfg.n_latents, s->nu);
    else if (!s->has_plan)
        snprintf(buf, size, "SAE-reconstructed SASRec (alpha 0)");
    else
        snprintf(buf, size, "PopSteer (alpha %g, %d of %d latents)", s->alpha, s->plan.n, s->plan.m);
}
