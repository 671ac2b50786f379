/* fuzz_interactions.c - the Interactions (standard/flex) answer parser. */
#include "api/route.h"
#include "tests/fuzz/fuzz_route.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	fuzz_route_one(route_standard.parse, data, size);
	return 0;
}
