/* Fuzz target: the interaction-log loader on CSV/TSV files with a header naming the columns. */
#define FUZZ_TARGET data_csv
#include "fuzz_dataset.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    return fuzz_dataset_one(data, size, PS_FORMAT_CSV);
}
