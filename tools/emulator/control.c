/* The loopback-only control endpoint under /_emulator/: counters, the
 * request log, reset, scripted faults, and images served for "url" answers. */
#include <stdio.h>
#include <string.h>

#include "emu.h"

static void ctl_error(struct emu_resp *r, int status, const char *msg)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "error", msg);
	resp_json(r, status, j);
}

void ctl_handle(const struct emu_req *q, struct emu_resp *r)
{
	const char *what = q->path + strlen("/_emulator/");
	bool get = !strcmp(q->method, "GET"), post = !strcmp(q->method, "POST");

	if (!q->loopback)
		return ctl_error(r, 403, "the control endpoint is loopback-only");
	if (get && !strcmp(what, "stats"))
		return resp_json(r, 200, bill_stats_json());
	if (get && !strcmp(what, "requests"))
		return resp_json(r, 200, bill_requests_json());
	if (post && !strcmp(what, "reset")) {
		bill_reset();
		fault_clear();
		ia_reset();
		cJSON *j = cJSON_CreateObject();
		cJSON_AddBoolToObject(j, "ok", 1);
		return resp_json(r, 200, j);
	}
	if (post && !strcmp(what, "fault")) {
		cJSON *j = cJSON_ParseWithLength(q->body, q->body_len);
		char msg[200];
		bool ok = cJSON_IsObject(j) && fault_add_json(j, msg, sizeof msg);
		if (!cJSON_IsObject(j))
			snprintf(msg, sizeof msg, "body must be a JSON object");
		cJSON_Delete(j);
		if (!ok)
			return ctl_error(r, 400, msg);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "ok", 1);
		cJSON_AddNumberToObject(o, "faults_pending", fault_pending());
		return resp_json(r, 200, o);
	}
	if (get && !strncmp(what, "images/", 7))
		return oai_image_get(q, what + 7, r);
	ctl_error(r, 404, "unknown control endpoint");
}
