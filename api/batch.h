/*
 * batch.h - the Gemini Batch API on the wire (gemini-wire.md section 3):
 * building create / upload / poll / download requests and parsing their
 * answers.  No threads, no state: cache/batcher.c drives it.
 *
 * Every line of a batch is a generateContent request, built by the same
 * code as the generate route; every result goes through the same parser.
 */
#ifndef BANANAFS_API_BATCH_H
#define BANANAFS_API_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include "api/http.h"
#include "api/request.h"
#include "api/route.h"

/* Above this many bytes of inline body the JSONL file upload is used. */
#define BATCH_INLINE_MAX (20u * 1000u * 1000u)

/* One line of a batch: the cache key (its metadata key) and the request JSON. */
struct batch_line {
	const char *key;		/* cache key hex: matches results to requests */
	const char *request_json;	/* camelCase GenerateContentRequest incl. "model" */
};

/*
 * The GenerateContentRequest for rq as JSON text, camelCase, with
 * "model":"models/<id>" inside (as the SDK sends batch lines).  malloc'd, or
 * NULL with err.
 */
char *batch_request_json(const struct gen_request *rq, char *err, size_t errlen);

/*
 * POST {base}/{version}/models/{model}:batchGenerateContent with the lines
 * inline: {"batch":{"displayName":..,"inputConfig":{"requests":{"requests":[
 * {"request":{..},"metadata":{"key":..}}]}}}}.  0, or -1 with err.
 */
int batch_build_create_inline(const struct api_endpoint *ep, const char *model, const char *display,
			      const struct batch_line *lines, int n, struct http_req *out,
			      char *err, size_t errlen);

/*
 * The JSONL input file: one {"key":..,"request":{..}} a line, every field
 * name of the request in snake_case (the JSONL parser wants it).  malloc'd
 * with its length in *len, or NULL.
 */
char *batch_jsonl(const struct batch_line *lines, int n, size_t *len);

/* Files API resumable upload: the start request (answer carries x-goog-upload-url). */
int batch_build_upload_start(const struct api_endpoint *ep, const char *display, size_t bytes,
			     struct http_req *out, char *err, size_t errlen);
/* "upload, finalize" of all bytes to the upload URL (copied into the request). */
int batch_build_upload_finish(const char *upload_url, const char *data, size_t len,
			      struct http_req *out, char *err, size_t errlen);
/* The finalize answer's file.name ("files/abc") into name.  0, or -1 with err. */
int batch_parse_upload(const struct http_resp *resp, char *name, size_t namelen, char *err, size_t errlen);

/* Create from an uploaded file: {"batch":{"displayName","model","inputConfig":{"fileName"}}}. */
int batch_build_create_file(const struct api_endpoint *ep, const char *model, const char *display,
			    const char *file_name, struct http_req *out, char *err, size_t errlen);

/* GET {base}/{version}/batches/<id> (name is "batches/<id>"). */
int batch_build_get(const struct api_endpoint *ep, const char *name, struct http_req *out,
		    char *err, size_t errlen);
/* GET {base}/{version}/files/<id>:download?alt=media (file is "files/<id>"). */
int batch_build_download(const struct api_endpoint *ep, const char *file, struct http_req *out,
			 char *err, size_t errlen);

enum batch_state {
	BATCH_UNKNOWN = 0,
	BATCH_PENDING,
	BATCH_RUNNING,
	BATCH_SUCCEEDED,
	BATCH_FAILED,
	BATCH_CANCELLED,
	BATCH_EXPIRED,
};

/* "BATCH_STATE_RUNNING" or "JOB_STATE_RUNNING" -> BATCH_RUNNING; BATCH_UNKNOWN otherwise. */
enum batch_state batch_state_parse(const char *s);
const char *batch_state_name(enum batch_state s);	/* "running", ... */

/* One result, matched by key.  res is filled as api_attempt would fill it. */
struct batch_result {
	char key[80];
	struct gen_result res;
};

struct batch_status {
	char name[128];			/* "batches/<id>" */
	enum batch_state state;
	bool done;			/* the operation's "done" */
	char responses_file[128];	/* "files/<id>" when results are in a file */
	bool have_results;		/* results[] holds the inline results */
	struct batch_result *results;
	int nresults;
	char error[512];		/* job-level failure, readable ("batch expired after 48 h") */
};

/*
 * Parses a create or GET answer (2xx): name, state (metadata.state, either
 * spelling), done, inline results (response.inlinedResponses or
 * metadata.output.inlinedResponses), responsesFile.  For a failed,
 * cancelled or expired job error says so.  0, or -1 with err (malformed).
 */
int batch_parse_status(const struct http_resp *resp, struct batch_status *st, char *err, size_t errlen);

/*
 * Parses a downloaded results file (JSONL: {"key","response"} or
 * {"key","error"|"status"}) into st->results; sets have_results.  Bad
 * lines are skipped (their keys then have no result).  0, or -1 with err.
 */
int batch_parse_results_jsonl(const char *body, size_t len, struct batch_status *st,
			      char *err, size_t errlen);

/* The result for key, or NULL. */
struct batch_result *batch_status_find(struct batch_status *st, const char *key);
/* True when the job ended without results that will ever come (failed, cancelled, expired). */
bool batch_state_terminal_failure(enum batch_state s);
void batch_status_free(struct batch_status *st);

#endif
