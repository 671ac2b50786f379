/*
 * provenance.c - what a published PNG says about itself.
 *
 * Every key is written as iTXt (exact UTF-8) and as a tEXt copy, because
 * ImageMagick 6 (Debian 12's identify -verbose) and many viewers show tEXt
 * only.  "parameters" follows AUTOMATIC1111's layout, which image browsers
 * and prompt readers parse: the prompt, a newline, then "Name: value" pairs
 * joined by ", ".  It is written once, as A1111 does (tEXt when Latin-1 holds
 * it, else iTXt).  The model's own text (the "text" key) is the server's and
 * is capped at IMAGE_SERVER_TEXT_MAX; the only other thing taken from the answer is the
 * served model's name, which wire_model_served checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/route.h"
#include "cache/provenance.h"

static void hex16(const unsigned char h[16], char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* "xxh3-128:HEX xxh3-128:HEX" for the reference images; NULL when there are none. */
static char *inputs_text(const struct gen_request *rq)
{
	size_t per = 9 + 32 + 1;
	char *s, hex[33];

	if (rq->nrefs <= 0 || !rq->refs)
		return NULL;
	s = malloc((size_t)rq->nrefs * per + 1);
	if (!s)
		return NULL;
	s[0] = '\0';
	for (int i = 0; i < rq->nrefs; i++) {
		hex16(rq->refs[i].hash, hex);
		snprintf(s + strlen(s), per + 1, "%sxxh3-128:%s", i ? " " : "", hex);
	}
	return s;
}

int provenance_build(struct provenance *pv, const struct gen_request *rq, const struct gen_result *res,
		     const char *key_hex)
{
	const char *model = res->model_served[0] ? res->model_served : rq->model;
	const char *route = route_name(rq->route) ? route_name(rq->route) : "?";
	char *variant = NULL, *inputs = NULL, *params = NULL;
	int n = 0;

	memset(pv, 0, sizeof(*pv));
	if (asprintf(&variant, "%d", rq->variant) < 0) {
		variant = NULL;
		goto out_oom;
	}
	pv->owned[0] = variant;
	if (rq->nrefs > 0 && !(inputs = inputs_text(rq)))
		goto out_oom;
	pv->owned[1] = inputs;
	if (asprintf(&params, "%s\nModel: %s, Size: %s, Aspect: %s, Route: %s, Variant: %d, Key: %s%s%s",
		     rq->prompt ? rq->prompt : "", model, rq->size, rq->aspect, route, rq->variant, key_hex,
		     inputs ? ", Inputs: " : "", inputs ? inputs : "") < 0) {
		params = NULL;
		goto out_oom;
	}
	pv->owned[2] = params;

	pv->t[n++] = (struct png_text){ "prompt", rq->prompt ? rq->prompt : "", false };
	pv->t[n++] = (struct png_text){ "model", model, false };
	if (strcmp(model, rq->model) != 0)
		pv->t[n++] = (struct png_text){ "requested_model", rq->model, false };
	pv->t[n++] = (struct png_text){ "size", rq->size, false };
	pv->t[n++] = (struct png_text){ "aspect", rq->aspect, false };
	pv->t[n++] = (struct png_text){ "route", route, false };
	pv->t[n++] = (struct png_text){ "variant", variant, false };
	pv->t[n++] = (struct png_text){ "key", key_hex, false };
	if (inputs)
		pv->t[n++] = (struct png_text){ "inputs", inputs, false };
	if (res->text && *res->text) {
		/* the model's text is the server's: capped like the image's own text chunks */
		size_t k = strlen(res->text);
		if (k > IMAGE_SERVER_TEXT_MAX) {
			k = IMAGE_SERVER_TEXT_MAX;
			while (k > 0 && ((unsigned char)res->text[k] & 0xC0) == 0x80)
				k--;	/* never cut a UTF-8 character */
		}
		if ((pv->owned[3] = strndup(res->text, k)) != NULL)
			pv->t[n++] = (struct png_text){ "text", pv->owned[3], false };
	}
	pv->t[n++] = (struct png_text){ "Software", "bananafs", false };
	pv->t[n++] = (struct png_text){ "parameters", params, true };
	pv->n = n;
	return 0;

out_oom:
	free(variant);
	free(inputs);
	memset(pv, 0, sizeof(*pv));
	return -1;
}

void provenance_free(struct provenance *pv)
{
	for (size_t i = 0; i < sizeof(pv->owned) / sizeof(pv->owned[0]); i++)
		free(pv->owned[i]);
	memset(pv, 0, sizeof(*pv));
}
