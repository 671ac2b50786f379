/*
 * cmd_status.c - "bananactl status [path ...]": the jobs of a mount from
 * .bananafs/jobs, filtered to paths, and a summary line from stats.
 */
#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bananactl/ctl.h"

struct row {
	char *path, *status, *cost, *error;
};

static const char *
jstr(const cJSON *o, const char *name, const char *dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : dflt;
}

static double
jnum(const cJSON *o, const char *name, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* True when job path p is rel itself or lies below the folder rel. */
static bool
path_selected(const char *p, char **rels, int nrel)
{
	if (nrel == 0)
		return true;
	for (int i = 0; i < nrel; i++) {
		size_t l = strlen(rels[i]);

		if (l == 0 || strcmp(p, rels[i]) == 0)
			return true;
		if (strncmp(p, rels[i], l) == 0 && p[l] == '/')
			return true;
	}
	return false;
}

static void
print_summary(const cJSON *st)
{
	double bd = jnum(st, "budget_daily_usd", -1), bt = jnum(st, "budget_total_usd", -1);
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(st, "offline");
	const cJSON *dry = cJSON_GetObjectItemCaseSensitive(st, "dry_run");
	char daily[32] = "none", total[32] = "none";

	if (bd >= 0)
		snprintf(daily, sizeof(daily), "$%.2f", bd);
	if (bt >= 0)
		snprintf(total, sizeof(total), "$%.2f", bt);
	printf("%.0f queued, %.0f running, %.0f waiting, %.0f done, %.0f failed, %.0f refused; "
	       "cache %.0f hits, %.0f misses, %.0f coalesced; spent $%.4f today, $%.4f total "
	       "(%sbudget %s a day, %s in all)%s%s\n",
	       jnum(st, "queued", 0), jnum(st, "running", 0), jnum(st, "waiting", 0),
	       jnum(st, "done", 0), jnum(st, "failed", 0), jnum(st, "refused", 0),
	       jnum(st, "hits", 0), jnum(st, "misses", 0), jnum(st, "coalesced", 0),
	       jnum(st, "spent_today_usd", 0), jnum(st, "spent_total_usd", 0),
	       cJSON_IsString(cJSON_GetObjectItemCaseSensitive(st, "team_db")) ? "team " : "", daily, total,
	       cJSON_IsTrue(off) ? "; offline (bundled emulator)" : "",
	       cJSON_IsTrue(dry) ? "; dry run (nothing is sent)" : "");
	if (jnum(st, "dry_run_prompts", 0) > 0)
		printf("dry run: %.0f prompts priced, not sent: $%.4f; \"bananactl run PATH...\" sends them\n",
		       jnum(st, "dry_run_prompts", 0), jnum(st, "dry_run_usd", 0));
}

int
cmd_status(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { NULL, 0, NULL, 0 } };
	struct row *rows = NULL;
	char **rels = NULL, *path = NULL, *text = NULL, *line, *save = NULL;
	int nrows = 0, nrel = 0, ch, rc = 1, w[3] = { 4, 6, 4 };
	cJSON *st = NULL;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1)
		usage();
	argc -= optind;
	argv += optind;
	if (ctl_need_mount(c, argc > 0 ? argv[0] : NULL) < 0)
		return 1;

	rels = xmalloc(sizeof(*rels) * (size_t)(argc + 1));
	for (int i = 0; i < argc; i++) {
		if ((rels[nrel] = ctl_rel_path(c, argv[i])) == NULL)
			goto out;
		nrel++;
	}
	path = ctl_mount_file(c, "jobs");
	if ((text = ctl_read_file(path, NULL)) == NULL) {
		warn("%s", path);
		goto out;
	}
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cJSON *j = cJSON_Parse(line);
		const cJSON *cost;
		struct row *r, *nr;

		if (!cJSON_IsObject(j)) {
			warnx("%s: a line is not a JSON object", path);
			cJSON_Delete(j);
			continue;
		}
		if (!path_selected(jstr(j, "path", ""), rels, nrel)) {
			cJSON_Delete(j);
			continue;
		}
		if ((nr = realloc(rows, sizeof(*rows) * (size_t)(nrows + 1))) == NULL)
			err(1, "realloc");
		rows = nr;
		r = &rows[nrows++];
		r->path = xstrdup(jstr(j, "path", "?"));
		if (jstr(j, "retry_at", NULL))	/* a 429's pause: say when it ends */
			r->status = xasprintf("%s until %s", jstr(j, "status", "?"), jstr(j, "retry_at", ""));
		else
			r->status = xstrdup(jstr(j, "status", "?"));
		cost = cJSON_GetObjectItemCaseSensitive(j, "cost_usd");
		r->cost = cJSON_IsNumber(cost) ? xasprintf("$%.4f", cost->valuedouble) : xstrdup("-");
		r->error = xstrdup(jstr(j, "error", ""));
		cJSON_Delete(j);
		if ((int)strlen(r->path) > w[0])
			w[0] = (int)strlen(r->path);
		if ((int)strlen(r->status) > w[1])
			w[1] = (int)strlen(r->status);
		if ((int)strlen(r->cost) > w[2])
			w[2] = (int)strlen(r->cost);
	}
	if (nrows > 0) {
		printf("%-*s  %-*s  %*s  %s\n", w[0], "PATH", w[1], "STATUS", w[2], "COST", "ERROR");
		for (int i = 0; i < nrows; i++)
			printf("%-*s  %-*s  %*s  %s\n", w[0], rows[i].path, w[1], rows[i].status,
			       w[2], rows[i].cost, rows[i].error);
	} else {
		printf("no jobs%s\n", nrel ? " under the given paths" : "");
	}
	if ((st = ctl_read_stats(c)) == NULL)
		goto out;
	print_summary(st);
	{
		const cJSON *db = cJSON_GetObjectItemCaseSensitive(st, "team_db");

		if (cJSON_IsString(db))
			ctl_team_status(db->valuestring);
	}
	rc = 0;
out:
	cJSON_Delete(st);
	for (int i = 0; i < nrows; i++) {
		free(rows[i].path);
		free(rows[i].status);
		free(rows[i].cost);
		free(rows[i].error);
	}
	free(rows);
	for (int i = 0; i < nrel; i++)
		free(rels[i]);
	free(rels);
	free(text);
	free(path);
	return rc;
}
