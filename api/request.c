/*
 * request.c - names of routes and error classes, and the result's lifetime.
 */
#include "api/request.h"
#include "api/http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const route_names[ROUTE_COUNT] = {
	[ROUTE_STANDARD] = "standard",
	[ROUTE_GENERATE] = "generate",
	[ROUTE_FLEX] = "flex",
	[ROUTE_BATCH] = "batch",
	[ROUTE_GATEWAY] = "gateway",
};

const char *route_name(enum route r)
{
	if ((int)r < 0 || r >= ROUTE_COUNT)
		return NULL;
	return route_names[r];
}

int route_parse(const char *name, enum route *out)
{
	if (!name)
		return -1;
	for (int i = 0; i < ROUTE_COUNT; i++) {
		if (strcmp(name, route_names[i]) == 0) {
			*out = (enum route)i;
			return 0;
		}
	}
	return -1;
}

static const char *const class_names[ERR_COUNT] = {
	[ERR_NONE] = "none",
	[ERR_CREDENTIALS] = "credentials",
	[ERR_PERMISSION] = "permission",
	[ERR_QUOTA_MINUTE] = "quota-minute",
	[ERR_QUOTA_DAY] = "quota-day",
	[ERR_QUOTA_ZERO] = "quota-zero",
	[ERR_BILLING] = "billing",
	[ERR_REQUEST] = "request",
	[ERR_SAFETY] = "safety",
	[ERR_NO_IMAGE] = "no-image",
	[ERR_CAPACITY] = "capacity",
	[ERR_NETWORK] = "network",
	[ERR_MALFORMED] = "malformed",
	[ERR_ENDPOINT] = "endpoint",
	[ERR_STORE] = "store",
};

const char *err_class_name(enum err_class c)
{
	if ((int)c < 0 || c >= ERR_COUNT)
		return "unknown";
	return class_names[c];
}

bool err_class_transient(enum err_class c)
{
	return c == ERR_QUOTA_MINUTE || c == ERR_CAPACITY || c == ERR_NETWORK;
}

void gen_result_free(struct gen_result *r)
{
	if (!r)
		return;
	free(r->message);
	free(r->text);
	free(r->image);
	free(r->lifted);
	r->lifted = NULL;
	r->lifted_len = 0;
	http_memory_release(r->mem_held);
	r->mem_held = 0;
	r->message = NULL;
	r->text = NULL;
	r->image = NULL;
	r->image_len = 0;
}

void gen_result_fail(struct gen_result *r, enum err_class cls, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	r->cls = cls;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	free(r->message);
	r->message = msg;	/* NULL on OOM: the class still says what happened */
}
