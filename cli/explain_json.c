/* popsteer explain's JSON object, shared with popsteer serve (explain_json.h). */
#include "explain_json.h"

const char *explain_label_name(int8_t l)
{
    return l > 0 ? "head" : l < 0 ? "tail" : "mid";
}

static const char *token(const explain_view *v, int32_t item)
{
    return ps_strings_get(&v->ds->item_tokens, item);
}

static cJSON *json_item(const explain_view *v, int32_t item)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "item", token(v, item));
    const char *t = ps_item_title(v->titles, item);
    if (t)
        cJSON_AddStringToObject(o, "title", t);
    cJSON_AddStringToObject(o, "popularity", explain_label_name(v->ds->label[item]));
    return o;
}

static cJSON *json_side(const explain_view *v, const ps_explain_side *s, const int32_t *list, ps_error *err, int *rc)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "score", s->score);
    cJSON_AddNumberToObject(o, "sum", s->sum);
    cJSON_AddNumberToObject(o, "bias_term", s->bias_term);
    cJSON_AddNumberToObject(o, "error_term", s->error_term);
    cJSON *lat = cJSON_AddArrayToObject(o, "latents");
    for (int i = 0; i < s->n_codes && *rc == PS_OK; i++) {
        const ps_explain_code *c = &s->codes[i];
        cJSON *l = cJSON_CreateObject();
        cJSON_AddNumberToObject(l, "latent", c->latent);
        cJSON_AddNumberToObject(l, "z", c->z);
        cJSON_AddNumberToObject(l, "cohens_d", c->d);
        cJSON_AddNumberToObject(l, "fire_rate", c->fire_rate);
        cJSON_AddNumberToObject(l, "contribution", c->contrib);
        int32_t top[N_TOP_ITEMS];
        *rc = ps_explain_latent_top_items(v->m, v->sae, c->latent, N_TOP_ITEMS, top, err);
        cJSON *ti = cJSON_AddArrayToObject(l, "top_items");
        for (int t = 0; t < N_TOP_ITEMS && *rc == PS_OK && top[t]; t++)
            cJSON_AddItemToArray(ti, json_item(v, top[t]));
        cJSON_AddItemToArray(lat, l);
    }
    cJSON *con = cJSON_AddArrayToObject(o, "contributions");
    for (int i = 0; i < s->n_codes; i++) {
        const ps_explain_code *c = &s->codes[s->by_contrib[i]];
        cJSON *l = cJSON_CreateObject();
        cJSON_AddNumberToObject(l, "latent", c->latent);
        cJSON_AddNumberToObject(l, "contribution", c->contrib);
        cJSON_AddNumberToObject(l, "z", c->z);
        cJSON_AddNumberToObject(l, "cohens_d", c->d);
        /* the same latent's entry in "latents" (same index into codes) has its top items */
        const cJSON *same = cJSON_GetArrayItem(lat, s->by_contrib[i]);
        cJSON *ti = same ? cJSON_Duplicate(cJSON_GetObjectItem(same, "top_items"), 1) : NULL;
        if (ti)
            cJSON_AddItemToObject(l, "top_items", ti);
        cJSON_AddItemToArray(con, l);
    }
    cJSON *top = cJSON_AddArrayToObject(o, "top");
    for (int j = 0; j < v->k && list[j]; j++) {
        cJSON *it = json_item(v, list[j]);
        cJSON_AddNumberToObject(it, "rank", j + 1);
        cJSON_AddNumberToObject(it, "score", s->scores[list[j]]);
        cJSON_AddItemToArray(top, it);
    }
    return o;
}

cJSON *explain_json(const explain_view *v, const int32_t *before, const int32_t *after, ps_error *err)
{
    const ps_explain *e = v->e;
    int rc = PS_OK;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "user", v->user);
    cJSON_AddNumberToObject(o, "history_len", (double)v->history);
    cJSON_AddNumberToObject(o, "prefix_len", v->prefix_len);
    cJSON_AddStringToObject(o, "steering", v->steering);
    cJSON_AddNumberToObject(o, "gate", e->gate);
    cJSON *it = json_item(v, e->item);
    cJSON_AddBoolToObject(it, "top1_of_steered", e->item_was_top1);
    cJSON_AddItemToObject(o, "item", it);
    cJSON_AddItemToObject(o, "before", json_side(v, &e->before, before, err, &rc));
    cJSON_AddItemToObject(o, "after", json_side(v, &e->after, after, err, &rc));
    if (rc != PS_OK || !o) {
        if (rc == PS_OK)
            ps_fail(err, "out of memory");
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
