/*
 * background.c - crash-proof requests: standard and flex as background
 * interactions.
 *
 * Why.  A plain request is one long HTTP call: if the daemon dies while it
 * runs, the image is made and billed on Google's side, and the answer is
 * lost with the connection; after the remount all we can do is send the
 * request again and pay twice.  A background interaction splits it in
 * two: the create call returns at once with an id, and the image is
 * fetched by polling that id.  The caller journals the id (fsynced) the
 * moment the create returns, so after kill -9 the journaled id is polled
 * again instead of the request being resent.  Only the short window of the
 * create call itself stays uncertain (the ledger counts it as billed).
 *
 * The state machine (struct bg_machine) holds no I/O and takes the time as
 * an argument, so it is tested with a fake clock:
 *
 *   CREATE --created(id)--> POLL --finished--> DONE
 *     |  --finished (answered at once) / failed--> DONE
 *     |  --refused (400 naming background)--> PLAIN (caller sends plainly)
 *   POLL --pending--> POLL (next poll after 0.25 s, doubling to 5 s)
 *        --poll error--> POLL, BG_POLL_ERRORS_MAX in a row --> LOST
 *        --gone (404) or polling past give_up_s--> LOST
 *   POLL, and the caller's keep() says another owner follows it --> LEFT
 *
 * Interaction ids are not secrets (they name the interaction, which needs
 * the key to read), so they may be journaled and logged.
 */
#include "api/background.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/errors.h"
#include "api/redact.h"
#include "api/wire.h"

void bg_start(struct bg_machine *m, const char *resume_id, double give_up_s, double now)
{
	memset(m, 0, sizeof(*m));
	m->give_up_s = give_up_s;
	m->interval = BG_POLL_FIRST_S;
	if (resume_id && *resume_id) {
		snprintf(m->id, sizeof(m->id), "%s", resume_id);
		m->state = BG_POLL;
		m->started = m->next_at = now;
	} else {
		m->state = BG_CREATE;
	}
}

static void poll_later(struct bg_machine *m, double now)
{
	m->next_at = now + m->interval;
	m->interval = m->interval * 2 < BG_POLL_MAX_S ? m->interval * 2 : BG_POLL_MAX_S;
	if (now - m->started >= m->give_up_s)
		m->state = BG_LOST;
}

void bg_event(struct bg_machine *m, enum bg_event e, const char *id, double now)
{
	switch (m->state) {
	case BG_CREATE:
		if (e == BGE_CREATED && id && *id) {
			snprintf(m->id, sizeof(m->id), "%s", id);
			m->state = BG_POLL;
			m->started = m->next_at = now;	/* the first poll at once */
		} else if (e == BGE_CREATED || e == BGE_FINISHED || e == BGE_FAILED) {
			/* Answered at once (or no id to follow): the answer is what we have;
			 * an id is kept so the finished interaction can be deleted. */
			if (id && *id)
				snprintf(m->id, sizeof(m->id), "%s", id);
			m->state = BG_DONE;
		} else if (e == BGE_REFUSED) {
			m->state = BG_PLAIN;
		}
		break;
	case BG_POLL:
		switch (e) {
		case BGE_FINISHED:
			m->state = BG_DONE;
			break;
		case BGE_PENDING:
			m->poll_errors = 0;
			poll_later(m, now);
			break;
		case BGE_POLL_ERROR:
			if (++m->poll_errors >= BG_POLL_ERRORS_MAX)
				m->state = BG_LOST;
			else
				poll_later(m, now);
			break;
		case BGE_GONE:
			m->state = BG_LOST;
			break;
		default:
			break;
		}
		break;
	default:
		break;			/* DONE, PLAIN and LOST are final */
	}
}

double bg_wait(const struct bg_machine *m, double now)
{
	if (m->state != BG_POLL || m->next_at <= now)
		return 0;
	return m->next_at - now;
}

/* ---- the wire ------------------------------------------------------------ */

/* An answer this big holds an image: it is finished, and not parsed twice. */
#define PEEK_MAX_BYTES (64 * 1024)

/* The string value of "name" in the first PEEK_MAX_BYTES of a finished answer (best effort). */
static void scan_str(const char *body, size_t len, const char *name, char *out, size_t outlen)
{
	char pat[32];
	const char *p, *end = body + (len < PEEK_MAX_BYTES ? len : PEEK_MAX_BYTES);
	size_t n = 0;

	out[0] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\"", name);
	p = memmem(body, (size_t)(end - body), pat, strlen(pat));
	if (!p)
		return;
	for (p += strlen(pat); p < end && (*p == ' ' || *p == ':'); p++)
		;
	if (p >= end || *p++ != '"')
		return;
	while (p < end && *p != '"' && *p != '\\' && n + 1 < outlen)
		out[n++] = *p++;
	if (p >= end || *p != '"')
		n = 0;			/* cut short or escaped: no id */
	out[n] = '\0';
}

/*
 * The status and id of a 2xx interaction answer; "" when absent.  An
 * in-progress answer is small and parsed; a big one is a finished answer
 * with an image, read once by the route's parser, so only scanned here.
 */
static void peek(const struct http_resp *resp, char *status, size_t slen, char *id, size_t idlen)
{
	cJSON *root;
	const char *s, *i;

	status[0] = id[0] = '\0';
	if (!resp->body)
		return;
	if (resp->len > PEEK_MAX_BYTES) {
		scan_str(resp->body, resp->len, "id", id, idlen);
		return;
	}
	root = cJSON_ParseWithLength(resp->body, resp->len);
	s = wire_str(root, "status");
	i = wire_str(root, "id");
	snprintf(status, slen, "%s", s ? s : "");
	snprintf(id, idlen, "%s", i ? i : "");
	cJSON_Delete(root);
}

static bool unfinished(const char *status)
{
	return strcmp(status, "in_progress") == 0 || strcmp(status, "queued") == 0;
}

/*
 * A finished interaction into res, checked like any made image; no key in
 * its text.  The image is decoded in the answer's own buffer first, as a
 * plain request's is (api/attempt.c), so the parser never copies the base64.
 */
static void take_answer(const struct api_endpoint *ep, struct http_resp *resp,
			const struct gen_request *rq, struct gen_result *res)
{
	const char *keys[] = { ep->api_key, NULL };

	wire_lift_image(resp, res);
	route_standard.parse(resp, res);
	free(res->lifted);	/* a big string that was not the image */
	res->lifted = NULL;
	res->lifted_len = 0;
	res->http_status = resp->status;
	if (res->cls == ERR_NONE)
		api_check_image(rq, res);
	redact_result(res, keys);
}

/* A 400 whose message names background mode: the model does not offer it. */
static bool refuses_background(const struct gen_result *res)
{
	return res->http_status == 400 && res->message && strstr(res->message, "ackground") != NULL;
}

static void reset_result(struct gen_result *res)
{
	gen_result_free(res);
	memset(res, 0, sizeof(*res));
	res->quota_value = -1;
	res->retry_after_s = -1;
	res->in_tokens = res->out_tokens = res->thought_tokens = -1;
}

/*
 * A 2xx interaction answer: true while it is still in progress (with an
 * id, when need_id); otherwise the finished answer is taken into res.
 * id (BG_ID_MAX) receives the answer's id.
 */
static bool in_progress(const struct api_endpoint *ep, struct http_resp *resp, const struct gen_request *rq,
			struct gen_result *res, char *id, bool need_id)
{
	char status[32];

	peek(resp, status, sizeof(status), id, BG_ID_MAX);
	if (unfinished(status) && (!need_id || id[0]))
		return true;
	take_answer(ep, resp, rq, res);
	return false;
}

static enum bg_event create(const struct http_opts *ho, const struct api_endpoint *ep,
			    const struct gen_request *rq, struct gen_result *res, char id[BG_ID_MAX])
{
	struct http_req req;
	struct http_resp resp;
	char err[256] = "";
	enum bg_event e;

	if (standard_build_req(ep, rq, true, &req, err, sizeof(err)) != 0) {
		gen_result_fail(res, ERR_REQUEST, "%s", err[0] ? err : "cannot build the request");
		return BGE_FAILED;
	}
	if (!api_exchange(ho, ep, &req, &resp, res))
		e = refuses_background(res) ? BGE_REFUSED : BGE_FAILED;
	else
		e = in_progress(ep, &resp, rq, res, id, true) ? BGE_CREATED : BGE_FINISHED;
	http_req_free(&req);
	http_resp_free(&resp);
	return e;
}

static int id_request(struct http_req *req, const struct api_endpoint *ep, const char *method,
		      const char *id)
{
	memset(req, 0, sizeof(*req));
	req->method = method;
	req->url = wire_url(ep->base_url, "%s/interactions/%s", ep->api_version ? ep->api_version : "v1beta",
			    id);
	if (!req->url || wire_auth(req, ep, false) || wire_header(req, "Accept: application/json")) {
		http_req_free(req);
		return -1;
	}
	return 0;
}

static enum bg_event poll_once(const struct http_opts *ho, const struct api_endpoint *ep,
			       const struct gen_request *rq, const char *id, struct gen_result *res)
{
	struct http_req req;
	struct http_resp resp;
	char got[BG_ID_MAX];
	enum bg_event e;

	if (id_request(&req, ep, "GET", id) < 0) {
		gen_result_fail(res, ERR_REQUEST, "cannot build the poll of interaction %s", id);
		return BGE_POLL_ERROR;
	}
	if (!api_exchange(ho, ep, &req, &resp, res))
		e = res->http_status == 404 ? BGE_GONE :
		    err_class_transient(res->cls) ? BGE_POLL_ERROR : BGE_FINISHED;
	else
		e = in_progress(ep, &resp, rq, res, got, false) ? BGE_PENDING : BGE_FINISHED;
	http_req_free(&req);
	http_resp_free(&resp);
	return e;
}

enum bg_state api_background(const struct http_opts *ho, const struct api_endpoint *ep,
			     const struct gen_request *rq, const struct clock_ops *clk,
			     const char *resume_id, bg_journal_fn journal, bg_keep_fn keep, void *arg,
			     struct gen_result *res, char id_out[BG_ID_MAX])
{
	struct bg_machine m;
	/* An image takes 10-60 s; polling stops long after any sane answer. */
	double give_up = ho->timeout_s > 0 ? 4.0 * ho->timeout_s : 1200;
	char id[BG_ID_MAX] = "";
	enum bg_event e;

	reset_result(res);
	bg_start(&m, resume_id, give_up, clk->now(clk->ctx));
	if (m.state == BG_CREATE) {
		e = create(ho, ep, rq, res, id);
		/* Not durable when it fails: followed anyway, only a crash now would resend. */
		if (e == BGE_CREATED && journal)
			(void)journal(arg, id);
		bg_event(&m, e, e == BGE_FAILED ? NULL : id, clk->now(clk->ctx));
	}
	while (m.state == BG_POLL) {
		double d = bg_wait(&m, clk->now(clk->ctx));

		if (d > 0)
			clk->sleep(clk->ctx, d);
		if (bg_wait(&m, clk->now(clk->ctx)) > 0)
			continue;		/* woke early */
		reset_result(res);
		if (keep && !keep(arg)) {
			m.state = BG_LEFT;	/* its new owner polls it: nothing of it is ours now */
			break;
		}
		e = poll_once(ho, ep, rq, m.id, res);
		bg_event(&m, e, NULL, clk->now(clk->ctx));
	}
	snprintf(id_out, BG_ID_MAX, "%s", m.id);
	if (m.state == BG_PLAIN)
		reset_result(res);
	if (m.state == BG_LOST) {
		if (res->cls == ERR_NONE)
			gen_result_fail(res, ERR_NETWORK, "interaction %s could not be followed", m.id);
		res->outcome_unknown = true;
	}
	return m.state;
}

int api_background_delete(const struct http_opts *ho, const struct api_endpoint *ep, const char *id)
{
	struct http_req req;
	struct http_resp resp;
	struct gen_result res;
	bool ok;

	if (!id || !*id || id_request(&req, ep, "DELETE", id) < 0)
		return -1;
	memset(&res, 0, sizeof(res));
	ok = api_exchange(ho, ep, &req, &resp, &res);
	gen_result_free(&res);
	http_req_free(&req);
	http_resp_free(&resp);
	return ok ? 0 : -1;
}
