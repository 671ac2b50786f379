/*
 * team_db.h - the one place that owns team mode's PostgreSQL connections.
 *
 * Team mode (team_db in the config) shares the cache index, the in-flight
 * claims, the budget, the limiter and the ledger rows between the mounts
 * of a team.  The backends for those (cache/team_*.c) never open a
 * connection themselves: they run statements through team_db_exec, which
 * serialises use of the one request connection, reconnects when the
 * server went away, and reports "offline" without blocking for long.
 *
 * A second connection belongs to a background thread: it LISTENs for
 * "a claim ended" notifications (team_db_wait wakes on them, with a
 * bounded poll because notifications sent while we were disconnected are
 * lost), and it renews, every lease/3 seconds (between deferred
 * statements too), the leases of the rows this mount holds (the claims,
 * limiter slots and reservations its requests hold, see team_db_hold): a
 * mount that dies stops renewing, and its rows expire after team_lease_s.
 *
 * The schema lives in the PostgreSQL schema "bananafs"; its version is the
 * single row of bananafs.schema_version.  team_db_open creates it on first
 * use (under an advisory lock, so two mounts starting at once agree) and
 * refuses a version it does not know with a clear error.
 *
 * Secrets: the password only ever comes from ~/.pgpass or PGPASSFILE (the
 * config refuses a conninfo with one).  Error texts from libpq name the
 * host and user, never a password.
 */
#ifndef BANANAFS_CACHE_TEAM_DB_H
#define BANANAFS_CACHE_TEAM_DB_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define TEAM_SCHEMA_VERSION 3
#define TEAM_OWNER_LEN 64
#define TEAM_ID_LEN 256

struct store;
struct team_unclaimed;
struct team_held;

/* The rows of this run that the background thread renews (team_db_hold). */
enum team_rows { TEAM_CLAIMS, TEAM_SLOTS, TEAM_RESERVATIONS, TEAM_NROWS };

struct team_db {
	char *conninfo;			/* from the config; no password */
	char owner[TEAM_OWNER_LEN];	/* this run of the mount: "host.pid.random", the mount column
					   of every row it renews */
	char store_id[TEAM_OWNER_LEN];	/* this store, the same in every run (team_db_set_store) */
	double lease_s;			/* team_lease_s */

	pthread_mutex_t mu;		/* protects conn, online, last_try */
	PGconn *conn;			/* the request connection */
	bool online;			/* the last statement reached the server */
	bool schema_ok;			/* the schema was created or checked on some connection */
	double last_try;		/* monotonic time of the last failed reconnect */

	pthread_mutex_t wake_mu;	/* protects wake_gen; pairs with wake_cv */
	pthread_cond_t wake_cv;		/* broadcast on every notification and reconnect */
	unsigned long wake_gen;

	pthread_mutex_t defer_mu;	/* protects store and ndeferred */
	struct store *store;		/* the deferred statements' table (team_db_set_store) */
	int ndeferred;			/* rows in it */

	struct team_unclaimed *unclaimed;	/* protected by defer_mu */

	pthread_mutex_t held_mu;	/* protects held */
	struct team_held *held[TEAM_NROWS];	/* team ids of the claims and slots requests hold */

	int lock_fd;			/* STORE/team.lock, flock'd while mounted (cache/team.c); -1 */

	pthread_t bg;			/* listener and lease renewer; owns its own connection */
	bool bg_started;
	atomic_int stopping;		/* set by team_db_close */
};

/*
 * Connects and creates or checks the schema; starts no thread (call
 * team_db_start after daemonizing: threads do not survive fork).
 * 0 when online; -1 with a clear err (unreachable, password refused,
 * wrong schema version); 1 with err when the server is unreachable and
 * allow_offline (team_offline = cache-only) is set: the handle then
 * reconnects on later statements and reports offline until it can.
 */
int team_db_open(struct team_db *t, const char *conninfo, double lease_s, bool allow_offline,
		 char *err, size_t errlen);
/* The listener and lease renewer.  0 or -1 with err. */
int team_db_start(struct team_db *t, char *err, size_t errlen);
/* Stops the thread and closes both connections.  Safe on a zeroed struct. */
void team_db_close(struct team_db *t);

/*
 * Connects once and checks the schema without starting anything: for
 * bananactl doctor.  0 with *version (0 = no schema yet), or -1 with err.
 */
int team_db_probe(const char *conninfo, int *version, char *err, size_t errlen);

/*
 * For bananactl: connects, checks the schema version, runs one statement,
 * disconnects.  The PGresult (caller PQclear()s it), or NULL with err.
 */
PGresult *team_db_query_once(const char *conninfo, const char *sql, int nparams,
			     const char *const *params, char *err, size_t errlen);

/*
 * Runs one statement with text parameters (NULL = SQL NULL) on the request
 * connection.  When the connection was lost it reconnects once and runs
 * the statement again, so statements MUST be idempotent (every one of ours
 * is keyed by a request id or a cache key).  Returns the PGresult (the
 * caller PQclear()s it) when the server answered with
 * PGRES_COMMAND_OK/TUPLES_OK, else NULL with err (and team_db_online()
 * false when the server is unreachable).
 */
PGresult *team_db_exec(struct team_db *t, const char *sql, int nparams, const char *const *params,
		       char *err, size_t errlen);
/* The same with lengths and formats (1 = binary) of the parameters and the result, for bytea. */
PGresult *team_db_execb(struct team_db *t, const char *sql, int nparams, const char *const *params,
			const int *lengths, const int *formats, int result_binary, char *err,
			size_t errlen);

/*
 * Queues an idempotent statement that could not reach the server (a
 * settlement, a ledger row, the end of a claim) in the store's state.db:
 * the background thread runs the queue in order once the server is back,
 * and a queue left by a run that was killed is run by the next.  Money
 * already spent is thus recorded late, never lost.
 */
void team_db_defer(struct team_db *t, const char *sql, int nparams, const char *const *params);
/* Statements still queued. */
int team_db_deferred(struct team_db *t);
/*
 * Runs an idempotent statement that records money (a ledger row, a
 * settlement) after every queued one: it is queued too while the queue is
 * not empty, else run, and queued when it cannot reach the server.  So a
 * settlement never reaches the server before the ledger row it follows
 * (the team budget counts the rows; a reservation settled first would stop
 * counting before its row did).
 */
void team_db_exec_in_order(struct team_db *t, const char *sql, int nparams, const char *const *params);

/*
 * The claims, limiter slots and reservations this run's requests hold, by
 * team id (team_db_id): the background thread renews those rows only, not
 * every row of the mount.  A row whose end could not be written (its
 * statement failed on the server twice and was dropped, or could not be
 * kept) then lapses after team_lease_s like a dead machine's, instead of
 * holding its key, a slot of the team's max_inflight, or money of the
 * team's budget for as long as the mount lives.  hold when the row was
 * taken (again: no-op); unhold when it ended, or was found taken over.
 */
void team_db_hold(struct team_db *t, enum team_rows which, const char *id);
void team_db_unhold(struct team_db *t, enum team_rows which, const char *id);

/*
 * Owners whose claim could not reach the server: the pipeline then owns
 * the key alone, so the team budget must not let that owner pay
 * (team_budget.c asks with team_db_take_unclaimed before reserving).
 */
void team_db_mark_unclaimed(struct team_db *t, const char *owner);
/* True (and forgets it) when owner was marked. */
bool team_db_take_unclaimed(struct team_db *t, const char *owner);

/*
 * The store: its own id (kept in its state.db) for team_db_id, and its
 * state.db for the deferred statements (team_db_defer), counting those an
 * earlier run left.  Before it is set, ids carry the run's owner.  Call
 * before any request.  0, or -1 when state.db refused the table.
 */
int team_db_set_store(struct team_db *t, struct store *s, const char *store_id);
/*
 * The team-wide id of a claim owner, reservation or limiter slot of this
 * mount: "<store id>/<name>".  The store id is the same in every run of
 * the mount, so after a restart bananafs.claim() knows a claim of the run
 * before as this store's (that run is dead: it takes it over at once), and
 * a name that is the same in every run ("batch.<key>") is the same row.
 */
void team_db_id(const struct team_db *t, const char *name, char out[TEAM_ID_LEN]);

/*
 * The connection options of every team connection, for PQconnectdbParams
 * with expand_dbname: bananafs's defaults (connect_timeout, keepalives and
 * tcp_user_timeout tied to lease_s, 0 = 30 s) then conninfo, whose own
 * keywords win.  p->vals point into p and conninfo.
 */
struct team_conn_params {
	const char *keys[9];
	const char *vals[9];
	char buf[3][24];
};
void team_db_conn_params(struct team_conn_params *p, const char *conninfo, double lease_s);

/* Whether the last statement reached the server. */
bool team_db_online(struct team_db *t);

/*
 * Blocks until a notification arrives (a claim ended somewhere in the
 * team), or the connection came back, or timeout_s passed.  Returns at
 * once when gen (from team_db_wake_gen) is already stale.
 */
unsigned long team_db_wake_gen(struct team_db *t);
void team_db_wait(struct team_db *t, unsigned long gen, double timeout_s);

#endif
