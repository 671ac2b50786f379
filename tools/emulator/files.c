/* Files API: resumable upload, metadata, download (gemini-wire.md 3.2, 3.4).
 * Files live in memory until reset; batch results are stored here too. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

struct efile {
	struct efile *next;
	char id[80];            /* without the "files/" prefix */
	char display[128];
	char mime[64];
	struct buf data;
	double created;         /* wall clock */
	bool final;             /* upload finished */
	bool generated;         /* written by a batch, not uploaded */
};

static pthread_mutex_t files_mu = PTHREAD_MUTEX_INITIALIZER;
static struct efile *files_head;    /* protected by files_mu */

static const char *bare_id(const char *id)
{
	return strncmp(id, "files/", 6) == 0 ? id + 6 : id;
}

/* Caller holds files_mu. */
static struct efile *find_locked(const char *id)
{
	id = bare_id(id);
	for (struct efile *f = files_head; f; f = f->next)
		if (!strcmp(f->id, id))
			return f;
	return NULL;
}

/* Caller holds files_mu. */
static cJSON *file_json_locked(const struct efile *f, const char *base,
			       const char *ver)
{
	cJSON *o = cJSON_CreateObject();
	char s[512];
	snprintf(s, sizeof s, "files/%s", f->id);
	cJSON_AddStringToObject(o, "name", s);
	cJSON_AddStringToObject(o, "displayName", f->display);
	cJSON_AddStringToObject(o, "mimeType", f->mime);
	snprintf(s, sizeof s, "%zu", f->data.len);
	cJSON_AddStringToObject(o, "sizeBytes", s);
	util_rfc3339(s, sizeof s, f->created);
	cJSON_AddStringToObject(o, "createTime", s);
	cJSON_AddStringToObject(o, "updateTime", s);
	util_rfc3339(s, sizeof s, f->created + 48 * 3600);
	cJSON_AddStringToObject(o, "expirationTime", s);
	char hex[65];
	sha256_hex(f->data.data ? f->data.data : "", f->data.len, hex);
	cJSON_AddStringToObject(o, "sha256Hash", hex);
	snprintf(s, sizeof s, "%s/%s/files/%s", base, ver, f->id);
	cJSON_AddStringToObject(o, "uri", s);
	cJSON_AddStringToObject(o, "state", f->final ? "ACTIVE" : "PROCESSING");
	cJSON_AddStringToObject(o, "source", f->generated ? "GENERATED" : "UPLOADED");
	return o;
}

static void not_found(struct emu_resp *r, const char *id)
{
	struct emu_err e;
	err_set(&e, 404, "NOT_FOUND", "not_found",
		"Requested entity was not found. (files/%s)", bare_id(id));
	resp_error(r, FL_GOOGLE, &e);
}

static struct efile *new_file(const char *id, const char *display,
			      const char *mime)
{
	struct efile *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	snprintf(f->id, sizeof f->id, "%s", id);
	snprintf(f->display, sizeof f->display, "%s", display ? display : "");
	snprintf(f->mime, sizeof f->mime, "%s", mime ? mime : "application/octet-stream");
	f->created = util_now();
	return f;
}

bool files_put(const char *id, const char *display, const char *mime,
	       const char *data, size_t len)
{
	struct efile *f = new_file(bare_id(id), display, mime);
	if (!f)
		return false;
	buf_add(&f->data, data, len);
	f->final = true;
	f->generated = true;
	pthread_mutex_lock(&files_mu);
	f->next = files_head;
	files_head = f;
	pthread_mutex_unlock(&files_mu);
	return !f->data.oom;
}

char *files_copy(const char *id, size_t *len)
{
	char *out = NULL;
	pthread_mutex_lock(&files_mu);
	struct efile *f = find_locked(id);
	if (f && f->final && (out = malloc(f->data.len + 1)) != NULL) {
		memcpy(out, f->data.data ? f->data.data : "", f->data.len);
		out[f->data.len] = '\0';
		*len = f->data.len;
	}
	pthread_mutex_unlock(&files_mu);
	return out;
}

static void upload_start(const struct emu_req *q, struct emu_resp *r)
{
	const char *display = NULL;
	cJSON *j = cJSON_ParseWithLength(q->body, q->body_len);
	cJSON *fj = json_get2(j, "file", NULL);
	display = json_str2(fj, "display_name", "displayName");
	const char *mime = http_header(q, "X-Goog-Upload-Header-Content-Type");
	char id[13];
	util_id(id, sizeof id);
	struct efile *f = new_file(id, display, mime);
	cJSON_Delete(j);
	if (!f) {
		resp_text(r, 500, "text/plain", "out of memory\n");
		return;
	}
	pthread_mutex_lock(&files_mu);
	f->next = files_head;
	files_head = f;
	pthread_mutex_unlock(&files_mu);
	resp_text(r, 200, "text/plain", "");
	resp_header(r, "x-goog-upload-url",
		    "%s/upload/%s/files?upload_id=%s&upload_protocol=resumable",
		    q->base, q->ver, id);
	resp_header(r, "x-goog-upload-status", "active");
	resp_header(r, "x-goog-upload-chunk-granularity", "8388608");
}

void files_upload(const struct emu_req *q, struct emu_resp *r)
{
	const char *cmd = http_header(q, "X-Goog-Upload-Command");
	const char *uid = http_query(q, "upload_id");
	struct emu_err e;
	if (!uid) {
		if (!http_check_auth(q, FL_GOOGLE, r))
			return;
		if (!cmd || !strstr(cmd, "start")) {
			err_set(&e, 400, "INVALID_ARGUMENT", "invalid_request",
				"Only resumable uploads are supported (X-Goog-Upload-Command: start).");
			resp_error(r, FL_GOOGLE, &e);
			return;
		}
		upload_start(q, r);
		return;
	}
	/* the upload URL itself is the credential, as with Google's */
	const char *offs = http_header(q, "X-Goog-Upload-Offset");
	bool finalize = cmd && strstr(cmd, "finalize");
	pthread_mutex_lock(&files_mu);
	struct efile *f = find_locked(uid);
	if (!f || f->final) {
		pthread_mutex_unlock(&files_mu);
		not_found(r, uid);
		return;
	}
	if (offs && strtoull(offs, NULL, 10) != f->data.len) {
		size_t have = f->data.len;
		pthread_mutex_unlock(&files_mu);
		err_set(&e, 400, "INVALID_ARGUMENT", "invalid_request",
			"Upload offset %s does not match the %zu bytes received.", offs, have);
		resp_error(r, FL_GOOGLE, &e);
		return;
	}
	buf_add(&f->data, q->body, q->body_len);
	if (!finalize) {
		pthread_mutex_unlock(&files_mu);
		resp_text(r, 200, "text/plain", "");
		resp_header(r, "x-goog-upload-status", "active");
		return;
	}
	f->final = true;
	cJSON *root = cJSON_CreateObject();
	cJSON_AddItemToObject(root, "file", file_json_locked(f, q->base, q->ver));
	pthread_mutex_unlock(&files_mu);
	resp_json(r, 200, root);
	resp_header(r, "x-goog-upload-status", "final");
}

void files_get(const struct emu_req *q, const char *id, struct emu_resp *r)
{
	if (!http_check_auth(q, FL_GOOGLE, r))
		return;
	pthread_mutex_lock(&files_mu);
	struct efile *f = find_locked(id);
	cJSON *j = f ? file_json_locked(f, q->base, q->ver) : NULL;
	pthread_mutex_unlock(&files_mu);
	if (!j)
		return not_found(r, id);
	resp_json(r, 200, j);
}

void files_download(const struct emu_req *q, const char *id,
		    struct emu_resp *r)
{
	if (!http_check_auth(q, FL_GOOGLE, r))
		return;
	size_t len = 0;
	char *data = files_copy(id, &len);
	if (!data)
		return not_found(r, id);
	const char *alt = http_query(q, "alt");
	if (alt && strcmp(alt, "media") != 0) {
		free(data);
		return files_get(q, id, r);
	}
	resp_take(r, 200, "application/octet-stream", data, len);
}

void files_reset(void)
{
	pthread_mutex_lock(&files_mu);
	while (files_head) {
		struct efile *f = files_head;
		files_head = f->next;
		buf_free(&f->data);
		free(f);
	}
	pthread_mutex_unlock(&files_mu);
}
