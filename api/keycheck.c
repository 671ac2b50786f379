/*
 * keycheck.c - see keycheck.h.  The answer is classified the way
 * DESIGN.md's troubleshooting table reads: key, permission, quota,
 * capacity, or a wrong endpoint setting.
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/keycheck.h"
#include "api/redact.h"

/* Error details of a Google error body: status and the ErrorInfo reason. */
static void error_reason(const char *body, char *status, size_t slen, char *reason, size_t rlen)
{
	cJSON *j = cJSON_Parse(body ? body : "");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "status");
	const cJSON *det = cJSON_GetObjectItemCaseSensitive(e, "details"), *d;

	status[0] = reason[0] = '\0';
	if (cJSON_IsString(s))
		snprintf(status, slen, "%s", s->valuestring);
	cJSON_ArrayForEach(d, det) {
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(d, "reason");

		if (cJSON_IsString(r)) {
			snprintf(reason, rlen, "%s", r->valuestring);
			break;
		}
	}
	cJSON_Delete(j);
}

static void fail(struct key_check *out, const char *next, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct key_check *out, const char *next, const char *fmt, ...)
{
	va_list ap;

	out->ok = false;
	snprintf(out->next, sizeof(out->next), "%s", next);
	va_start(ap, fmt);
	vsnprintf(out->what, sizeof(out->what), fmt, ap);
	va_end(ap);
}

void api_key_check(const struct http_opts *o, const struct api_endpoint *ep, const char *model,
		   struct key_check *out)
{
	struct http_req rq = { .method = "GET" };
	struct http_resp rs = { 0 };
	char errbuf[256], status[64], reason[64];
	const char *base = ep->base_url ? ep->base_url : "";
	enum http_fail f;

	memset(out, 0, sizeof(*out));
	if (!http_url_allowed(base)) {
		fail(out, "use https://, or http:// only for a loopback address", "endpoint %s is refused", base);
		return;
	}
	if (ep->api_key == NULL || ep->api_key[0] == '\0') {
		fail(out, "set a key (GEMINI_API_KEY, api_key_file or api_key_command) and mount again",
		     "endpoint %s not checked: no API key", base);
		return;
	}
	if (asprintf(&rq.url, "%s/%s/models/%s", base, ep->api_version ? ep->api_version : "v1beta", model) < 0 ||
	    asprintf(&rq.headers[0], ep->bearer ? "Authorization: Bearer %s" : "x-goog-api-key: %s",
		     ep->api_key) < 0) {
		http_req_free(&rq);
		fail(out, "", "out of memory");
		return;
	}
	f = http_perform(o, &rq, &rs, errbuf, sizeof(errbuf));
	error_reason(rs.body, status, sizeof(status), reason, sizeof(reason));
	if (f != HTTP_OK)
		fail(out, "check the network, a proxy, or the endpoint setting",
		     "endpoint %s unreachable: %s", base, errbuf);
	else if (rs.status == 200) {
		out->ok = true;
		snprintf(out->what, sizeof(out->what), "endpoint %s reachable, key accepted (models.get %s)",
			 base, model);
	} else if (rs.status == 401 || (rs.status == 400 && strcmp(reason, "API_KEY_INVALID") == 0))
		fail(out, "create a new key in Google AI Studio (or migrate it), set it and mount again",
		     "key rejected by %s (HTTP %ld%s%s)", base, rs.status, reason[0] ? " " : "", reason);
	else if (rs.status == 403)
		fail(out, "check the key's project, its API restrictions and that the Generative Language API is enabled",
		     "permission denied by %s (HTTP 403%s%s)", base, status[0] ? " " : "", status);
	else if (rs.status == 429)
		fail(out, "wait for the quota to reset, or raise it; lower max_inflight and rpm",
		     "quota exhausted at %s (HTTP 429%s%s)", base, status[0] ? " " : "", status);
	else if (rs.status >= 500)
		fail(out, "try again later; the service or gateway is overloaded",
		     "%s answered HTTP %ld%s%s", base, rs.status, status[0] ? " " : "", status);
	else
		fail(out, "check endpoint, api_version and the model id in the config",
		     "%s answered HTTP %ld%s%s%s%s for models/%s", base, rs.status, status[0] ? " " : "", status,
		     reason[0] ? " " : "", reason, model);
	/* The status and reason are the server's words: a hostile one may quote the key. */
	const char *keys[] = { ep->api_key, NULL };
	redact_buf(out->what, sizeof(out->what), keys);
	http_req_free(&rq);
	http_resp_free(&rs);
}
