/*
 * team.c - what bananactl shows of team mode: the team's line under
 * "status" and "cost --team".  The mount's team_db (from .bananafs/stats)
 * wins over the config's; the password comes from ~/.pgpass or PGPASSFILE
 * as for the daemon.
 */
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/config.h"
#include "cache/team_db.h"
#include "tools/bananactl/ctl.h"

char *
ctl_team_db(struct ctl *c)
{
	cJSON *st = NULL;
	const cJSON *v;
	struct config cfg;
	char *db = NULL;

	if (ctl_resolve(c, NULL) == 0 && c->mount != NULL)
		st = ctl_read_stats(c);
	v = cJSON_GetObjectItemCaseSensitive(st, "team_db");
	if (cJSON_IsString(v) && v->valuestring[0] != '\0')
		db = xstrdup(v->valuestring);
	cJSON_Delete(st);
	if (db == NULL) {
		if (ctl_load_config(&cfg, NULL) == 0 && cfg.team_db != NULL)
			db = xstrdup(cfg.team_db);
		config_free(&cfg);	/* safe after a failed load: config_defaults leaves it freed */
	}
	return db;
}

/* The team's line: spent is what its budget counts (bananafs.spent(), today = our local day). */
void
ctl_team_status(const char *conninfo)
{
	char err[512], day[16];
	const char *p[1] = { day };
	time_t now = time(NULL);
	struct tm tm;
	PGresult *r;

	localtime_r(&now, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	r = team_db_query_once(conninfo,
			       "SELECT (SELECT count(*) FROM bananafs.claims WHERE expires > now()),"
			       " (SELECT count(DISTINCT mount) FROM bananafs.claims WHERE expires > now()),"
			       " sp.today, sp.total,"
			       " (SELECT coalesce(sum(usd), 0) FROM bananafs.reservations"
			       "   WHERE NOT settled AND expires > now()),"
			       " (SELECT count(*) FROM bananafs.objects),"
			       " (SELECT CASE WHEN until > now() THEN extract(epoch FROM until - now()) ELSE 0 END"
			       "   FROM bananafs.pause)"
			       " FROM bananafs.spent($1::date) sp",
			       1, p, err, sizeof(err));
	if (r == NULL) {
		printf("team: %s\n", err);
		return;
	}
	printf("team: %s request%s in flight on %s mount%s; spent $%.4f today, $%.4f total, "
	       "$%.4f reserved; %s object%s shared",
	       PQgetvalue(r, 0, 0), strcmp(PQgetvalue(r, 0, 0), "1") ? "s" : "",
	       PQgetvalue(r, 0, 1), strcmp(PQgetvalue(r, 0, 1), "1") ? "s" : "",
	       atof(PQgetvalue(r, 0, 2)), atof(PQgetvalue(r, 0, 3)), atof(PQgetvalue(r, 0, 4)),
	       PQgetvalue(r, 0, 5), strcmp(PQgetvalue(r, 0, 5), "1") ? "s" : "");
	if (atof(PQgetvalue(r, 0, 6)) > 0)
		printf("; paused for %.0f s after a 429", atof(PQgetvalue(r, 0, 6)));
	putchar('\n');
	PQclear(r);
}
