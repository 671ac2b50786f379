/*
 * fuzz_gateway.c - the gateway answer parsers: both the route's own parse
 * and the chat-completions shape get every input.
 */
#include "api/route.h"
#include "tests/fuzz/fuzz_route.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	fuzz_route_one(route_gateway.parse, data, size);
	fuzz_route_one(gateway_parse_chat, data, size);
	return 0;
}
