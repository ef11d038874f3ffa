/* Fuzz target: the interaction-log loader on RecBole atomic .inter files (typed tab-separated header). */
#define FUZZ_TARGET data_atomic
#include "fuzz_dataset.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    return fuzz_dataset_one(data, size, PS_FORMAT_ATOMIC);
}
