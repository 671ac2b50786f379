/*
 * ledger.c - STORE/ledger.jsonl, the record of every cent.
 *
 * Invariants:
 *  - one record is one line, written by a single write() on an O_APPEND fd
 *    (so concurrent appends never interleave) and fdatasync'd before
 *    ledger_append returns; a failed write or fdatasync returns -1 and the
 *    caller MUST NOT send the request it was about to record;
 *  - the file is mode 0600 and never holds a key (no field carries one);
 *  - readers tolerate a torn last line (crash mid-write): it is counted,
 *    skipped, never fatal.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/errbuf.h"
#include "cache/ledger.h"

static int end_torn_line(int fd)
{
	struct stat st;
	char c;

	if (fstat(fd, &st) < 0)
		return -1;
	if (st.st_size == 0)
		return 0;
	if (pread(fd, &c, 1, st.st_size - 1) != 1)
		return -1;
	if (c == '\n')
		return 0;
	if (write(fd, "\n", 1) != 1 || fdatasync(fd) < 0)
		return -1;
	return 0;
}

int ledger_open(struct ledger *l, const char *path, const struct clock_ops *clk, char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	l->clk = clk ? clk : &clock_real;
	l->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (l->fd < 0) {
		errbuf_set(err, errlen, "ledger: cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	/* umask-proof, and tighten a file someone loosened */
	if (fchmod(l->fd, 0600) < 0) {
		errbuf_set(err, errlen, "ledger: chmod %s: %s", path, strerror(errno));
		goto out_close;
	}
	/* A crash may have left a torn last line: end it, so ours starts clean. */
	if (end_torn_line(l->fd) < 0) {
		errbuf_set(err, errlen, "ledger: cannot repair the last line of %s: %s", path, strerror(errno));
		goto out_close;
	}
	l->opened_at = lseek(l->fd, 0, SEEK_END);
	l->path = strdup(path);
	if (!l->path) {
		errbuf_set(err, errlen, "ledger: out of memory");
		goto out_close;
	}
	if (pthread_mutex_init(&l->mu, NULL) != 0) {
		errbuf_set(err, errlen, "ledger: mutex init failed");
		goto out_free_path;
	}
	return 0;

out_free_path:
	free(l->path);
	l->path = NULL;
out_close:
	close(l->fd);
	l->fd = -1;
	return -1;
}

void ledger_close(struct ledger *l)
{
	if (!l->path)
		return;
	close(l->fd);
	l->fd = -1;
	pthread_mutex_destroy(&l->mu);
	free(l->path);
	l->path = NULL;
}

static int add_str(cJSON *o, const char *name, const char *v)
{
	if (!v || !*v)
		return 0;
	return cJSON_AddStringToObject(o, name, v) ? 0 : -1;
}

static int add_num(cJSON *o, const char *name, double v)
{
	return cJSON_AddNumberToObject(o, name, v) ? 0 : -1;
}

/*
 * Rounds money to nano-dollars so 0.1+0.2 prints as 0.3, not
 * 0.30000000000000004.  Not coarser: a token costs fractions of a
 * micro-dollar (Pro's input text: $2 per 1M), and the ledger must add up
 * to the bill.
 */
static double usd_round(double v)
{
	return (double)(long long)(v * 1e9 + (v < 0 ? -0.5 : 0.5)) / 1e9;
}

/*
 * A new event id: 96 random bits in hex.  Without randomness (getrandom
 * failing is not expected) the boot clock, the pid and a counter still
 * make it unique on this machine.
 */
static void event_id_new(char out[LEDGER_EVENT_LEN])
{
	static atomic_uint counter;
	unsigned char b[12];
	struct timespec ts;

	if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b)) {
		unsigned int n = atomic_fetch_add(&counter, 1);
		unsigned long long v;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		v = (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
		memcpy(b, &v, 8);
		b[8] = (unsigned char)(getpid() ^ (int)n);
		b[9] = (unsigned char)(getpid() >> 8);
		b[10] = (unsigned char)n;
		b[11] = (unsigned char)(n >> 8);
	}
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static char *render(const struct ledger_rec *r)
{
	char when[32];
	struct tm tm;
	time_t t = r->time;
	cJSON *o = cJSON_CreateObject();
	char *line = NULL;
	int bad = 0;

	if (!o)
		return NULL;
	if (!gmtime_r(&t, &tm) || strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		goto out_delete;
	bad |= add_str(o, "time", when);
	bad |= add_str(o, "event_id", r->event_id);
	bad |= add_str(o, "job", r->job);
	bad |= add_str(o, "path", r->path);
	bad |= add_str(o, "key", r->key);
	bad |= add_str(o, "model", r->model);
	bad |= add_str(o, "route", r->route);
	bad |= add_str(o, "size", r->size);
	bad |= add_str(o, "aspect", r->aspect);
	bad |= add_str(o, "prompt_hash", r->prompt_hash);
	bad |= add_str(o, "prompt", r->prompt);
	bad |= add_str(o, "outcome", r->outcome);
	bad |= add_str(o, "reason", r->reason);
	if (r->http_status > 0)
		bad |= add_num(o, "http_status", (double)r->http_status);
	bad |= add_str(o, "api_status", r->api_status);
	bad |= add_str(o, "request_id", r->request_id);
	bad |= add_str(o, "error_class", r->error_class);
	if (r->attempt > 0)
		bad |= add_num(o, "attempt", r->attempt);
	if (r->latency_s >= 0)
		bad |= add_num(o, "latency_s", (double)(long long)(r->latency_s * 1000 + 0.5) / 1000);
	if (r->cost_usd >= 0)
		bad |= add_num(o, "cost_usd", usd_round(r->cost_usd));
	bad |= cJSON_AddBoolToObject(o, "billed", r->billed) ? 0 : -1;
	if (r->simulated)
		bad |= cJSON_AddBoolToObject(o, "simulated", true) ? 0 : -1;
	bad |= add_str(o, "fallback", r->fallback);
	bad |= add_str(o, "model_served", r->model_served);
	if (r->in_tokens >= 0)
		bad |= add_num(o, "in_tokens", (double)r->in_tokens);
	if (r->search_queries > 0)
		bad |= add_num(o, "search_queries", (double)r->search_queries);
	if (r->out_tokens >= 0)
		bad |= add_num(o, "out_tokens", (double)r->out_tokens);
	if (r->usage) {
		bad |= add_num(o, "in_text_tokens", (double)r->usage->text_in);
		bad |= add_num(o, "in_image_tokens", (double)r->usage->image_in);
		bad |= add_num(o, "out_image_tokens", (double)r->usage->image_out);
		bad |= add_num(o, "out_text_tokens", (double)r->usage->text_out);
		bad |= add_num(o, "thought_tokens", (double)r->usage->thought);
	}
	bad |= add_str(o, "cost_basis", r->cost_basis);
	if (!bad)
		line = cJSON_PrintUnformatted(o);
out_delete:
	cJSON_Delete(o);
	return line;
}

int ledger_append(struct ledger *l, const struct ledger_rec *r_in)
{
	struct ledger_rec rec = *r_in, *r = &rec;
	char *json, *line, event[LEDGER_EVENT_LEN];
	size_t len;
	ssize_t n;
	int rc = -1;

	if (!l->path || l->fd < 0)
		return -1;
	if (!rec.time)
		rec.time = (time_t)l->clk->wall(l->clk->ctx);
	if (!rec.event_id) {
		event_id_new(event);
		rec.event_id = event;
	}
	json = render(r);
	if (!json)
		return -1;
	len = strlen(json);
	line = malloc(len + 2);
	if (!line) {
		cJSON_free(json);
		return -1;
	}
	memcpy(line, json, len);
	line[len++] = '\n';
	line[len] = '\0';
	cJSON_free(json);

	pthread_mutex_lock(&l->mu);
	/* One write() for the whole line; a short write is a failure, not retried. */
	do
		n = write(l->fd, line, len);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)len && fdatasync(l->fd) == 0)
		rc = 0;
	pthread_mutex_unlock(&l->mu);
	if (rc == 0 && l->mirror)
		l->mirror(l->mirror_arg, r, line);
	free(line);
	return rc;
}

/* Local midnight of the day holding now. */
static time_t local_midnight(time_t now)
{
	struct tm tm;

	if (!localtime_r(&now, &tm))
		return now;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	return mktime(&tm);
}

/* "2026-11-25T10:00:00Z" -> time_t; -1 on a bad string. */
static time_t parse_time(const char *s)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return (time_t)-1;
	return timegm(&tm);
}

int ledger_totals(const char *path, time_t now, struct ledger_totals *t)
{
	FILE *fp;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	time_t midnight = local_midnight(now);

	memset(t, 0, sizeof(*t));
	fp = fopen(path, "re");
	if (!fp)
		return errno == ENOENT ? 0 : -1;	/* a new store has spent nothing */
	while ((n = getline(&buf, &cap, fp)) >= 0) {
		cJSON *o, *billed, *cost, *when;
		time_t tt;

		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			buf[--n] = '\0';
		if (n == 0)
			continue;
		t->lines++;
		o = cJSON_ParseWithLength(buf, (size_t)n);
		if (!o || !cJSON_IsObject(o)) {
			t->torn++;
			cJSON_Delete(o);
			continue;
		}
		billed = cJSON_GetObjectItemCaseSensitive(o, "billed");
		cost = cJSON_GetObjectItemCaseSensitive(o, "cost_usd");
		if (cJSON_IsTrue(billed) && cJSON_IsNumber(cost) && cost->valuedouble > 0) {
			t->spent_total_usd += cost->valuedouble;
			when = cJSON_GetObjectItemCaseSensitive(o, "time");
			tt = cJSON_IsString(when) ? parse_time(when->valuestring) : (time_t)-1;
			if (tt != (time_t)-1 && tt >= midnight)
				t->spent_today_usd += cost->valuedouble;
		}
		cJSON_Delete(o);
	}
	free(buf);
	fclose(fp);
	return 0;
}

/* --- requests a crash left open ----------------------------------------- */

struct open_req {
	cJSON *sent;			/* the last "sent" line of (job, key) */
};

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool same_req(const cJSON *a, const cJSON *b)
{
	const char *ja = jstr(a, "job"), *jb = jstr(b, "job"), *ka = jstr(a, "key"), *kb = jstr(b, "key");

	return ka && kb && strcmp(ka, kb) == 0 && (ja ? jb && strcmp(ja, jb) == 0 : !jb);
}

/*
 * The "unknown" line for an open "sent" line.  Its event id is derived from
 * the "sent" line's, so a team mount that took the request over and wrote
 * its own "unknown" row (cache/team_db.c, reserve) wrote the same row.
 */
static int write_unknown(struct ledger *l, const cJSON *sent)
{
	const cJSON *cost = cJSON_GetObjectItemCaseSensitive(sent, "cost_usd");
	const cJSON *att = cJSON_GetObjectItemCaseSensitive(sent, "attempt");
	const char *sent_id = jstr(sent, "event_id");
	char event[LEDGER_EVENT_LEN] = "";
	struct ledger_rec r = {
		.event_id = event, .path = jstr(sent, "path"),
		.job = jstr(sent, "job"), .key = jstr(sent, "key"), .model = jstr(sent, "model"),
		.route = jstr(sent, "route"), .size = jstr(sent, "size"), .aspect = jstr(sent, "aspect"),
		.prompt_hash = jstr(sent, "prompt_hash"), .outcome = "unknown",
		.reason = "the daemon stopped while the request was on the wire: counted as billed",
		.http_status = -1, .latency_s = -1, .billed = true,
		.cost_usd = cJSON_IsNumber(cost) ? cost->valuedouble : -1,
		.attempt = cJSON_IsNumber(att) ? (int)att->valuedouble : 0,
		.fallback = jstr(sent, "fallback"), .in_tokens = -1, .out_tokens = -1,
		.cost_basis = "per-image",	/* no answer, no usage: the estimate reserved */
	};

	/* a "sent" line from before lines had ids: none, as the team's row for it has none */
	if (sent_id && strlen(sent_id) + sizeof(LEDGER_UNKNOWN_SUFFIX) <= sizeof(event))
		snprintf(event, sizeof(event), "%s" LEDGER_UNKNOWN_SUFFIX, sent_id);
	return ledger_append(l, &r);
}

int ledger_settle_hidden(struct ledger *l, bool (*pending)(const char *job, const char *key, void *arg),
			 void *arg)
{
	FILE *fp;
	char *buf = NULL;
	size_t cap = 0, nopen = 0, capopen = 0;
	ssize_t n;
	struct open_req *open_reqs = NULL;
	int written = 0;

	if (!l->path)
		return -1;
	fp = fopen(l->path, "re");
	if (!fp)
		return -1;
	while ((n = getline(&buf, &cap, fp)) >= 0) {
		cJSON *o = cJSON_ParseWithLength(buf, (size_t)n);
		const char *outcome = o ? jstr(o, "outcome") : NULL, *route = o ? jstr(o, "route") : NULL;
		size_t i;

		if (!outcome || !jstr(o, "key") || (route && strcmp(route, "batch") == 0)) {
			cJSON_Delete(o);	/* torn, foreign, or a batch item */
			continue;
		}
		for (i = 0; i < nopen && !same_req(open_reqs[i].sent, o); i++)
			;
		if (i < nopen) {		/* the next line of an open request closes it */
			cJSON_Delete(open_reqs[i].sent);
			open_reqs[i] = open_reqs[--nopen];
		}
		if (strcmp(outcome, "sent") != 0 && strcmp(outcome, "polled") != 0) {
			cJSON_Delete(o);
			continue;
		}
		if (nopen == capopen) {
			struct open_req *grown = realloc(open_reqs, (capopen ? capopen * 2 : 16) * sizeof(*grown));

			if (!grown) {
				cJSON_Delete(o);
				written = -1;
				break;
			}
			open_reqs = grown;
			capopen = capopen ? capopen * 2 : 16;
		}
		open_reqs[nopen++].sent = o;
	}
	free(buf);
	fclose(fp);
	for (size_t i = 0; i < nopen; i++) {
		const cJSON *s = open_reqs[i].sent;

		if (written >= 0 && !(pending && pending(jstr(s, "job"), jstr(s, "key"), arg)))
			written = write_unknown(l, s) < 0 ? -1 : written + 1;
		cJSON_Delete(open_reqs[i].sent);
	}
	free(open_reqs);
	return written;
}

/* --- a mirror set after the first lines ------------------------------------ */

int ledger_set_mirror(struct ledger *l, void (*mirror)(void *arg, const struct ledger_rec *r,
							const char *json_line), void *arg)
{
	FILE *fp;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	pthread_mutex_lock(&l->mu);
	l->mirror = mirror;
	l->mirror_arg = arg;
	fp = l->path && l->opened_at >= 0 ? fopen(l->path, "re") : NULL;
	if (!fp || fseeko(fp, l->opened_at, SEEK_SET) < 0)
		rc = -1;
	while (fp && rc == 0 && (n = getline(&buf, &cap, fp)) > 0) {
		cJSON *o = cJSON_ParseWithLength(buf, (size_t)n);
		const cJSON *cost = cJSON_GetObjectItemCaseSensitive(o, "cost_usd");
		const cJSON *att = cJSON_GetObjectItemCaseSensitive(o, "attempt");
		const char *when = jstr(o, "time");
		struct ledger_rec r = {
			.event_id = jstr(o, "event_id") ? jstr(o, "event_id") : "",
			.job = jstr(o, "job"), .path = jstr(o, "path"), .key = jstr(o, "key"),
			.model = jstr(o, "model"), .route = jstr(o, "route"), .size = jstr(o, "size"),
			.aspect = jstr(o, "aspect"), .outcome = jstr(o, "outcome"), .reason = jstr(o, "reason"),
			.http_status = -1, .latency_s = -1, .in_tokens = -1, .out_tokens = -1,
			.billed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "billed")),
			.cost_usd = cJSON_IsNumber(cost) ? cost->valuedouble : -1,
			.attempt = cJSON_IsNumber(att) ? (int)att->valuedouble : 0,
			.cost_basis = jstr(o, "cost_basis"),
		};

		r.time = when ? parse_time(when) : (time_t)-1;
		if (r.time == (time_t)-1)
			r.time = (time_t)l->clk->wall(l->clk->ctx);
		if (o && r.outcome) {
			buf[strcspn(buf, "\n")] = '\0';
			mirror(arg, &r, buf);
		}
		cJSON_Delete(o);
	}
	free(buf);
	if (fp)
		fclose(fp);
	pthread_mutex_unlock(&l->mu);
	return rc;
}
