/*
 * fuzz_prompt.c - prompt_parse on a whole prompt file, then prompt_check
 * on what it accepted, and prompt_name_triggers on the input as a name.
 */
#include <stdlib.h>
#include <string.h>
#include "cache/prompt.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct prompt p;
	char err[256];
	char *buf = malloc(size ? size : 1);	/* not NUL-terminated: len is the contract */

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	memset(&p, 0, sizeof(p));
	err[0] = '\0';
	if (prompt_parse(buf, size, &p, err, sizeof(err)) == PROMPT_OK) {
		(void)prompt_check(&p, "gemini-3.1-flash-image", "1K",
				   p.aspect[0] ? p.aspect : "1:1", err, sizeof(err));
		(void)prompt_check(&p, "gemini-3-pro-image", "4K",
				   p.aspect[0] ? p.aspect : "1:1", err, sizeof(err));
		prompt_free(&p);
	}
	free(buf);

	/* a file name: NUL-terminated, up to NAME_MAX */
	if (size <= 255) {
		char name[256];
		memcpy(name, data, size);
		name[size] = '\0';
		(void)prompt_name_triggers(name);
	}
	return 0;
}
