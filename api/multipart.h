/*
 * multipart.h - a multipart/form-data body (RFC 7578) built in memory, for
 * the gateway's /v1/images/edits.  http.c sends it as an ordinary byte body.
 */
#ifndef BANANAFS_API_MULTIPART_H
#define BANANAFS_API_MULTIPART_H

#include <stddef.h>

/* Room for a boundary and its NUL. */
#define MULTIPART_BOUNDARY_MAX 48

struct mp_part {
	const char *name;		/* field name, e.g. "prompt" or "image[]" */
	const char *filename;		/* NULL for a plain field */
	const char *ctype;		/* file parts: content type; NULL = application/octet-stream */
	const void *data;		/* borrowed */
	size_t len;			/* bytes */
};

/*
 * Builds the body of n parts.  The boundary is random and checked to occur
 * in no part; it is written to boundary (the caller's Content-Type header
 * needs it).  Quotes, CR and LF in names and filenames are escaped as %22,
 * %0D, %0A (the WHATWG form encoding); a content type holding a control
 * character is refused.  Returns the malloc'd body with its length in *len
 * (binary: not NUL-terminated for the caller's use), or NULL on a refused
 * part or out of memory.
 */
char *multipart_build(const struct mp_part *parts, int n, char boundary[MULTIPART_BOUNDARY_MAX],
		      size_t *len);

#endif
