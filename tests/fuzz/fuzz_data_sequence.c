/* Fuzz target: the interaction-log loader on sequence files (one user per line: user item1 item2 ...). */
#define FUZZ_TARGET data_sequence
#include "fuzz_dataset.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    return fuzz_dataset_one(data, size, PS_FORMAT_SEQUENCE);
}
