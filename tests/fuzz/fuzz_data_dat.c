/* Fuzz target: the interaction-log loader on MovieLens ratings.dat (UserID::MovieID::Rating::Timestamp). */
#define FUZZ_TARGET data_dat
#include "fuzz_dataset.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    return fuzz_dataset_one(data, size, PS_FORMAT_DAT);
}
