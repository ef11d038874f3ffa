/* Fuzz target: the item-title reader (ps_item_titles_load: RecBole .item, u.item, movies.dat,
 * CSV/TSV), which `recommend --items` and `probe --items` run on user-supplied files.
 *
 * Titles are looked up against a fixed small dataset whose item tokens look like the ids of the
 * supported formats (numbers, words, a token with a colon). An accepted file must give exactly
 * n_items + 1 slots, no title for the padding item, and at most one title per item. */
#define FUZZ_TARGET items
#include "fuzz_common.h"

#include "popsteer/dataset.h"
#include "popsteer/items.h"

static const char DATASET[] = "u1 1 2 3 4 5\n"
                              "u2 2 3 10 item a:b\n"
                              "u3 movie 1 2 3 10\n"
                              "u4 a:b 5 item 1\n";

static const ps_dataset *fixed_dataset(void)
{
    static ps_dataset ds;
    static int loaded;
    if (loaded)
        return &ds;
    char path[512];
    snprintf(path, sizeof path, "%s/items-dataset.txt", fuzz_scratch_dir());
    FILE *fp = fopen(path, "wb");
    FUZZ_CHECK(fp && fwrite(DATASET, 1, sizeof DATASET - 1, fp) == sizeof DATASET - 1 && fclose(fp) == 0);
    ps_load_options o;
    ps_load_options_init(&o);
    o.format = PS_FORMAT_SEQUENCE;
    ps_error err;
    FUZZ_CHECK(ps_dataset_load(&ds, path, &o, &err) == PS_OK);
    unlink(path);
    loaded = 1;
    return &ds;
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    const ps_dataset *ds = fixed_dataset();
    ps_item_titles t;
    ps_error err;
    if (ps_item_titles_load(&t, ds, fuzz_input_path(data, size), &err) != PS_OK) {
        FUZZ_CHECK(err.msg[0] != '\0');
        FUZZ_CHECK(t.title == NULL);
        return 0;
    }
    FUZZ_CHECK(t.n == ds->n_items + 1);
    FUZZ_CHECK(t.title[0] == NULL);
    int32_t found = 0;
    for (int32_t i = 1; i < t.n; i++)
        if (t.title[i]) {
            found++;
            FUZZ_CHECK(strlen(t.title[i]) <= size);
        }
    FUZZ_CHECK(found == t.found);
    FUZZ_CHECK(ps_item_title(&t, -1) == NULL && ps_item_title(&t, t.n) == NULL);
    ps_item_titles_free(&t);
    return 0;
}
