/*
 * test_team_conn.c - the options of a team connection: bananafs's connect
 * timeout, keepalives and tcp_user_timeout follow team_lease_s, and a
 * keyword the user's team_db sets wins over ours.  libpq itself combines
 * them (PQconnectStartParams on a socket folder that does not exist: no
 * server is reached) and PQconninfo says what the connection uses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cache/team_db.h"

#define NOWHERE "host=/nonexistent-bananafs-test dbname=team"

/* The value conninfo ends with for keyword, from libpq; "" when unset. */
static char *
effective(const char *conninfo, double lease_s, const char *keyword)
{
	struct team_conn_params p;
	PGconn *c;
	PQconninfoOption *o;
	char *v = NULL;

	team_db_conn_params(&p, conninfo, lease_s);
	c = PQconnectStartParams(p.keys, p.vals, 1);
	assert_non_null(c);
	o = PQconninfo(c);
	assert_non_null(o);
	for (PQconninfoOption *i = o; i->keyword != NULL; i++)
		if (strcmp(i->keyword, keyword) == 0)
			v = strdup(i->val != NULL ? i->val : "");
	PQconninfoFree(o);
	PQfinish(c);
	assert_non_null(v);
	return v;
}

static void
assert_effective(const char *conninfo, double lease_s, const char *keyword, const char *want)
{
	char *v = effective(conninfo, lease_s, keyword);

	assert_string_equal(v, want);
	free(v);
}

/* A 30 s lease: silent 10 s, 3 probes 3 s apart, 30 s unacknowledged: dead within a lease. */
static void test_keepalives_follow_the_lease(void **state)
{
	(void)state;
	assert_effective(NOWHERE, 30, "keepalives", "1");
	assert_effective(NOWHERE, 30, "keepalives_idle", "10");
	assert_effective(NOWHERE, 30, "keepalives_interval", "3");
	assert_effective(NOWHERE, 30, "keepalives_count", "3");
	assert_effective(NOWHERE, 30, "tcp_user_timeout", "30000");
	assert_effective(NOWHERE, 30, "connect_timeout", "5");
	assert_effective(NOWHERE, 90, "keepalives_idle", "30");
	assert_effective(NOWHERE, 90, "tcp_user_timeout", "90000");
	/* a short lease still probes at least once a second */
	assert_effective(NOWHERE, 2, "keepalives_idle", "1");
	assert_effective(NOWHERE, 2, "keepalives_interval", "1");
	assert_effective(NOWHERE, 2, "tcp_user_timeout", "2000");
	/* no lease (bananactl): the default 30 s */
	assert_effective(NOWHERE, 0, "tcp_user_timeout", "30000");
}

/* The user's own values, as keywords or in a URI, are kept. */
static void test_the_users_keywords_win(void **state)
{
	(void)state;
	assert_effective(NOWHERE " keepalives_idle=7 tcp_user_timeout=0", 30, "keepalives_idle", "7");
	assert_effective(NOWHERE " keepalives_idle=7 tcp_user_timeout=0", 30, "tcp_user_timeout", "0");
	assert_effective(NOWHERE " keepalives_idle=7", 30, "keepalives_interval", "3");
	assert_effective(NOWHERE " keepalives=0 connect_timeout=9", 30, "keepalives", "0");
	assert_effective(NOWHERE " keepalives=0 connect_timeout=9", 30, "connect_timeout", "9");
	assert_effective("postgresql:///team?host=/nonexistent-bananafs-test&keepalives_count=8", 30,
			 "keepalives_count", "8");
	assert_effective("postgresql:///team?host=/nonexistent-bananafs-test", 30, "dbname", "team");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keepalives_follow_the_lease),
		cmocka_unit_test(test_the_users_keywords_win),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
