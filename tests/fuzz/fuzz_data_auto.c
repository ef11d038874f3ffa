/* Fuzz target: the interaction-log loader on any file, format detected from the first line. */
#define FUZZ_TARGET data_auto
#include "fuzz_dataset.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    return fuzz_dataset_one(data, size, PS_FORMAT_AUTO);
}
