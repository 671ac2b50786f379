/* test_ledger.c - append, totals, torn lines, today vs total, mode 0600. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/ledger.h"

static char dir[64], path[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bananafs-ledger-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ledger.jsonl", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static void rec(struct ledger_rec *r, const char *outcome, double cost, bool billed, time_t t)
{
	memset(r, 0, sizeof(*r));
	r->time = t;
	r->key = "00112233445566778899aabbccddeeff";
	r->model = "gemini-3-pro-image";
	r->route = "standard";
	r->size = "2K";
	r->aspect = "1:1";
	r->outcome = outcome;
	r->http_status = -1;
	r->latency_s = -1;
	r->cost_usd = cost;
	r->billed = billed;
	r->in_tokens = r->out_tokens = -1;
}

/* Reads line n (0-based) of the ledger as JSON. */
static cJSON *line_at(int n)
{
	FILE *fp = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;
	cJSON *o = NULL;
	int i = 0;

	assert_non_null(fp);
	while (getline(&buf, &cap, fp) >= 0) {
		if (i++ == n) {
			o = cJSON_Parse(buf);
			break;
		}
	}
	free(buf);
	fclose(fp);
	return o;
}

static void test_append_fields_and_mode(void **state)
{
	struct ledger l;
	struct ledger_rec r;
	char err[256];
	struct stat st;
	cJSON *o;
	mode_t old = umask(0);

	(void)state;
	assert_int_equal(ledger_open(&l, path, NULL, err, sizeof(err)), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	rec(&r, "sent", 0.134, false, 1795600800);	/* 2026-11-25T10:00:00Z */
	r.attempt = 2;
	r.reason = "retry after 429";
	assert_int_equal(ledger_append(&l, &r), 0);
	rec(&r, "ok", 0.134, true, 1795600800);
	r.http_status = 200;
	r.request_id = "req-1";
	r.in_tokens = 10;
	r.out_tokens = 1120;
	r.latency_s = 12.5;
	assert_int_equal(ledger_append(&l, &r), 0);
	ledger_close(&l);

	o = line_at(0);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "time")->valuestring, "2026-11-25T10:00:00Z");
	assert_string_equal(cJSON_GetObjectItem(o, "outcome")->valuestring, "sent");
	assert_string_equal(cJSON_GetObjectItem(o, "reason")->valuestring, "retry after 429");
	assert_int_equal(cJSON_GetObjectItem(o, "attempt")->valueint, 2);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "billed")));
	/* absent numbers are left out */
	assert_null(cJSON_GetObjectItem(o, "http_status"));
	assert_null(cJSON_GetObjectItem(o, "latency_s"));
	assert_null(cJSON_GetObjectItem(o, "in_tokens"));
	assert_null(cJSON_GetObjectItem(o, "job"));
	cJSON_Delete(o);

	o = line_at(1);
	assert_non_null(o);
	assert_int_equal(cJSON_GetObjectItem(o, "http_status")->valueint, 200);
	assert_int_equal(cJSON_GetObjectItem(o, "out_tokens")->valueint, 1120);
	assert_true(fabs(cJSON_GetObjectItem(o, "cost_usd")->valuedouble - 0.134) < 1e-9);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "billed")));
	cJSON_Delete(o);
}

static double wall_fixed(void *ctx)
{
	(void)ctx;
	return 1795600800.5;	/* 2026-11-25T10:00:00Z */
}

/* A line without a time takes the ledger's clock's wall time, not the system's. */
static void test_time_from_clock(void **state)
{
	const struct clock_ops fake = { .wall = wall_fixed };
	struct ledger l;
	struct ledger_rec r;
	char err[256];
	cJSON *o;

	(void)state;
	assert_int_equal(ledger_open(&l, path, &fake, err, sizeof(err)), 0);
	rec(&r, "unknown", 0.134, true, 0);
	assert_int_equal(ledger_append(&l, &r), 0);
	ledger_close(&l);
	o = line_at(0);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "time")->valuestring, "2026-11-25T10:00:00Z");
	cJSON_Delete(o);
}

static void test_totals_today_and_torn(void **state)
{
	struct ledger l;
	struct ledger_rec r;
	struct ledger_totals t;
	char err[256];
	time_t now = time(NULL);
	FILE *fp;

	(void)state;
	assert_int_equal(ledger_open(&l, path, NULL, err, sizeof(err)), 0);
	rec(&r, "ok", 0.134, true, now - 3 * 86400);	/* days ago: total only */
	assert_int_equal(ledger_append(&l, &r), 0);
	rec(&r, "sent", 0.134, false, now);		/* not billed: not counted */
	assert_int_equal(ledger_append(&l, &r), 0);
	rec(&r, "ok", 0.24, true, now);
	assert_int_equal(ledger_append(&l, &r), 0);
	rec(&r, "failed", 0.05, true, now);		/* billed failure counts */
	assert_int_equal(ledger_append(&l, &r), 0);
	ledger_close(&l);

	/* a crash mid-line leaves a torn tail */
	fp = fopen(path, "a");
	assert_non_null(fp);
	fputs("{\"time\":\"2026-11-25T10:00:00Z\",\"outcome\":\"ok\",\"cost_u", fp);
	fclose(fp);

	assert_int_equal(ledger_totals(path, now, &t), 0);
	assert_int_equal(t.lines, 5);
	assert_int_equal(t.torn, 1);
	assert_true(fabs(t.spent_total_usd - (0.134 + 0.24 + 0.05)) < 1e-9);
	assert_true(fabs(t.spent_today_usd - (0.24 + 0.05)) < 1e-9);

	/* appending after a torn line still works and is still counted */
	assert_int_equal(ledger_open(&l, path, NULL, err, sizeof(err)), 0);
	rec(&r, "ok", 0.1, true, now);
	assert_int_equal(ledger_append(&l, &r), 0);
	ledger_close(&l);
	assert_int_equal(ledger_totals(path, now, &t), 0);
	/* opening ended the torn line: it stays one torn line, the new one counts */
	assert_int_equal(t.lines, 6);
	assert_int_equal(t.torn, 1);
	assert_true(fabs(t.spent_total_usd - (0.134 + 0.24 + 0.05 + 0.1)) < 1e-9);
}

static void test_missing_file_is_zero(void **state)
{
	struct ledger_totals t;

	(void)state;
	assert_int_equal(ledger_totals(path, time(NULL), &t), 0);
	assert_int_equal(t.lines, 0);
	assert_true(t.spent_total_usd == 0);
}

static void test_no_dir_fails(void **state)
{
	struct ledger l;
	char err[256] = "";

	(void)state;
	assert_int_equal(ledger_open(&l, "/nonexistent-bananafs/ledger.jsonl", NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "ledger"));
}

/* Requests a crash left on the wire become "unknown", billed; closed and batch ones do not. */
static bool pending_b(const char *job, const char *key, void *arg)
{
	(void)key;
	(void)arg;
	return job && strcmp(job, "B") == 0;
}

static void test_settle_hidden(void **state)
{
	struct ledger l;
	struct ledger_rec r;
	struct ledger_totals t;
	char err[256];
	time_t now = time(NULL);
	cJSON *o;

	(void)state;
	assert_int_equal(ledger_open(&l, path, NULL, err, sizeof(err)), 0);
	/* job A: sent, retried, ok: closed */
	rec(&r, "sent", 0.134, false, now), r.job = "A", r.attempt = 1;
	assert_int_equal(ledger_append(&l, &r), 0);
	r.attempt = 2;
	assert_int_equal(ledger_append(&l, &r), 0);
	rec(&r, "ok", 0.134, true, now), r.job = "A";
	assert_int_equal(ledger_append(&l, &r), 0);
	/* job C: sent twice (a retry), then the crash */
	rec(&r, "sent", 0.134, false, now), r.job = "C", r.attempt = 1;
	r.key = "ffeeddccbbaa99887766554433221100";
	assert_int_equal(ledger_append(&l, &r), 0);
	r.attempt = 2;
	assert_int_equal(ledger_append(&l, &r), 0);
	/* job B: open, but its outcome will be learnt (pending) */
	rec(&r, "sent", 0.134, false, now), r.job = "B";
	assert_int_equal(ledger_append(&l, &r), 0);
	/* a batch item waits for its batch */
	rec(&r, "sent", 0.067, false, now), r.job = "D", r.route = "batch";
	assert_int_equal(ledger_append(&l, &r), 0);

	assert_int_equal(ledger_settle_hidden(&l, pending_b, NULL), 1);
	o = line_at(7);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "outcome")->valuestring, "unknown");
	assert_string_equal(cJSON_GetObjectItem(o, "job")->valuestring, "C");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "billed")));
	assert_int_equal((int)cJSON_GetObjectItem(o, "attempt")->valuedouble, 2);
	cJSON_Delete(o);
	/* settled once: a second pass finds nothing open */
	assert_int_equal(ledger_settle_hidden(&l, pending_b, NULL), 0);
	assert_int_equal(ledger_totals(path, now, &t), 0);
	assert_true(fabs(t.spent_total_usd - 0.268) < 1e-9);
	ledger_close(&l);
}

/* The mirror's view of each line: its event id and time, as written. */
struct seen {
	int n;
	char event[8][LEDGER_EVENT_LEN];
	time_t time[8];
};

static void remember(void *arg, const struct ledger_rec *r, const char *json_line)
{
	struct seen *s = arg;

	(void)json_line;
	if (s->n < 8) {
		snprintf(s->event[s->n], LEDGER_EVENT_LEN, "%s", r->event_id ? r->event_id : "(null)");
		s->time[s->n++] = r->time;
	}
}

static const char *event_at(int n, char buf[LEDGER_EVENT_LEN])
{
	cJSON *o = line_at(n);
	const cJSON *e = cJSON_GetObjectItem(o, "event_id");

	snprintf(buf, LEDGER_EVENT_LEN, "%s", cJSON_IsString(e) ? e->valuestring : "");
	cJSON_Delete(o);
	return buf;
}

/*
 * Every line is its own event: two lines alike have two ids; the "unknown"
 * line for a "sent" line a crash left open has that line's id with
 * "-unknown" (a team mount taking the request over derives the same); an
 * old "sent" line without an id gives an "unknown" without one.  The
 * mirror is told each line with its id and time, and the lines of the
 * mount's start again with the same ids.
 */
static void test_event_ids(void **state)
{
	struct ledger l;
	struct ledger_rec r;
	struct seen seen = { 0 };
	char err[256], a[LEDGER_EVENT_LEN], b[LEDGER_EVENT_LEN], want[LEDGER_EVENT_LEN + 16];
	time_t now = time(NULL);
	FILE *fp;
	cJSON *o;

	(void)state;
	assert_int_equal(ledger_open(&l, path, NULL, err, sizeof(err)), 0);
	rec(&r, "sent", 0.134, false, now), r.job = "A", r.attempt = 1;
	assert_int_equal(ledger_append(&l, &r), 0);
	assert_int_equal(ledger_append(&l, &r), 0);	/* the same attempt again (a resumed job) */
	ledger_close(&l);
	event_at(0, a);
	event_at(1, b);
	assert_int_equal(strlen(a), 24);
	assert_string_not_equal(a, b);

	/* an old line, written before lines had ids: job B, open */
	fp = fopen(path, "a");
	assert_non_null(fp);
	fprintf(fp, "{\"time\":\"2026-11-30T10:00:00Z\",\"job\":\"B\",\"key\":\"ab\","
		"\"route\":\"standard\",\"outcome\":\"sent\",\"attempt\":1,\"cost_usd\":0.134,"
		"\"billed\":false}\n");
	fclose(fp);

	assert_int_equal(ledger_open(&l, path, NULL, err, sizeof(err)), 0);
	assert_int_equal(ledger_settle_hidden(&l, NULL, NULL), 2);
	snprintf(want, sizeof(want), "%s" LEDGER_UNKNOWN_SUFFIX, b);
	o = line_at(3);
	assert_string_equal(cJSON_GetObjectItem(o, "job")->valuestring, "A");
	assert_string_equal(cJSON_GetObjectItem(o, "outcome")->valuestring, "unknown");
	assert_string_equal(cJSON_GetObjectItem(o, "event_id")->valuestring, want);
	assert_string_equal(cJSON_GetObjectItem(o, "cost_basis")->valuestring, "per-image");
	cJSON_Delete(o);
	o = line_at(4);
	assert_string_equal(cJSON_GetObjectItem(o, "job")->valuestring, "B");
	assert_null(cJSON_GetObjectItem(o, "event_id"));
	cJSON_Delete(o);

	/* the mirror: first the lines of the start, with their ids, then each new line */
	assert_int_equal(ledger_set_mirror(&l, remember, &seen), 0);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.event[0], want);
	assert_string_equal(seen.event[1], "");
	rec(&r, "ok", 0.134, true, 0), r.job = "A";
	assert_int_equal(ledger_append(&l, &r), 0);
	assert_int_equal(seen.n, 3);
	assert_string_equal(seen.event[2], event_at(5, a));
	assert_true(seen.time[2] > 0 && seen.time[0] > 0);
	ledger_close(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_fields_and_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_totals_today_and_torn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_time_from_clock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file_is_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_dir_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settle_hidden, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_ids, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
