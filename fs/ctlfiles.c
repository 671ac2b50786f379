/*
 * ctlfiles.c - see ctlfiles.h.  The formats are bananactl's input and are
 * documented in bananafs(1): jobs is JSON Lines, stats one JSON object.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "api/prices.h"
#include "fs/ctlfiles.h"
#include "fs/jobs.h"
#include "fs/status.h"

struct strbuf {
	char *p;
	size_t len, cap;
	int failed;
};

static void sb_add(struct strbuf *sb, const char *s)
{
	size_t n = strlen(s);
	if (sb->failed)
		return;
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = (sb->cap ? sb->cap * 2 : 4096);
		while (cap < sb->len + n + 1)
			cap *= 2;
		char *np = realloc(sb->p, cap);
		if (!np) {
			sb->failed = 1;
			return;
		}
		sb->p = np;
		sb->cap = cap;
	}
	memcpy(sb->p + sb->len, s, n + 1);
	sb->len += n;
}

static void iso_time(time_t t, char *buf, size_t len)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void job_line(struct prompt_status *s, void *arg)
{
	char when[32];
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddStringToObject(o, "path", s->path);
	cJSON_AddStringToObject(o, "status", s->status);
	if (s->key[0])
		cJSON_AddStringToObject(o, "key", s->key);
	else
		cJSON_AddNullToObject(o, "key");
	if (s->cost_usd >= 0)
		cJSON_AddNumberToObject(o, "cost_usd", s->cost_usd);
	else
		cJSON_AddNullToObject(o, "cost_usd");
	if (s->error)
		cJSON_AddStringToObject(o, "error", s->error);
	else
		cJSON_AddNullToObject(o, "error");
	cJSON_AddStringToObject(o, "model", s->model);
	cJSON_AddStringToObject(o, "size", s->size);
	iso_time(s->updated, when, sizeof(when));
	cJSON_AddStringToObject(o, "updated", when);
	char *line = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (line) {
		sb_add(arg, line);
		sb_add(arg, "\n");
		free(line);
	}
}

static void add_limit(cJSON *o, const char *name, double v)
{
	if (v >= 0)
		cJSON_AddNumberToObject(o, name, v);
	else
		cJSON_AddNullToObject(o, name);
}

static char *render_stats(struct bfs *b)
{
	struct fetch_stats st;
	double today, total, reserved;
	int queued, running, waiting, done, failed;
	fetch_stats_get(&b->fetch, &st);
	budget_snapshot(&b->fetch.budget, &today, &total, &reserved);
	jobs_counts(b->jobs, &queued, &running, &waiting, &done, &failed);

	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "store", b->store.dir);
	cJSON_AddStringToObject(o, "mount", b->mountpoint ? b->mountpoint : "");
	cJSON_AddStringToObject(o, "endpoint", b->cfg.endpoint);
	cJSON_AddBoolToObject(o, "offline", b->offline);
	cJSON_AddBoolToObject(o, "dry_run", b->cfg.dry_run);
	cJSON_AddNumberToObject(o, "hits", st.hits);
	cJSON_AddNumberToObject(o, "misses", st.misses);
	cJSON_AddNumberToObject(o, "coalesced", st.coalesced);
	cJSON_AddNumberToObject(o, "sent", st.sent);
	cJSON_AddNumberToObject(o, "ok", st.ok);
	cJSON_AddNumberToObject(o, "failed", st.failed);
	cJSON_AddNumberToObject(o, "refused", st.refused);
	cJSON_AddNumberToObject(o, "queued", queued);
	cJSON_AddNumberToObject(o, "running", running);
	cJSON_AddNumberToObject(o, "waiting", waiting);
	cJSON_AddNumberToObject(o, "done", done);
	cJSON_AddNumberToObject(o, "failed_jobs", failed);
	cJSON_AddNumberToObject(o, "spent_today_usd", today);
	cJSON_AddNumberToObject(o, "spent_total_usd", total);
	cJSON_AddNumberToObject(o, "reserved_usd", reserved);
	add_limit(o, "budget_daily_usd", b->cfg.budget_daily_usd);
	add_limit(o, "budget_total_usd", b->cfg.budget_total_usd);
	if (b->cfg.team_db) {
		/* The conninfo holds no password (config.c refuses one). */
		cJSON_AddStringToObject(o, "team_db", b->cfg.team_db);
		cJSON_AddStringToObject(o, "team_mount", b->team.owner);
		cJSON_AddBoolToObject(o, "team_online", team_db_online(&b->team));
	}
	char *text = cJSON_Print(o);
	cJSON_Delete(o);
	if (!text)
		return NULL;
	size_t n = strlen(text);
	char *with_nl = realloc(text, n + 2);
	if (!with_nl) {
		free(text);
		return NULL;
	}
	memcpy(with_nl + n, "\n", 2);
	return with_nl;
}

static char *read_ledger(struct bfs *b)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/ledger.jsonl", b->store.dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? strdup("") : NULL;
	struct strbuf sb = { 0 };
	char chunk[65536 + 1];
	ssize_t r;
	while ((r = read(fd, chunk, sizeof(chunk) - 1)) > 0) {
		chunk[r] = '\0';
		sb_add(&sb, chunk);
	}
	close(fd);
	if (sb.failed || r < 0) {
		free(sb.p);
		errno = EIO;
		return NULL;
	}
	return sb.p ? sb.p : strdup("");
}

char *ctl_render(struct bfs *b, const char *name, size_t *len)
{
	char *text = NULL;
	if (!strcmp(name, "jobs")) {
		struct strbuf sb = { 0 };
		status_foreach(job_line, &sb);
		text = sb.failed ? (free(sb.p), NULL) : (sb.p ? sb.p : strdup(""));
	} else if (!strcmp(name, "stats")) {
		text = render_stats(b);
	} else if (!strcmp(name, "prices")) {
		text = prices_render();
	} else if (!strcmp(name, "config")) {
		text = config_render(&b->cfg);
	} else if (!strcmp(name, "ledger.jsonl")) {
		text = read_ledger(b);
	} else {
		errno = ENOENT;
		return NULL;
	}
	if (!text) {
		if (!errno)
			errno = ENOMEM;
		return NULL;
	}
	*len = strlen(text);
	return text;
}
