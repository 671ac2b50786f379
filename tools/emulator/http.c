/* HTTP side: libmicrohttpd callbacks, request bodies (JSON or multipart),
 * the API key check, routing, and sending answers (incl. streamed faults). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "emu.h"

#define BODY_MAX (512u << 20)   /* refuse bigger uploads */
#define MAX_PARTS 32

struct conn_ctx {
	struct buf body;
	struct MHD_PostProcessor *pp;   /* multipart/form-data only */
	struct form_part parts[MAX_PARTS];
	int nparts;
	bool too_big;
};

static struct MHD_Daemon *daemon_;

/* ---- request accessors ----------------------------------------------------- */

const char *http_header(const struct emu_req *q, const char *name)
{
	return MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, name);
}

const char *http_query(const struct emu_req *q, const char *name)
{
	return MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, name);
}

static bool peer_is_loopback(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ci || !ci->client_addr)
		return false;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
		       in6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}

/* ---- auth ---------------------------------------------------------------- */

static void find_key(struct emu_req *q)
{
	const char *k = http_header(q, "x-goog-api-key");
	const char *a = http_header(q, "Authorization");
	q->auth = AUTH_NONE;
	q->key_ok = false;
	if (k) {
		q->auth = AUTH_KEY;
	} else if (a && strncasecmp(a, "Bearer ", 7) == 0) {
		q->auth = AUTH_BEARER;
		k = a + 7;
	} else if ((k = http_query(q, "key")) != NULL) {
		q->auth = AUTH_KEY;
	}
	if (k)
		q->key_ok = strcmp(k, emu_opt.key) == 0;
}

static cJSON *bad_key_body(void)
{
	static const char msg[] = "API key not valid. Please pass a valid API key.";
	cJSON *root = cJSON_CreateObject();
	cJSON *e = cJSON_AddObjectToObject(root, "error");
	cJSON_AddNumberToObject(e, "code", 400);
	cJSON_AddStringToObject(e, "message", msg);
	cJSON_AddStringToObject(e, "status", "INVALID_ARGUMENT");
	cJSON *det = cJSON_AddArrayToObject(e, "details");
	cJSON *ei = cJSON_CreateObject();
	cJSON_AddStringToObject(ei, "@type", "type.googleapis.com/google.rpc.ErrorInfo");
	cJSON_AddStringToObject(ei, "reason", "API_KEY_INVALID");
	cJSON_AddStringToObject(ei, "domain", "googleapis.com");
	cJSON *md = cJSON_AddObjectToObject(ei, "metadata");
	cJSON_AddStringToObject(md, "service", "generativelanguage.googleapis.com");
	cJSON_AddItemToArray(det, ei);
	cJSON *lm = cJSON_CreateObject();
	cJSON_AddStringToObject(lm, "@type", "type.googleapis.com/google.rpc.LocalizedMessage");
	cJSON_AddStringToObject(lm, "locale", "en-US");
	cJSON_AddStringToObject(lm, "message", msg);
	cJSON_AddItemToArray(det, lm);
	return root;
}

bool http_check_auth(const struct emu_req *q, enum flavor fl,
		     struct emu_resp *r)
{
	if (q->key_ok)
		return true;
	struct emu_err e;
	if (fl == FL_OPENAI) {
		if (q->auth == AUTH_NONE)
			err_set(&e, 401, "UNAUTHENTICATED", NULL,
				"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).");
		else
			err_set(&e, 401, "UNAUTHENTICATED", "invalid_api_key",
				"Incorrect API key provided. You can find your API key in your account settings.");
		resp_error(r, FL_OPENAI, &e);
		return false;
	}
	if (q->auth == AUTH_NONE) {
		/* the key check happens in Google's front end: always rpc-shaped */
		err_set(&e, 403, "PERMISSION_DENIED", NULL,
			"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.");
		resp_error(r, FL_GOOGLE, &e);
		return false;
	}
	cJSON *body = bad_key_body();
	if (fl == FL_IA) {
		/* the API gateway in front of /interactions wraps it in an array */
		cJSON *arr = cJSON_CreateArray();
		cJSON_AddItemToArray(arr, body);
		body = arr;
	}
	resp_json(r, 400, body);
	return false;
}

/* ---- routing ----------------------------------------------------------------- */

static void not_found(struct emu_resp *r, const struct emu_req *q)
{
	struct emu_err e;
	err_set(&e, 404, "NOT_FOUND", "not_found",
		"Method not found: %s %s", q->method, q->path);
	resp_error(r, FL_GOOGLE, &e);
}

static bool is(const struct emu_req *q, const char *m)
{
	return strcmp(q->method, m) == 0;
}

/* "name:verb" -> copies name into out, returns verb ("" if none). */
static const char *split_verb(const char *s, char *out, size_t n)
{
	const char *colon = strrchr(s, ':');
	size_t len = colon ? (size_t)(colon - s) : strlen(s);
	if (len >= n)
		len = n - 1;
	memcpy(out, s, len);
	out[len] = '\0';
	return colon ? colon + 1 : "";
}

static void route_api(struct emu_req *q, struct emu_resp *r)
{
	const char *rest = q->rest;
	char name[256];

	if (!strcmp(rest, "interactions") && is(q, "POST"))
		return ia_create(q, r);
	if (!strncmp(rest, "interactions/", 13)) {
		/* interactions/{id} and interactions/{id}/cancel: a slash, not a colon verb */
		const char *id = rest + 13, *slash = strchr(id, '/');
		size_t len = slash ? (size_t)(slash - id) : strlen(id);
		if (len > 0 && len < sizeof name) {
			memcpy(name, id, len);
			name[len] = '\0';
			if (!slash && is(q, "GET"))
				return ia_get(q, name, r);
			if (!slash && is(q, "DELETE"))
				return ia_delete(q, name, r);
			if (slash && !strcmp(slash, "/cancel") && is(q, "POST"))
				return ia_cancel(q, name, r);
		}
	}
	if (!strcmp(rest, "models") && is(q, "GET"))
		return gc_models_list(q, r);
	if (!strncmp(rest, "models/", 7)) {
		const char *verb = split_verb(rest + 7, name, sizeof name);
		if (!*verb && is(q, "GET"))
			return gc_models_get(q, name, r);
		if (!strcmp(verb, "generateContent") && is(q, "POST"))
			return gc_generate(q, name, r);
		if (!strcmp(verb, "batchGenerateContent") && is(q, "POST"))
			return batch_create(q, name, r);
	}
	if (!strcmp(rest, "batches") && is(q, "GET"))
		return batch_list(q, r);
	if (!strncmp(rest, "batches/", 8)) {
		const char *verb = split_verb(rest + 8, name, sizeof name);
		if (!*verb && is(q, "GET"))
			return batch_get(q, name, r);
		if (!*verb && is(q, "DELETE"))
			return batch_delete(q, name, r);
		if (!strcmp(verb, "cancel") && is(q, "POST"))
			return batch_cancel(q, name, r);
	}
	if (!strncmp(rest, "files/", 6) && is(q, "GET")) {
		const char *verb = split_verb(rest + 6, name, sizeof name);
		if (!*verb)
			return files_get(q, name, r);
		if (!strcmp(verb, "download"))
			return files_download(q, name, r);
	}
	if (!strcmp(rest, "images/generations") && is(q, "POST"))
		return oai_images_generate(q, r);
	if (!strcmp(rest, "images/edits") && is(q, "POST"))
		return oai_images_edit(q, r);
	if (!strcmp(rest, "chat/completions") && is(q, "POST"))
		return oai_chat(q, r);
	not_found(r, q);
}

/* Sets q->ver/q->rest when path is "<prefix>/{v1beta|v1}/rest". */
static bool match_ver(struct emu_req *q, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (strncmp(q->path, prefix, pl) != 0)
		return false;
	const char *p = q->path + pl;
	if (!strncmp(p, "/v1beta/", 8)) {
		q->ver = "v1beta";
		q->rest = p + 8;
		return true;
	}
	if (!strncmp(p, "/v1/", 4)) {
		q->ver = "v1";
		q->rest = p + 4;
		return true;
	}
	return false;
}

static void route(struct emu_req *q, struct emu_resp *r)
{
	if (!strncmp(q->path, "/_emulator/", 11))
		return ctl_handle(q, r);
	/* The GET, cancel and DELETE of a background interaction are free follow-ups of one
	 * request: counted per endpoint only, so "requests" stays what could cost money. */
	if (!strstr(q->path, "/interactions/"))
		bill_count_request();
	char name[256];
	if (match_ver(q, "/upload")) {
		if (!strncmp(q->rest, "files", 5) && is(q, "POST"))
			return files_upload(q, r);
	} else if (match_ver(q, "/download")) {
		if (!strncmp(q->rest, "files/", 6) && is(q, "GET")) {
			split_verb(q->rest + 6, name, sizeof name);
			return files_download(q, name, r);
		}
	} else if (match_ver(q, "")) {
		return route_api(q, r);
	}
	not_found(r, q);
}

/* ---- streamed answers (huge-body and drop faults) --------------------------- */

static const char huge_prefix[] =
	"{\"candidates\":[{\"content\":{\"parts\":[{\"inlineData\":"
	"{\"mimeType\":\"image/png\",\"data\":\"";

static ssize_t huge_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	(void)cls;
	size_t pl = sizeof huge_prefix - 1;
	for (size_t i = 0; i < max; i++)
		out[i] = pos + i < pl ? huge_prefix[pos + i] : 'A';
	return (ssize_t)max;
}

struct drop_state {
	char *body;
	size_t len;
};

static ssize_t drop_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct drop_state *d = cls;
	size_t half = d->len / 2;
	if (pos >= half)
		return MHD_CONTENT_READER_END_WITH_ERROR;   /* connection cut */
	size_t n = half - (size_t)pos < max ? half - (size_t)pos : max;
	memcpy(out, d->body + pos, n);
	return (ssize_t)n;
}

/* trickle: the whole answer, one byte at a time, delay_ms apart */
struct trickle_state {
	char *body;
	size_t len;
	int ms;
};

static ssize_t trickle_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct trickle_state *t = cls;
	if (pos >= t->len || max == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (pos > 0)
		util_sleep_ms(t->ms);
	out[0] = t->body[pos];
	return 1;
}

static void drop_free_trickle(void *cls)
{
	struct trickle_state *t = cls;
	free(t->body);
	free(t);
}

static void drop_free(void *cls)
{
	struct drop_state *d = cls;
	free(d->body);
	free(d);
}

static enum MHD_Result send_resp(struct MHD_Connection *c, struct emu_resp *r)
{
	struct MHD_Response *mr = NULL;
	if (r->stream == RS_HUGE) {
		mr = MHD_create_response_from_callback(r->stream_bytes, 64 * 1024,
						       huge_reader, NULL, NULL);
	} else if (r->stream == RS_TRICKLE && r->status == 200) {
		struct trickle_state *t = malloc(sizeof *t);
		if (t) {
			t->body = r->body;
			t->len = r->len;
			t->ms = r->trickle_ms;
			r->body = NULL;
			mr = MHD_create_response_from_callback(t->len, 1, trickle_reader, t,
							       drop_free_trickle);
			if (!mr)
				drop_free_trickle(t);
		}
	} else if (r->stream == RS_DROP) {
		struct drop_state *d = malloc(sizeof *d);
		if (d) {
			d->body = r->body;
			d->len = r->len;
			r->body = NULL;
			mr = MHD_create_response_from_callback(d->len, 64 * 1024,
							       drop_reader, d, drop_free);
			if (!mr)
				drop_free(d);
		}
	} else {
		mr = MHD_create_response_from_buffer(r->len, r->body ? r->body : (char *)"",
						     r->body ? MHD_RESPMEM_MUST_FREE :
						     MHD_RESPMEM_PERSISTENT);
		if (mr)
			r->body = NULL;
	}
	free(r->body);
	r->body = NULL;
	if (!mr)
		return MHD_NO;
	if (r->ctype)
		MHD_add_response_header(mr, "Content-Type", r->ctype);
	for (int i = 0; i < r->nhdr; i++)
		MHD_add_response_header(mr, r->hname[i], r->hval[i]);
	/* Tells bananafs that nobody bills this answer: its ledger marks the spend simulated. */
	MHD_add_response_header(mr, "X-Bananafs-Simulated", "1");
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, mr);
	MHD_destroy_response(mr);
	return ret;
}

/* ---- MHD callbacks ------------------------------------------------------------ */

static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind,
				 const char *key, const char *filename,
				 const char *ctype, const char *enc,
				 const char *data, uint64_t off, size_t size)
{
	(void)kind;
	(void)enc;
	struct conn_ctx *cx = cls;
	struct form_part *last = cx->nparts ? &cx->parts[cx->nparts - 1] : NULL;
	/* a new part starts at offset 0 (repeated image[] keys included) */
	bool fresh = !last || strcmp(last->name, key) != 0 ||
		(off == 0 && last->data.len > 0);
	if (fresh) {
		if (cx->nparts >= MAX_PARTS)
			return MHD_YES;
		last = &cx->parts[cx->nparts++];
		memset(last, 0, sizeof *last);
		snprintf(last->name, sizeof last->name, "%s", key);
		snprintf(last->filename, sizeof last->filename, "%s",
			 filename ? filename : "");
		snprintf(last->ctype, sizeof last->ctype, "%s", ctype ? ctype : "");
	}
	buf_add(&last->data, data, size);
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	(void)cls;
	(void)version;
	struct conn_ctx *cx = *con_cls;
	if (!cx) {
		cx = calloc(1, sizeof *cx);
		if (!cx)
			return MHD_NO;
		const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     "Content-Type");
		if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0)
			cx->pp = MHD_create_post_processor(c, 64 * 1024, post_iter, cx);
		*con_cls = cx;
		return MHD_YES;
	}
	if (*upload_size) {
		if (cx->pp)
			MHD_post_process(cx->pp, upload, *upload_size);
		else if (cx->body.len + *upload_size > BODY_MAX)
			cx->too_big = true;
		else
			buf_add(&cx->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}

	struct emu_req q;
	memset(&q, 0, sizeof q);
	q.conn = c;
	q.method = method;
	q.path = url;
	q.ver = "";
	q.rest = "";
	q.body = cx->body.data ? cx->body.data : "";
	q.body_len = cx->body.len;
	q.loopback = peer_is_loopback(c);
	q.parts = cx->parts;
	q.nparts = cx->nparts;
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	snprintf(q.base, sizeof q.base, "http://%s", host ? host : "127.0.0.1");
	find_key(&q);

	struct emu_resp r;
	memset(&r, 0, sizeof r);
	if (cx->too_big || cx->body.oom) {
		struct emu_err e;
		err_set(&e, 413, "INVALID_ARGUMENT", "invalid_request",
			"Request payload size exceeds the limit: %u bytes.", BODY_MAX);
		resp_error(&r, FL_GOOGLE, &e);
	} else {
		route(&q, &r);
	}
	if (!r.status)
		resp_text(&r, 500, "text/plain", "emulator: no answer\n");
	fprintf(stderr, "%s %s -> %d%s\n", method, url, r.status,
		r.stream == RS_HUGE ? " (huge body)" :
		r.stream == RS_DROP ? " (dropped)" : "");
	return send_resp(c, &r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	struct conn_ctx *cx = *con_cls;
	if (!cx)
		return;
	if (cx->pp)
		MHD_destroy_post_processor(cx->pp);
	for (int i = 0; i < cx->nparts; i++)
		buf_free(&cx->parts[i].data);
	buf_free(&cx->body);
	free(cx);
	*con_cls = NULL;
}

bool http_start(const char *ip, int port, int *bound)
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return false;
	daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
				   MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
				   (uint16_t)port, NULL, NULL, on_request, NULL,
				   MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				   MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
				   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
				   MHD_OPTION_END);
	if (!daemon_)
		return false;
	const union MHD_DaemonInfo *di =
		MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
	*bound = di ? di->port : port;
	return true;
}

void http_stop(void)
{
	if (daemon_)
		MHD_stop_daemon(daemon_);
	daemon_ = NULL;
}
