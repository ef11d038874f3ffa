/* Fuzz target: the interaction-log loader on MovieLens 100K u.data (user item rating timestamp, no header). */
#define FUZZ_TARGET data_udata
#include "fuzz_dataset.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    return fuzz_dataset_one(data, size, PS_FORMAT_UDATA);
}
