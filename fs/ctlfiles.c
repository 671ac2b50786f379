/*
 * ctlfiles.c - see ctlfiles.h.  The formats are bananactl's input and are
 * documented in bananafs(1): jobs is JSON Lines, stats one JSON object.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "api/keycheck.h"
#include "api/models.h"
#include "api/prices.h"
#include "cache/beneath.h"
#include "cache/prompt.h"
#include "fs/creds.h"
#include "fs/ctlfiles.h"
#include "fs/jobs.h"
#include "fs/status.h"
#include "fs/tree.h"

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
	cJSON_AddStringToObject(o, "status", prompt_state_name(s->state));
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
	if (status_retry_at(s, when, sizeof(when)))
		cJSON_AddStringToObject(o, "retry_at", when);	/* a 429's pause ends */
	else
		cJSON_AddNullToObject(o, "retry_at");
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

/* What the prompts now in "dry-run" would cost: their total, and how many have no price. */
struct dry_total {
	int prompts, unpriced;
	double usd;
};

static void add_dry(struct prompt_status *s, void *arg)
{
	struct dry_total *t = arg;
	if (s->state != PS_DRY_RUN)
		return;
	t->prompts++;
	if (s->cost_usd >= 0)
		t->usd += s->cost_usd;
	else
		t->unpriced++;
}

static char *render_stats(struct bfs *b, const struct writer *caller)
{
	struct dry_total dry = { 0 };
	struct fetch_stats st;
	double today, total, reserved;
	int queued, running, waiting, done, failed;
	fetch_stats_get(&b->fetch, &st);
	budget_snapshot(&b->fetch.budget, &today, &total, &reserved);
	jobs_counts(b->jobs, &queued, &running, &waiting, &done, &failed);
	status_foreach(add_dry, &dry);

	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	/* The store is the owner's folder: other users are not told where it is. */
	cJSON_AddStringToObject(o, "store", !caller || creds_is_daemon(caller) || caller->uid == 0 ?
				b->store.dir : "");
	cJSON_AddStringToObject(o, "mount", b->mountpoint ? b->mountpoint : "");
	cJSON_AddStringToObject(o, "endpoint", b->cfg.endpoint);
	cJSON_AddBoolToObject(o, "offline", b->offline);
	cJSON_AddBoolToObject(o, "dry_run", b->cfg.dry_run);
	cJSON_AddStringToObject(o, "fuse_passthrough", b->passthrough ? b->passthrough : "");
	cJSON_AddNumberToObject(o, "passthrough_files", atomic_load(&b->passthrough_files));
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
	cJSON_AddNumberToObject(o, "dry_run_prompts", dry.prompts);
	cJSON_AddNumberToObject(o, "dry_run_usd", dry.usd);
	cJSON_AddNumberToObject(o, "dry_run_unpriced", dry.unpriced);
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

/*
 * .bananafs/doctor: the daemon checks its own key and endpoint (what a
 * prompt will use) with one free models.get call, in bananactl doctor's
 * "ok"/"FAIL" lines.  The key itself is never written.
 */
static char *render_doctor(struct bfs *b)
{
	struct api_endpoint ep = b->fetch.google;
	struct key_check kc;
	struct strbuf sb = { 0 };
	char line[1024];

	struct http_opts o = b->fetch.http;
	if (o.timeout_s <= 0 || o.timeout_s > 30)
		o.timeout_s = 30;	/* a models.get, not an image: do not hold the reader for minutes */
	api_key_check(&o, &ep, models_count() ? models_at(0)->id : "gemini-3-pro-image", &kc);
	if (b->cfg.api_key && b->cfg.api_key[0]) {
		snprintf(line, sizeof(line), "ok   the mount has an API key (%zu characters; not shown)\n",
			 strlen(b->cfg.api_key));
		sb_add(&sb, line);
	}
	snprintf(line, sizeof(line), "%s %s (asked by the mount, with its own key)\n", kc.ok ? "ok  " : "FAIL",
		 kc.what);
	sb_add(&sb, line);
	if (!kc.ok && kc.next[0]) {
		snprintf(line, sizeof(line), "     next: %s\n", kc.next);
		sb_add(&sb, line);
	}
	if (b->cfg.gateway_url && b->cfg.gateway_url[0]) {
		snprintf(line, sizeof(line), "     note: the gateway %s is not checked here; write a prompt with "
			 "route: gateway to try it\n", b->cfg.gateway_url);
		sb_add(&sb, line);
	}
	if (sb.failed) {
		free(sb.p);
		errno = ENOMEM;
		return NULL;
	}
	return sb.p;
}

/*
 * Keeps the JSON lines whose "path" names a prompt the caller may read
 * (fs/creds.h), for a caller other than the mount's owner: a shared mount
 * shows each user their own jobs and ledger lines.  Lines without a path
 * are the owner's.  Frees text.
 */
static char *only_callers_lines(struct bfs *b, char *text, const struct writer *caller)
{
	if (!text || !caller || creds_is_daemon(caller) || caller->uid == 0)
		return text;
	struct strbuf sb = { 0 };
	char *save = NULL;
	sb_add(&sb, "");
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cJSON *o = cJSON_Parse(line);
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "path");
		if (cJSON_IsString(p) && creds_may_read(b->tree_fd, p->valuestring, caller)) {
			sb_add(&sb, line);
			sb_add(&sb, "\n");
		}
		cJSON_Delete(o);
	}
	free(text);
	if (sb.failed) {
		free(sb.p);
		errno = ENOMEM;
		return NULL;
	}
	return sb.p;
}

char *ctl_render(struct bfs *b, const char *name, size_t *len, const struct writer *caller)
{
	char *text = NULL;
	if (!strcmp(name, "jobs")) {
		struct strbuf sb = { 0 };
		status_foreach(job_line, &sb);
		text = sb.failed ? (free(sb.p), NULL) : (sb.p ? sb.p : strdup(""));
		text = only_callers_lines(b, text, caller);
	} else if (!strcmp(name, "stats")) {
		text = render_stats(b, caller);
	} else if (!strcmp(name, "prices")) {
		text = prices_render();
	} else if (!strcmp(name, "config")) {
		text = config_render(&b->cfg);
	} else if (!strcmp(name, "ledger.jsonl")) {
		text = only_callers_lines(b, read_ledger(b), caller);
	} else if (!strcmp(name, "doctor")) {
		text = render_doctor(b);
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

bool ctl_is_live(const char *name)
{
	return !strcmp(name, "doctor") || !strcmp(name, "control");
}

/* True when the caller of this FUSE request could write a file of st (as the kernel would judge). */
static bool caller_may_write(const struct stat *st, const struct writer *w)
{
	if (w->uid == 0)
		return true;
	if (w->uid == st->st_uid)
		return st->st_mode & S_IWUSR;
	bool in_group = w->gid == st->st_gid;
	for (int i = 0; i < w->ngroups; i++)
		in_group |= w->groups[i] == st->st_gid;
	return st->st_mode & (in_group ? S_IWGRP : S_IWOTH);
}

/* One "run REL" or "cancel REL" line; 0 or -errno. */
static int ctl_line(struct bfs *b, char *line, const struct writer *caller)
{
	char *sp = strchr(line, ' ');
	if (!sp)
		return -EINVAL;
	*sp = '\0';
	const char *verb = line, *rel = sp + 1;
	if (strcmp(verb, "run") && strcmp(verb, "cancel"))
		return -EINVAL;
	/* Canonical paths only: they are the keys of the job table. */
	if (!*rel || rel[0] == '/' || strlen(rel) >= PATH_MAX || strstr(rel, "//") ||
	    !strncmp(rel, "./", 2) || !strncmp(rel, "../", 3) || strstr(rel, "/./") || strstr(rel, "/../"))
		return -EINVAL;
	char abs[PATH_MAX + 1];
	struct node n;
	snprintf(abs, sizeof(abs), "/%s", rel);
	tree_classify(abs, &n);
	const char *base = strrchr(rel, '/');
	if (n.kind != NODE_USER || !prompt_name_triggers(base ? base + 1 : rel))
		return -ENOENT;
	int fd = open_beneath(b->tree_fd, rel, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP || errno == EXDEV ? -ENOENT : -errno;
	struct stat st;
	int rc = fstat(fd, &st) < 0 ? -errno : 0;
	close(fd);
	if (rc)
		return rc;
	if (!S_ISREG(st.st_mode))
		return -ENOENT;
	if (!caller_may_write(&st, caller))
		return -EACCES;
	return !strcmp(verb, "run") ? jobs_run(b->jobs, rel, caller) : jobs_cancel(b->jobs, rel);
}

int ctl_command(struct bfs *b, const char *buf, size_t len, const struct writer *caller)
{
	char line[PATH_MAX + 16];
	size_t off = 0;
	while (off < len) {
		size_t n = 0;
		while (off + n < len && buf[off + n] != '\n')
			n++;
		if (n >= sizeof(line))
			return -ENAMETOOLONG;
		memcpy(line, buf + off, n);
		line[n] = '\0';
		off += n + (off + n < len);
		while (n > 0 && isspace((unsigned char)line[n - 1]))
			line[--n] = '\0';
		if (n == 0)
			continue;
		int rc = ctl_line(b, line, caller);
		if (rc)
			return rc;
	}
	return (int)len;
}
