/*
 * errors.c - non-2xx answers: parse every error body shape the API sends,
 * then say whose problem it is and what to do next (DESIGN.md section 1).
 */
#include "api/errors.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cJSON.h>

#define NONJSON_KEEP 200	/* characters of a non-JSON body kept as the message */

double errors_parse_duration(const char *s)
{
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	double v = strtod(s, &end);
	if (end == s || *end != 's' || end[1] != '\0' || !isfinite(v) || v < 0)
		return -1;
	return v;
}

static void copy_str(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* quotaValue is an int64 as a JSON string ("20"), sometimes a number. */
static long json_long(const cJSON *v)
{
	if (cJSON_IsNumber(v))	/* out of range would be UB to convert */
		return v->valuedouble > -9.2e18 && v->valuedouble < 9.2e18 ? (long)v->valuedouble : -1;
	if (cJSON_IsString(v) && v->valuestring[0]) {
		char *end;
		long n = strtol(v->valuestring, &end, 10);
		return *end == '\0' ? n : -1;
	}
	return -1;
}

static void parse_quota(const cJSON *detail, struct gen_result *res)
{
	const cJSON *viol = cJSON_GetObjectItemCaseSensitive(detail, "violations");
	const cJSON *v;
	bool have = false;

	cJSON_ArrayForEach(v, viol) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(v, "quotaId");
		if (!cJSON_IsString(id))
			id = cJSON_GetObjectItemCaseSensitive(v, "quota_id");
		const cJSON *qv = cJSON_GetObjectItemCaseSensitive(v, "quotaValue");
		if (!qv)
			qv = cJSON_GetObjectItemCaseSensitive(v, "quota_value");
		bool daily = cJSON_IsString(id) && strstr(id->valuestring, "PerDay");
		/* the daily violation decides whether retrying can help: prefer it */
		if (!have || daily) {
			copy_str(res->quota_id, sizeof(res->quota_id),
				 cJSON_IsString(id) ? id->valuestring : "");
			res->quota_value = json_long(qv);
			have = true;
		}
		if (json_long(qv) == 0)	/* any zero-limit violation: no quota at all */
			res->quota_value = 0;
	}
}

/* Returns the ErrorInfo reason (borrowed from the JSON tree) or NULL. */
static const char *parse_details(const cJSON *details, struct gen_result *res)
{
	const cJSON *d;
	const char *reason = NULL;

	cJSON_ArrayForEach(d, details) {
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(d, "@type");
		if (!cJSON_IsString(type))
			continue;
		if (ends_with(type->valuestring, "google.rpc.RetryInfo")) {
			const cJSON *rd = cJSON_GetObjectItemCaseSensitive(d, "retryDelay");
			double s = cJSON_IsString(rd) ? errors_parse_duration(rd->valuestring) : -1;
			if (s >= 0)
				res->retry_after_s = s;
		} else if (ends_with(type->valuestring, "google.rpc.QuotaFailure")) {
			parse_quota(d, res);
		} else if (ends_with(type->valuestring, "google.rpc.ErrorInfo")) {
			const cJSON *r = cJSON_GetObjectItemCaseSensitive(d, "reason");
			if (cJSON_IsString(r))
				reason = r->valuestring;
		}
	}
	return reason;
}

/* A readable excerpt of a non-JSON body (an HTML 502 page, a proxy's text). */
static char *body_excerpt(const char *body, size_t len)
{
	size_t n = len < NONJSON_KEEP ? len : NONJSON_KEEP;
	char *m = malloc(n + 1);
	if (!m)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)body[i];
		m[i] = (c < 32 || c == 127) ? ' ' : (char)c;
	}
	m[n] = '\0';
	return m;
}

void errors_parse(const struct http_resp *resp, struct gen_result *res)
{
	const char *reason = NULL;
	cJSON *root = NULL;

	res->http_status = resp->status;
	res->api_status[0] = '\0';
	res->quota_id[0] = '\0';
	res->quota_value = -1;
	res->retry_after_s = -1;
	if (resp->request_id[0])
		copy_str(res->request_id, sizeof(res->request_id), resp->request_id);
	free(res->message);
	res->message = NULL;

	if (resp->body && resp->len)
		root = cJSON_ParseWithLength(resp->body, resp->len);
	const cJSON *obj = root;
	if (cJSON_IsArray(obj))	/* streaming and gateway errors come wrapped */
		obj = cJSON_GetArrayItem(obj, 0);
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(obj, "error");

	if (cJSON_IsObject(err)) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
		const cJSON *status = cJSON_GetObjectItemCaseSensitive(err, "status");
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
		if (cJSON_IsString(status))
			copy_str(res->api_status, sizeof(res->api_status), status->valuestring);
		else if (cJSON_IsString(code))	/* Interactions: "rate_limit_exceeded" */
			copy_str(res->api_status, sizeof(res->api_status), code->valuestring);
		else if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err, "type")))	/* OpenAI */
			copy_str(res->api_status, sizeof(res->api_status),
				 cJSON_GetObjectItemCaseSensitive(err, "type")->valuestring);
		if (cJSON_IsString(msg))
			res->message = strdup(msg->valuestring);
		reason = parse_details(cJSON_GetObjectItemCaseSensitive(err, "details"), res);
	} else if (cJSON_IsString(err)) {	/* {"error":"text"} from some gateways */
		res->message = strdup(err->valuestring);
	} else if (resp->body && resp->len) {
		res->message = body_excerpt(resp->body, resp->len);
	}
	if (!res->message) {
		char buf[96];
		snprintf(buf, sizeof(buf), "HTTP %ld with %s", resp->status,
			 resp->len ? "an unreadable error body" : "an empty body");
		res->message = strdup(buf);
	}
	if (res->retry_after_s < 0 && resp->retry_after_s >= 0)
		res->retry_after_s = resp->retry_after_s;
	if (resp->status >= 300 && resp->status < 400) {
		/* redirects are never followed (the key would go to a second host) */
		char buf[700];
		snprintf(buf, sizeof(buf), "the endpoint redirected (HTTP %ld) to %s", resp->status,
			 resp->location[0] ? resp->location : "no Location given");
		free(res->message);
		res->message = strdup(buf);
	}

	res->cls = errors_classify(res);
	/* ErrorInfo reason is not kept in res; it decides credential errors here */
	if (reason && (strcmp(reason, "API_KEY_INVALID") == 0 ||
		       strcmp(reason, "API_KEY_EXPIRED") == 0) && res->http_status >= 400 &&
	    res->http_status < 500)
		res->cls = ERR_CREDENTIALS;
	cJSON_Delete(root);
}

static bool status_is(const struct gen_result *res, const char *s)
{
	return strcasecmp(res->api_status, s) == 0;
}

enum err_class errors_classify(const struct gen_result *res)
{
	long st = res->http_status;
	const char *msg = res->message ? res->message : "";

	if (st == 0)
		return ERR_NETWORK;
	if (st >= 200 && st < 300)
		return res->cls;
	if (status_is(res, "authentication") || st == 401)
		return ERR_CREDENTIALS;
	if (st == 400 && strstr(msg, "API key") &&
	    (strstr(msg, "not valid") || strstr(msg, "expired") || strstr(msg, "invalid")))
		return ERR_CREDENTIALS;
	if (st == 400 && status_is(res, "FAILED_PRECONDITION"))
		return ERR_BILLING;	/* billing not enabled, free tier not in this region */
	if (st == 402 || status_is(res, "payment_required"))
		return ERR_BILLING;
	if (st == 403)
		return ERR_PERMISSION;
	if (st == 429) {
		if (res->quota_value == 0)
			return ERR_QUOTA_ZERO;
		if (strstr(res->quota_id, "PerDay") || status_is(res, "quota_exceeded"))
			return ERR_QUOTA_DAY;
		return ERR_QUOTA_MINUTE;
	}
	if (st == 408)
		return ERR_CAPACITY;	/* the server gave up waiting: resend like a 504 */
	if (st >= 400 && st < 500)
		return ERR_REQUEST;
	if (st == 501)
		return ERR_REQUEST;	/* unimplemented: resending cannot help */
	if (st >= 500 && st < 600)
		return ERR_CAPACITY;
	if (st >= 300 && st < 400)
		return ERR_ENDPOINT;	/* redirects are off: the endpoint setting is wrong */
	return ERR_REQUEST;
}

const char *errors_whose(enum err_class c)
{
	switch (c) {
	case ERR_NONE: return "nobody";
	case ERR_CREDENTIALS: return "credentials";
	case ERR_PERMISSION: return "project or policy";
	case ERR_QUOTA_MINUTE: return "quota and traffic shape";
	case ERR_QUOTA_DAY: return "quota or billing";
	case ERR_QUOTA_ZERO: return "quota or billing";
	case ERR_BILLING: return "quota or billing";
	case ERR_REQUEST: return "request";
	case ERR_SAFETY: return "request or safety";
	case ERR_NO_IMAGE: return "request or safety";
	case ERR_CAPACITY: return "capacity or gateway";
	case ERR_NETWORK: return "network";
	case ERR_MALFORMED: return "server answer";
	case ERR_ENDPOINT: return "endpoint (configuration)";
	case ERR_STORE: return "this machine (the store's disk)";
	default: return "unknown";
	}
}

const char *errors_next_move(enum err_class c)
{
	switch (c) {
	case ERR_NONE:
		return "nothing to do";
	case ERR_CREDENTIALS:
		return "create or migrate the key, then retry the same request";
	case ERR_PERMISSION:
		return "check the project, its billing and policy, and file access; "
		       "this is not a quota problem";
	case ERR_QUOTA_MINUTE:
		return "wait as told, lower max_inflight/rpm, or use route: batch";
	case ERR_QUOTA_DAY:
		return "stop retrying; raise the quota or wait for the daily reset";
	case ERR_BILLING:
		return "the project's prepaid credit is used up (or billing is off): add credit or turn "
		       "billing on; it does not reset daily, so retrying will not help";
	case ERR_QUOTA_ZERO:
		return "this project has no quota for this model (free tier or billing off): "
		       "enable billing";
	case ERR_REQUEST:
		return "fix the request (model, size, aspect, options); resending it unchanged "
		       "will fail again";
	case ERR_SAFETY:
	case ERR_NO_IMAGE:
		return "rephrase the prompt; nothing was billed twice";
	case ERR_CAPACITY:
		return "retried with back-off, then given up; later, 'bananactl run PATH' sends it again "
		       "(a new, ledgered request), or set fallback_model, or use another route";
	case ERR_NETWORK:
		return "check the network and the endpoint, then retry";
	case ERR_MALFORMED:
		return "the server's answer was not a valid image; retry later";
	case ERR_ENDPOINT:
		return "set endpoint (or gateway_url) to the address the redirect names, if you trust "
		       "it; bananafs never follows redirects, so the key is never sent to a second host";
	case ERR_STORE:
		return "free space in the store (or make it writable); the image was paid for and is "
		       "kept in memory: it is stored and published without a new request as soon as "
		       "the store has room or the prompt is saved again (not after an unmount)";
	default:
		return "unknown";
	}
}
