/*
 * cmd_cost.c - reading the ledger: "bananactl cost" sums what was billed,
 * "bananactl ledger" shows every line.  A torn line (a crash mid-append) is
 * reported and skipped, never fatal.
 */
#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/team_db.h"
#include "tools/bananactl/ctl.h"
#include "tools/bananactl/parse.h"

/* Calls fn for every valid line of the ledger; -1 after a message when it cannot be read. */
static int
ledger_each(struct ctl *c, void (*fn)(const cJSON *rec, const char *raw, void *arg), void *arg)
{
	char *path, *text, *line, *next;
	long lineno = 0;

	if (ctl_resolve(c, NULL) < 0)
		return -1;
	path = ctl_ledger_path(c);
	if ((text = ctl_read_file(path, NULL)) == NULL) {
		warn("%s", path);
		free(path);
		return -1;
	}
	for (line = text; *line != '\0'; line = next) {
		cJSON *rec;

		lineno++;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		else
			next = line + strlen(line);
		if (line[strspn(line, " \t\r")] == '\0')
			continue;
		rec = cJSON_Parse(line);
		if (!cJSON_IsObject(rec))
			warnx("ledger line %ld is not valid JSON (torn write?)", lineno);
		else
			fn(rec, line, arg);
		cJSON_Delete(rec);
	}
	free(text);
	free(path);
	return 0;
}

static const char *
jstr(const cJSON *o, const char *name, const char *dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* ---- cost ---------------------------------------------------------------- */

struct group {
	char *name;
	double usd;
	long lines;
};

struct cost {
	const char *since;		/* "YYYY-MM-DD" or NULL */
	const char *by;			/* "day", "model", "route" */
	struct group *g;
	int ng;
	double total;
	long lines;
	bool gateway;			/* a gateway line was summed: label its price */
	double simulated;		/* of total: answered by the bundled emulator, billed by nobody */
	long simulated_lines;
};

static void
cost_line(const cJSON *rec, const char *raw, void *arg)
{
	struct cost *k = arg;
	const cJSON *cost = cJSON_GetObjectItemCaseSensitive(rec, "cost_usd");
	const char *time = jstr(rec, "time", ""), *name;
	char day[11];
	int i;

	(void)raw;
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "billed")) || !cJSON_IsNumber(cost))
		return;
	snprintf(day, sizeof(day), "%s", time);
	/* ISO-8601 UTC times compare as strings. */
	if (k->since != NULL && strcmp(day, k->since) < 0)
		return;
	if (strcmp(k->by, "day") == 0)
		name = day[0] ? day : "?";
	else
		name = jstr(rec, k->by, "?");
	if (strcmp(jstr(rec, "route", ""), "gateway") == 0)
		k->gateway = true;
	for (i = 0; i < k->ng; i++)
		if (strcmp(k->g[i].name, name) == 0)
			break;
	if (i == k->ng) {
		struct group *ng = realloc(k->g, sizeof(*ng) * (size_t)(k->ng + 1));

		if (ng == NULL)
			err(1, "realloc");
		k->g = ng;
		k->g[i] = (struct group){ xstrdup(name), 0, 0 };
		k->ng++;
	}
	k->g[i].usd += cost->valuedouble;
	k->g[i].lines++;
	k->total += cost->valuedouble;
	k->lines++;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "simulated"))) {
		k->simulated += cost->valuedouble;
		k->simulated_lines++;
	}
}

static int
group_cmp(const void *a, const void *b)
{
	return strcmp(((const struct group *)a)->name, ((const struct group *)b)->name);
}

/* The mount's priced, unsent prompts (.bananafs/stats), when a dry run left any. */
static void
dry_run_total(struct ctl *c)
{
	cJSON *st = c->mount != NULL ? ctl_read_stats(c) : NULL;
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(st, "dry_run_prompts");
	const cJSON *usd = cJSON_GetObjectItemCaseSensitive(st, "dry_run_usd");
	const cJSON *unp = cJSON_GetObjectItemCaseSensitive(st, "dry_run_unpriced");

	if (cJSON_IsNumber(n) && n->valueint > 0 && cJSON_IsNumber(usd)) {
		printf("dry run: %d prompt%s priced, not sent: $%.4f", n->valueint, n->valueint == 1 ? "" : "s",
		       usd->valuedouble);
		if (cJSON_IsNumber(unp) && unp->valueint > 0)
			printf(" plus %d without a price", unp->valueint);
		printf("; \"bananactl run PATH...\" sends them\n");
	}
	cJSON_Delete(st);
}

/*
 * The team's billed rows (bananafs.ledger) since the UTC day $1 (NULL: all),
 * as the local table takes the ledger's billed lines: "unknown" rows (a
 * dead machine's request that may have been billed) count.
 */
#define TEAM_BILLED_ROWS " FROM bananafs.ledger WHERE billed AND cost_usd IS NOT NULL AND ($1::date IS NULL" \
	" OR time >= $1::date::timestamp AT TIME ZONE 'UTC')"
#define TEAM_SIMULATED " (line->>'simulated')::boolean IS TRUE"

/* --team: the same table from the team's rows, every mount's billed lines. */
static int
team_cost(struct ctl *c, const char *by, const char *since)
{
	const char *p[2] = { since, by };
	char *db = ctl_team_db(c), err[512];
	double total = 0, simulated = 0;
	long lines = 0, simulated_rows = 0;
	PGresult *r;
	int i, n, w = 5;

	if (db == NULL) {
		warnx("--team: no team_db in the mount's settings or the config");
		return 1;
	}
	r = team_db_query_once(db,
			       "SELECT CASE $2 WHEN 'day' THEN to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
			       " WHEN 'model' THEN coalesce(model, '?') ELSE coalesce(route, '?') END,"
			       " sum(cost_usd), count(*), coalesce(sum(cost_usd) FILTER (WHERE" TEAM_SIMULATED
			       "), 0), count(*) FILTER (WHERE" TEAM_SIMULATED ")" TEAM_BILLED_ROWS
			       " GROUP BY 1 ORDER BY 1",
			       2, p, err, sizeof(err));
	free(db);
	if (r == NULL) {
		warnx("--team: %s", err);
		return 1;
	}
	n = PQntuples(r);
	for (i = 0; i < n; i++)
		if ((int)strlen(PQgetvalue(r, i, 0)) > w)
			w = (int)strlen(PQgetvalue(r, i, 0));
	printf("%-*s  %12s  %6s\n", w, by, "cost_usd", "billed");
	for (i = 0; i < n; i++) {
		printf("%-*s  %12.4f  %6s\n", w, PQgetvalue(r, i, 0), atof(PQgetvalue(r, i, 1)),
		       PQgetvalue(r, i, 2));
		total += atof(PQgetvalue(r, i, 1));
		lines += atol(PQgetvalue(r, i, 2));
		simulated += atof(PQgetvalue(r, i, 3));
		simulated_rows += atol(PQgetvalue(r, i, 4));
	}
	printf("%-*s  %12.4f  %6ld\n", w, "total", total, lines);
	printf("(the team's billed rows, every mount%s%s%s)\n", since ? ", since " : "",
	       since ? since : "", since ? " UTC" : "");
	if (simulated_rows > 0)
		printf("simulated: %.4f of it (%ld rows) was answered by the bundled emulator: "
		       "simulated spend, nobody bills it\n", simulated, simulated_rows);
	PQclear(r);
	return 0;
}

/* In team mode, the team's total beside the mount's own table. */
static void
team_total_line(struct ctl *c, const char *since)
{
	const char *p[1] = { since };
	char *db = ctl_team_db(c), err[512];
	PGresult *r;

	if (db == NULL)
		return;
	r = team_db_query_once(db, "SELECT coalesce(sum(cost_usd), 0), count(*)" TEAM_BILLED_ROWS, 1, p,
			       err, sizeof(err));
	free(db);
	if (r == NULL) {
		printf("team: %s\n", err);
		return;
	}
	printf("team: %.4f billed by every mount of the team (%s row%s%s%s); \"bananactl cost --team\" "
	       "shows them\n", atof(PQgetvalue(r, 0, 0)), PQgetvalue(r, 0, 1),
	       strcmp(PQgetvalue(r, 0, 1), "1") ? "s" : "", since ? " since " : "", since ? since : "");
	PQclear(r);
}

int
cmd_cost(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "by", required_argument, NULL, 'b' },
		{ "team", no_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const bys[] = { "day", "model", "route" };
	struct cost k = { .by = "day" };
	int ch, i, w = 5, rc = 1;
	bool team = false;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (parse_date(optarg) < 0) {
				warnx("--since wants a date YYYY-MM-DD, not \"%s\"", optarg);
				return 1;
			}
			k.since = optarg;
			break;
		case 'b':
			if ((i = ctl_pick_word("grouping", optarg, bys, 3)) < 0)
				return 1;
			k.by = bys[i];
			break;
		case 't':
			team = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (team)
		return team_cost(c, k.by, k.since);
	if (ledger_each(c, cost_line, &k) < 0)
		goto out;
	if (k.ng > 0)	/* nothing billed yet (a dry run): k.g is NULL, which qsort may not take */
		qsort(k.g, (size_t)k.ng, sizeof(*k.g), group_cmp);
	for (i = 0; i < k.ng; i++)
		if ((int)strlen(k.g[i].name) > w)
			w = (int)strlen(k.g[i].name);
	printf("%-*s  %12s  %6s\n", w, k.by, "cost_usd", "billed");
	for (i = 0; i < k.ng; i++)
		printf("%-*s  %12.4f  %6ld\n", w, k.g[i].name, k.g[i].usd, k.g[i].lines);
	printf("%-*s  %12.4f  %6ld\n", w, "total", k.total, k.lines);
	if (k.since != NULL)
		printf("(billed lines since %s UTC)\n", k.since);
	if (k.simulated_lines > 0)
		printf("simulated: %.4f of it (%ld lines) was answered by the bundled emulator: "
		       "simulated spend, nobody bills it\n", k.simulated, k.simulated_lines);
	printf("note: costs are the ledger's estimates from the price table; gateway costs are "
	       "the provider's prices as entered by you, not Google's%s\n",
	       k.gateway ? " (gateway lines are included above)" : "");
	team_total_line(c, k.since);
	dry_run_total(c);
	rc = 0;
out:
	for (i = 0; i < k.ng; i++)
		free(k.g[i].name);
	free(k.g);
	return rc;
}

/* ---- ledger -------------------------------------------------------------- */

#define LCOLS 9

struct ltable {
	bool json;
	char *(*cell)[LCOLS];
	int n;
};

static void
ledger_line(const cJSON *rec, const char *raw, void *arg)
{
	struct ltable *t = arg;
	const cJSON *cost = cJSON_GetObjectItemCaseSensitive(rec, "cost_usd");
	const cJSON *http = cJSON_GetObjectItemCaseSensitive(rec, "http_status");
	const char *billed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "billed")) ? "" : "~";
	void *nc;
	char **row;

	if (t->json) {
		puts(raw);
		return;
	}
	if ((nc = realloc(t->cell, sizeof(*t->cell) * (size_t)(t->n + 1))) == NULL)
		err(1, "realloc");
	t->cell = nc;
	row = t->cell[t->n++];
	row[0] = xstrdup(jstr(rec, "time", "-"));
	row[1] = xstrdup(jstr(rec, "outcome", "-"));
	row[2] = xstrdup(jstr(rec, "model", "-"));
	row[3] = xstrdup(jstr(rec, "size", "-"));
	row[4] = xstrdup(jstr(rec, "route", "-"));
	/* "~" marks an estimate that was not (or not yet) money spent. */
	row[5] = cJSON_IsNumber(cost) ? xasprintf("%s%.4f", billed, cost->valuedouble) : xstrdup("-");
	/* how the cost was settled: "usage" (the answer's tokens) or "per-image" */
	row[6] = xstrdup(jstr(rec, "cost_basis", "-"));
	row[7] = cJSON_IsNumber(http) ? xasprintf("%d", http->valueint) : xstrdup("-");
	row[8] = xasprintf("%.8s", jstr(rec, "key", "-"));
}

int
cmd_ledger(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const head[LCOLS] = { "TIME", "OUTCOME", "MODEL", "SIZE", "ROUTE", "COST", "BASIS", "HTTP",
						   "KEY" };
	struct ltable t = { 0 };
	int ch, w[LCOLS], rc = 1;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'j')
			usage();
		t.json = true;
	}
	if (optind != argc)
		usage();
	if (ledger_each(c, ledger_line, &t) < 0)
		goto out;
	if (!t.json) {
		for (int j = 0; j < LCOLS; j++)
			w[j] = (int)strlen(head[j]);
		for (int i = 0; i < t.n; i++)
			for (int j = 0; j < LCOLS; j++)
				if ((int)strlen(t.cell[i][j]) > w[j])
					w[j] = (int)strlen(t.cell[i][j]);
		for (int i = -1; i < t.n; i++) {
			for (int j = 0; j < LCOLS; j++) {
				const char *s = i < 0 ? head[j] : t.cell[i][j];
				/* Numbers right-aligned, words left; no trailing blanks. */
				if (j == LCOLS - 1)
					printf("%s\n", s);
				else if (j == 5 || j == 7)
					printf("%*s  ", w[j], s);
				else
					printf("%-*s  ", w[j], s);
			}
		}
	}
	rc = 0;
out:
	for (int i = 0; i < t.n; i++)
		for (int j = 0; j < LCOLS; j++)
			free(t.cell[i][j]);
	free(t.cell);
	return rc;
}
