/*
 * wire.h - pieces the route files share (private to api/): building a
 * request (URL, headers), reading untrusted JSON, and taking an image out of
 * an answer with every check DESIGN.md section 6 asks for.
 */
#ifndef BANANAFS_API_WIRE_H
#define BANANAFS_API_WIRE_H

#include <stdbool.h>
#include <cJSON.h>
#include "api/http.h"
#include "api/request.h"
#include "api/route.h"

/* malloc'd "base/rest" without a doubled slash; NULL on OOM. */
char *wire_url(const char *base, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends a formatted "Name: value" header; 0 or -1 (full, OOM). */
int wire_header(struct http_req *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Auth header for ep: x-goog-api-key, or Authorization: Bearer when ep->bearer or force_bearer. */
int wire_auth(struct http_req *out, const struct api_endpoint *ep, bool force_bearer);
/* Prints json into out->body (takes nothing from json); 0 or -1. */
int wire_body(struct http_req *out, const cJSON *json);

/* Parses resp's body; NULL with res set to ERR_MALFORMED when it is not a JSON object/array. */
cJSON *wire_parse(const struct http_resp *resp, struct gen_result *res);
/* String member or NULL. */
const char *wire_str(const cJSON *obj, const char *key);
/* Integer member or -1 when absent (accepts int64-as-string). */
long wire_long(const cJSON *obj, const char *key);

/*
 * Decodes base64 (strict), checks the bytes are PNG/JPEG/WebP matching the
 * claimed mime (when given), reads the size, and stores all into res.
 * Returns 0, or -1 with res->cls = ERR_MALFORMED and a message.
 */
int wire_take_image(struct gen_result *res, const char *b64, size_t b64len, const char *mime);
/*
 * Takes the largest JSON string of resp's body (at least 64 KiB, plain base64:
 * an image) out of the text before it is parsed: it is decoded in place into
 * the body's own buffer, which becomes res->lifted, and resp's body becomes
 * the small rest of the JSON with WIRE_LIFTED in its place.  So one 4K
 * answer is held once (about 4/3 of the image), never as body + parsed copy
 * + decoded copy.  Nothing changes when there is no such string.
 */
#define WIRE_LIFTED "bananafs:lifted-image"
void wire_lift_image(struct http_resp *resp, struct gen_result *res);
/* Appends text to res->text, separated by a newline. */
void wire_add_text(struct gen_result *res, const char *text);
/*
 * The image tokens of a usage list split by modality: entries
 * {"modality": "image"|"IMAGE", count_key: N} (Interactions "tokens",
 * generateContent "tokenCount").  True with *image set when list is an
 * array; false (and *image untouched) when the answer did not split.
 */
bool wire_image_tokens(const cJSON *list, const char *count_key, long *image);
/* Copies s into a fixed field (truncating). */
void wire_copy(char *dst, size_t n, const char *s);
/*
 * The answer's model name ("models/" dropped) into res->model_served, when it
 * looks like a model id (letters, digits, . - _ only; it reaches the ledger,
 * an xattr and the PNG); otherwise left empty.
 */
void wire_model_served(struct gen_result *res, const char *name);
/* True when a reason string names a safety/policy block (SAFETY, PROHIBITED_CONTENT, ...). */
bool wire_reason_is_safety(const char *reason);

#endif
