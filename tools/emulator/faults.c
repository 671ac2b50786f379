/* Scripted faults: POST /_emulator/fault queues them, the next generation
 * answers consume them in order.  Error bodies follow gemini-wire.md 4.1. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

#define MAX_FAULTS 64

struct pending {
	struct fault f;
	int count;              /* answers still to hit */
};

static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pending queue[MAX_FAULTS];   /* protected by fault_mu, FIFO */
static int n_queue;                        /* protected by fault_mu */

static const struct { const char *name; enum fault_kind k; } kinds[] = {
	{ "429-minute", F_429_MINUTE }, { "429-day", F_429_DAY },
	{ "429-zero", F_429_ZERO }, { "401", F_401 }, { "402", F_402 },
	{ "403", F_403 }, { "500", F_500 }, { "502", F_502 }, { "503", F_503 },
	{ "504", F_504 }, { "safety", F_SAFETY }, { "text-only", F_TEXT_ONLY },
	{ "malformed-json", F_MALFORMED }, { "truncated-base64", F_TRUNC_B64 },
	{ "wrong-size", F_WRONG_SIZE }, { "huge-body", F_HUGE },
	{ "slow", F_SLOW }, { "drop", F_DROP }, { "jpeg", F_JPEG },
	{ "echo-key", F_ECHO_KEY }, { "redirect", F_REDIRECT },
	{ "trickle", F_TRICKLE }, { "truncated-image", F_TRUNC_IMAGE },
	{ "big-text", F_BIG_TEXT }, { "noise", F_NOISE },
	{ "no-background", F_NO_BACKGROUND },
};

bool fault_add_json(const cJSON *j, char *msg, size_t n)
{
	const char *kind = json_str2(j, "kind", NULL);
	if (!kind) {
		snprintf(msg, n, "missing \"kind\"");
		return false;
	}
	struct pending p;
	memset(&p, 0, sizeof p);
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (strcmp(kinds[i].name, kind) == 0)
			p.f.kind = kinds[i].k;
	if (p.f.kind == F_NONE) {
		snprintf(msg, n, "unknown fault kind \"%s\"", kind);
		return false;
	}
	cJSON *v = json_get2(j, "count", NULL);
	p.count = cJSON_IsNumber(v) ? (int)v->valuedouble : 1;
	const char *rd = json_str2(j, "retry_delay", "retryDelay");
	snprintf(p.f.retry_delay, sizeof p.f.retry_delay, "%s",
		 rd ? rd : p.f.kind == F_429_DAY ? "18073s" : "2s");
	v = json_get2(j, "delay_ms", NULL);
	p.f.delay_ms = cJSON_IsNumber(v) ? (int)v->valuedouble : 2000;
	v = json_get2(j, "status", NULL);
	p.f.status = cJSON_IsNumber(v) ? (int)v->valuedouble : 0;
	v = json_get2(j, "bytes", NULL);
	p.f.bytes = cJSON_IsNumber(v) && v->valuedouble > 0 ?
		(uint64_t)v->valuedouble : p.f.kind == F_BIG_TEXT ? 1ULL << 20 : 300ULL << 20;
	p.f.noise = cJSON_IsTrue(json_get2(j, "noise", NULL));
	const char *s = json_str2(j, "model", NULL);
	snprintf(p.f.model, sizeof p.f.model, "%s", s ? s : "");
	s = json_str2(j, "quota_id", "quotaId");
	snprintf(p.f.quota_id, sizeof p.f.quota_id, "%s", s ? s : "");
	s = json_str2(j, "location", NULL);
	snprintf(p.f.location, sizeof p.f.location, "%s",
		 s ? s : "https://moved.example/v1beta/interactions");
	if (p.f.kind == F_TRICKLE && !json_get2(j, "delay_ms", NULL))
		p.f.delay_ms = 5000;
	if (p.count < 1 || p.f.delay_ms < 0 ||
	    (p.f.status && (p.f.status < 100 || p.f.status > 599))) {
		snprintf(msg, n, "bad count, delay_ms or status");
		return false;
	}
	pthread_mutex_lock(&fault_mu);
	bool ok = n_queue < MAX_FAULTS;
	if (ok)
		queue[n_queue++] = p;
	pthread_mutex_unlock(&fault_mu);
	if (!ok)
		snprintf(msg, n, "too many pending faults");
	return ok;
}

struct fault fault_take(const char *model)
{
	struct fault f;
	memset(&f, 0, sizeof f);
	pthread_mutex_lock(&fault_mu);
	for (int i = 0; i < n_queue; i++) {
		/* a fault aimed at one model lets the others' requests pass it */
		if (queue[i].f.model[0] && (!model || strcmp(queue[i].f.model, model) != 0))
			continue;
		f = queue[i].f;
		if (--queue[i].count == 0) {
			memmove(queue + i, queue + i + 1, (size_t)(n_queue - i - 1) * sizeof queue[0]);
			n_queue--;
		}
		break;
	}
	pthread_mutex_unlock(&fault_mu);
	return f;
}

int fault_pending(void)
{
	pthread_mutex_lock(&fault_mu);
	int n = 0;
	for (int i = 0; i < n_queue; i++)
		n += queue[i].count;
	pthread_mutex_unlock(&fault_mu);
	return n;
}

void fault_clear(void)
{
	pthread_mutex_lock(&fault_mu);
	n_queue = 0;
	pthread_mutex_unlock(&fault_mu);
}

/* "2s" / "1.5s" -> whole seconds for Retry-After, rounded up. */
static long delay_seconds(const char *d)
{
	double s = strtod(d, NULL);
	return s > 0 ? (long)ceil(s) : 0;
}

static cJSON *quota_body(const struct fault *f, const char *model, int http,
			 const char *msg)
{
	const char *qid = f->quota_id[0] ? f->quota_id : f->kind == F_429_MINUTE ?
		"GenerateRequestsPerMinutePerProjectPerModel" :
		f->kind == F_429_DAY ? "GenerateRequestsPerDayPerProjectPerModel" :
		"GenerateRequestsPerDayPerProjectPerModel-FreeTier";
	const char *metric = f->kind == F_429_ZERO ?
		"generativelanguage.googleapis.com/generate_content_free_tier_requests" :
		"generativelanguage.googleapis.com/generate_requests_per_model";
	const char *val = f->kind == F_429_ZERO ? "0" :
		f->kind == F_429_DAY ? "250" : "20";

	cJSON *root = cJSON_CreateObject();
	cJSON *e = cJSON_AddObjectToObject(root, "error");
	cJSON_AddNumberToObject(e, "code", http);
	cJSON_AddStringToObject(e, "message", msg);
	cJSON_AddStringToObject(e, "status", "RESOURCE_EXHAUSTED");
	cJSON *det = cJSON_AddArrayToObject(e, "details");

	cJSON *help = cJSON_CreateObject();
	cJSON_AddStringToObject(help, "@type", "type.googleapis.com/google.rpc.Help");
	cJSON *links = cJSON_AddArrayToObject(help, "links");
	cJSON *l = cJSON_CreateObject();
	cJSON_AddStringToObject(l, "description", "Learn about Gemini API quotas");
	cJSON_AddStringToObject(l, "url", "https://ai.google.dev/gemini-api/docs/rate-limits");
	cJSON_AddItemToArray(links, l);
	cJSON_AddItemToArray(det, help);

	cJSON *qf = cJSON_CreateObject();
	cJSON_AddStringToObject(qf, "@type", "type.googleapis.com/google.rpc.QuotaFailure");
	cJSON *vs = cJSON_AddArrayToObject(qf, "violations");
	cJSON *v = cJSON_CreateObject();
	cJSON_AddStringToObject(v, "quotaMetric", metric);
	cJSON_AddStringToObject(v, "quotaId", qid);
	cJSON *dims = cJSON_AddObjectToObject(v, "quotaDimensions");
	cJSON_AddStringToObject(dims, "location", "global");
	if (!strstr(qid, "PerMinutePerProject") || strstr(qid, "PerModel"))
		cJSON_AddStringToObject(dims, "model", model ? model : "");
	cJSON_AddStringToObject(v, "quotaValue", val);
	cJSON_AddItemToArray(vs, v);
	cJSON_AddItemToArray(det, qf);

	cJSON *ri = cJSON_CreateObject();
	cJSON_AddStringToObject(ri, "@type", "type.googleapis.com/google.rpc.RetryInfo");
	cJSON_AddStringToObject(ri, "retryDelay", f->retry_delay);
	cJSON_AddItemToArray(det, ri);
	return root;
}

static const char html_502[] =
	"<!DOCTYPE html>\n<html lang=en>\n<meta charset=utf-8>\n"
	"<title>Error 502 (Server Error)!!1</title>\n"
	"<p><b>502.</b> <ins>That's an error.</ins>\n"
	"<p>The server encountered a temporary error and could not complete "
	"your request.<p>Please try again in 30 seconds.  <ins>That's all we "
	"know.</ins>\n";

bool fault_error_resp(const struct fault *f, enum flavor fl, const char *model,
		      struct emu_resp *r)
{
	struct emu_err e;
	switch (f->kind) {
	case F_429_MINUTE:
	case F_429_DAY:
	case F_429_ZERO: {
		int http = f->status ? f->status : 429;
		char msg[400];
		if (f->kind == F_429_ZERO)
			snprintf(msg, sizeof msg, "You exceeded your current quota, please check your plan and billing details. * Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0, model: %s. Please retry in %s.",
				 model ? model : "", f->retry_delay);
		else
			snprintf(msg, sizeof msg, "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. Please retry in %s.",
				 f->retry_delay);
		if (fl == FL_GOOGLE) {
			resp_json(r, http, quota_body(f, model, http, msg));
		} else {
			err_set(&e, http, "RESOURCE_EXHAUSTED",
				f->kind == F_429_MINUTE ? "rate_limit_exceeded" :
				"quota_exceeded", "%s", msg);
			if (fl == FL_OPENAI) {
				e.oai_type = f->kind == F_429_MINUTE ? "requests" :
					"insufficient_quota";
				if (f->kind != F_429_MINUTE)
					e.ia_code = "insufficient_quota";
			}
			resp_error(r, fl, &e);
		}
		if (f->kind == F_429_MINUTE)
			resp_header(r, "Retry-After", "%ld", delay_seconds(f->retry_delay));
		return true;
	}
	case F_ECHO_KEY:
		if (f->status == 200)
			return false;	/* the route answers with text quoting the key */
		err_set(&e, 400, "INVALID_ARGUMENT", "invalid_request",
			"Invalid argument in the request. Echo: x-goog-api-key: %s; "
			"Authorization: Bearer %s; url ?key=%s; the key %s is fine.",
			emu_opt.key, emu_opt.key, emu_opt.key, emu_opt.key);
		if (f->status)
			e.http = f->status;
		resp_error(r, fl, &e);
		resp_header(r, "x-request-id", "req-%s", emu_opt.key);
		return true;
	case F_REDIRECT:
		resp_text(r, f->status ? f->status : 302, "text/html; charset=UTF-8",
			  "<html><body>Moved</body></html>\n");
		resp_header(r, "Location", "%s", f->location);
		return true;
	case F_401:
		err_set(&e, 401, "UNAUTHENTICATED", "authentication",
			"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.");
		if (fl == FL_OPENAI)
			e.ia_code = "invalid_api_key";
		break;
	case F_402:
		err_set(&e, 402, "RESOURCE_EXHAUSTED", "payment_required",
			"Your prepaid credits are depleted. Please purchase more credits in AI Studio.");
		break;
	case F_403:
		err_set(&e, 403, "PERMISSION_DENIED", "permission_denied",
			"The caller does not have permission");
		break;
	case F_500:
		err_set(&e, 500, "INTERNAL", "api_error",
			"An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting");
		break;
	case F_502:
		resp_text(r, f->status ? f->status : 502, "text/html; charset=UTF-8",
			  html_502);
		return true;
	case F_503:
		err_set(&e, 503, "UNAVAILABLE", "service_unavailable",
			"The model is overloaded. Please try again later.");
		break;
	case F_504:
		err_set(&e, 504, "DEADLINE_EXCEEDED", "deadline_exceeded",
			"Deadline expired before operation could complete.");
		break;
	default:
		return false;
	}
	if (f->status)
		e.http = f->status;
	resp_error(r, fl, &e);
	return true;
}

bool fault_transport(const struct fault *f, struct emu_resp *r)
{
	if (f->kind == F_TRICKLE) {
		r->stream = RS_TRICKLE;	/* the route fills the body; http.c trickles it */
		r->trickle_ms = f->delay_ms;
		return false;
	}
	if (f->kind != F_HUGE)
		return false;
	resp_take(r, f->status ? f->status : 200,
		  "application/json; charset=UTF-8", NULL, 0);
	r->stream = RS_HUGE;
	r->stream_bytes = f->bytes;
	return true;
}

void fault_break_json(struct emu_resp *r)
{
	/* keep the first half: a syntactically unfinished JSON document */
	if (r->body && r->len > 2) {
		r->len /= 2;
		r->body[r->len] = '\0';
	}
}
