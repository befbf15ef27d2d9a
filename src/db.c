/*
 * db.c - the classification history in SQLite: migrations, one connection
 * per worker with its statements prepared once, and the JSON answers of the
 * history and statistics endpoints.
 */
#include "db.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "log.h"

/* ------------------------------------------------------------ statements */

/* The columns of a ROW (API.md), in the order row_json() reads them. */
enum {
	COL_ID,
	COL_TIME,
	COL_CLIENT,
	COL_FILE,
	COL_TYPE,
	COL_BYTES,
	COL_WIDTH,
	COL_HEIGHT,
	COL_SHA256,
	COL_MODEL,
	COL_STATUS,
	COL_ERR_CODE,
	COL_ERR_MSG,
	COL_CACHED,
	COL_TOP1_INDEX,
	COL_TOP1_LABEL,
	COL_TOP1_PROB,
	COL_T_DECODE,
	COL_T_PREPROCESS,
	COL_T_INFERENCE,
	COL_T_TOTAL,
	COL_HAS_THUMB,
	COL_TOPK, /* only in the single-row statement */
};

#define ROW_COLUMNS                                                                                          \
	"c.id, c.time_ms, c.client, c.file_name, c.content_type, c.bytes, c.width, c.height, c.sha256, "     \
	"c.model, c.status, c.error_code, c.error_message, c.cached, c.top1_index, c.top1_label, "           \
	"c.top1_prob, c.t_decode_ms, c.t_preprocess_ms, c.t_inference_ms, c.t_total_ms, "                    \
	"(EXISTS (SELECT 1 FROM thumbnail t WHERE t.id = c.id) OR "                                          \
	" (c.cached AND EXISTS (SELECT 1 FROM classification o JOIN thumbnail t ON t.id = o.id "              \
	"  WHERE o.sha256 = c.sha256 AND o.model = c.model AND o.error_code IS NULL)))"

enum db_stmt {
	ST_BEGIN,
	ST_BEGIN_WRITE,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT,
	ST_INSERT_THUMB,
	ST_CACHE,
	ST_HISTORY,
	ST_HISTORY_LABEL,
	ST_ROW,
	ST_THUMB,
	ST_STATS_HOURS,
	ST_STATS_LABELS,
	ST_ID_RANGE,
	ST_DELETE_UPTO,
	ST_DELETE_BEFORE,
	ST_N
};

/* Every statement a connection runs; user values only ever go in as bound parameters. */
static const struct {
	const char *name, *sql;
} stmt_defs[ST_N] = {
	/*
	 * Writes start with BEGIN IMMEDIATE: the write lock is taken (waiting
	 * up to the busy timeout) before anything is read. A deferred
	 * transaction that reads first and then wants to write can be refused
	 * at once with SQLITE_BUSY, without waiting, when another connection
	 * committed in between.
	 */
	[ST_BEGIN] = {"begin", "BEGIN"},
	[ST_BEGIN_WRITE] = {"begin_write", "BEGIN IMMEDIATE"},
	[ST_COMMIT] = {"commit", "COMMIT"},
	[ST_ROLLBACK] = {"rollback", "ROLLBACK"},
	[ST_INSERT] =
		{"insert",
		 "INSERT INTO classification (time_ms, client, file_name, content_type, bytes, width, "
		 "height, sha256, model, status, error_code, error_message, cached, top1_index, top1_label, "
		 "top1_prob, topk, t_decode_ms, t_preprocess_ms, t_inference_ms, t_total_ms) "
		 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
		 "?19, ?20, ?21)"},
	[ST_INSERT_THUMB] = {"insert_thumb", "INSERT INTO thumbnail (id, jpeg) VALUES (?1, ?2)"},
	/* error_code IS NULL spelled as in classification_cache's WHERE, so SQLite can use that index */
	[ST_CACHE] = {"cache",
		      "SELECT topk, width, height FROM classification "
		      "WHERE sha256 = ?1 AND model = ?2 AND error_code IS NULL ORDER BY id DESC LIMIT 1"},
	[ST_HISTORY] = {"history", "SELECT " ROW_COLUMNS " FROM classification c "
				   "WHERE c.id < ?1 ORDER BY c.id DESC LIMIT ?2"},
	[ST_HISTORY_LABEL] = {"history_label",
			      "SELECT " ROW_COLUMNS " FROM classification c "
			      "WHERE c.top1_label = ?3 AND c.id < ?1 ORDER BY c.id DESC LIMIT ?2"},
	[ST_ROW] = {"row", "SELECT " ROW_COLUMNS ", c.topk FROM classification c WHERE c.id = ?1"},
	/*
	 * A row answered from the cache has no thumbnail of its own (its image
	 * was never decoded): it shows the one of the newest row with the same
	 * bytes and model that has one.
	 */
	[ST_THUMB] = {"thumb", "SELECT t.jpeg FROM classification c JOIN classification o "
			       "ON o.sha256 = c.sha256 AND o.model = c.model AND o.error_code IS NULL "
			       "AND (o.id = c.id OR c.cached) JOIN thumbnail t ON t.id = o.id "
			       "WHERE c.id = ?1 ORDER BY o.id = c.id DESC, o.id DESC LIMIT 1"},
	[ST_STATS_HOURS] = {"stats_hours",
			    "SELECT time_ms / 3600000, count(*), sum(error_code IS NOT NULL), sum(cached), "
			    "avg(t_total_ms), max(t_total_ms) FROM classification "
			    "WHERE time_ms >= ?1 AND time_ms < ?2 GROUP BY 1 ORDER BY 1"},
	[ST_STATS_LABELS] =
		{"stats_labels",
		 "SELECT top1_label, count(*) AS n FROM classification "
		 "WHERE time_ms >= ?1 AND time_ms < ?2 AND error_code IS NULL "
		 "AND top1_label IS NOT NULL GROUP BY top1_label ORDER BY n DESC, top1_label LIMIT 20"},
	/* retention by count (db_retention); two subqueries: each is one step down the rowid tree; max(id), min(id) in one would scan */
	[ST_ID_RANGE] = {"id_range", "SELECT (SELECT max(id) FROM classification), "
				     "(SELECT min(id) FROM classification)"},
	[ST_DELETE_UPTO] = {"delete_upto",
			    "DELETE FROM classification WHERE id IN "
			    "(SELECT id FROM classification WHERE id <= ?1 ORDER BY id LIMIT ?2)"},
	[ST_DELETE_BEFORE] = {"delete_before", "DELETE FROM classification WHERE id IN "
					       "(SELECT id FROM classification WHERE time_ms < ?1 LIMIT ?2)"},
};

struct db {
	sqlite3 *conn;
	struct db_opts opts;
	sqlite3_stmt *st[ST_N];
	int wal_pages; /* pages in the write-ahead log after this connection's last commit */
};

/*
 * Pages in the log past which db_checkpoint() copies it back: SQLite's own
 * automatic checkpoint threshold, which this replaces.
 */
#define DB_CHECKPOINT_PAGES 1000

/* --------------------------------------------------------------- errors */

/* The seer status for an SQLite result code. */
static int status_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return SEER_ENOMEM;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
		return SEER_EINVAL;
	case SQLITE_TOOBIG:
		return SEER_ETOOLARGE;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return SEER_ECORRUPT;
	default:
		return SEER_EIO;
	}
}

/* Record the connection's last SQLite error, as SQLite words it, in err. */
static int sql_fail(sqlite3 *conn, int rc, const char *fn, struct seer_err *err)
{
	return seer_err_set(err, status_of(rc), "%s: %s", fn,
			    conn ? sqlite3_errmsg(conn) : sqlite3_errstr(rc));
}

/*
 * End a failed write transaction. SQLite rolls some failures back on its
 * own (a full disk, say); whatever is still open is rolled back here, so the
 * connection is always back in autocommit mode and ready for the next call.
 */
static void tx_abort(struct db *db)
{
	if (!sqlite3_get_autocommit(db->conn)) {
		sqlite3_step(db->st[ST_ROLLBACK]);
		sqlite3_reset(db->st[ST_ROLLBACK]);
	}
}

/* Run a statement without results (BEGIN, COMMIT, a DELETE) and reset it. */
static int stmt_exec(struct db *db, enum db_stmt s, const char *fn, struct seer_err *err)
{
	int rc = sqlite3_step(db->st[s]);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		sql_fail(db->conn, rc, fn, err);
		sqlite3_reset(db->st[s]);
		return status_of(rc);
	}
	sqlite3_reset(db->st[s]);
	return 0;
}

/* ----------------------------------------------------------- connections */

void db_opts_default(struct db_opts *o)
{
	o->busy_timeout_ms = 5000;
	o->retention_batch = 10000;
}

int db_schema_version(void)
{
	return db_migrations_count;
}

/* Read an integer PRAGMA (or any one-value query of our own). */
static int query_int(sqlite3 *conn, const char *sql, int64_t *v, const char *fn, struct seer_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(conn, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*v = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK) {
		sql_fail(conn, rc, fn, err);
		sqlite3_finalize(st);
		return status_of(rc);
	}
	sqlite3_finalize(st);
	return 0;
}

/* The schema version and the number of schema objects, from one snapshot. */
static int read_version(sqlite3 *conn, int64_t *version, int64_t *objects, const char *fn,
			struct seer_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(
		conn, "SELECT user_version, (SELECT count(*) FROM sqlite_master) FROM pragma_user_version",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*version = sqlite3_column_int64(st, 0);
			*objects = sqlite3_column_int64(st, 1);
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK)
		sql_fail(conn, rc, fn, err);
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : status_of(rc);
}

/* Run SQL of our own (never with user values) that returns nothing of interest. */
static int exec_sql(sqlite3 *conn, const char *sql, const char *fn, struct seer_err *err)
{
	int rc = sqlite3_exec(conn, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sql_fail(conn, rc, fn, err);
}

/*
 * Switch to write-ahead logging: readers (the admin pages) never block the
 * workers' writes, and a commit is one append to the log. The mode is stored
 * in the file, so on an existing database this changes nothing.
 *
 * The switch needs an exclusive lock, which SQLite asks for while the pragma
 * already holds a read lock; in that state it returns SQLITE_BUSY at once
 * rather than call the busy handler (waiting could deadlock two readers).
 * Processes racing to set up a new file would fail, so the pragma is retried
 * here, with growing sleeps, for up to the busy timeout.
 */
static int set_wal(sqlite3 *conn, int timeout_ms, const char *path, const char *fn, struct seer_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, wal = 0, waited = 0, delay = 1;

	rc = sqlite3_prepare_v2(conn, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	while (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *mode = (const char *)sqlite3_column_text(st, 0);

			wal = mode && strcmp(mode, "wal") == 0;
			rc = SQLITE_OK;
			break;
		}
		if ((rc & 0xff) != SQLITE_BUSY || waited >= timeout_ms)
			break;
		sqlite3_reset(st);
		sqlite3_sleep(delay);
		waited += delay;
		delay = delay < 50 ? delay * 2 : 50;
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK) {
		sql_fail(conn, rc, fn, err);
		sqlite3_finalize(st);
		return status_of(rc);
	}
	sqlite3_finalize(st);
	/* SQLite keeps the old mode where WAL cannot work (no shared memory, e.g. some network file systems)
	 */
	if (!wal)
		return seer_err_set(err, SEER_EUNSUPPORTED, "%s: %s: cannot use WAL journal mode here", fn,
				    path);
	return 0;
}

/* Open path (creating it when create) with the busy timeout set; on failure *out is NULL. */
static int conn_open(const char *path, int create, const struct db_opts *o, sqlite3 **out, const char *fn,
		     struct seer_err *err)
{
	/*
	 * NOFOLLOW: the supervisor migrates as root in a directory the service
	 * user can write; a symlink planted there must not be written through.
	 */
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW |
		    (create ? SQLITE_OPEN_CREATE : 0);
	sqlite3 *conn = NULL;
	int rc;

	*out = NULL;
	rc = sqlite3_open_v2(path, &conn, flags, NULL);
	if (rc != SQLITE_OK) {
		if (conn == NULL)
			return seer_err_set(err, SEER_ENOMEM, "%s: %s: %s", fn, path, sqlite3_errstr(rc));
		seer_err_set(err, status_of(rc), "%s: %s: %s", fn, path, sqlite3_errmsg(conn));
		sqlite3_close(conn);
		return status_of(rc);
	}
	sqlite3_extended_result_codes(conn, 1);
	sqlite3_busy_timeout(conn, o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 0);
	*out = conn;
	return 0;
}

/*
 * Refuse a database written by a newer seer (its schema may mean things this
 * program does not know) and a version no seer ever wrote.
 */
static int check_version(int64_t version, const char *path, const char *fn, struct seer_err *err)
{
	if (version > db_migrations_count)
		return seer_err_set(err, SEER_EUNSUPPORTED,
				    "%s: %s has schema version %lld, newer than this program's %d", fn, path,
				    (long long)version, db_migrations_count);
	if (version < 0)
		return seer_err_set(err, SEER_ECORRUPT, "%s: %s has schema version %lld", fn, path,
				    (long long)version);
	return 0;
}

/*
 * Apply migration i (to version i + 1) unless another process got there
 * first: the version is read again after taking the write lock, so of two
 * processes racing, the second finds the work done and changes nothing.
 */
static int migrate_one(sqlite3 *conn, const char *path, int i, struct seer_err *err)
{
	static const char fn[] = "db_migrate";
	char sql[64];
	int64_t version;
	int rc;

	rc = exec_sql(conn, "BEGIN IMMEDIATE", fn, err);
	if (rc < 0)
		return rc;
	rc = query_int(conn, "PRAGMA user_version", &version, fn, err);
	if (rc == 0)
		rc = check_version(version, path, fn, err);
	if (rc < 0 || version > i)
		goto done;
	rc = sqlite3_exec(conn, db_migration_sql[i], NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = seer_err_set(err, status_of(rc), "%s: %s: %s", fn, db_migration_names[i],
				  sqlite3_errmsg(conn));
		goto done;
	}
	/* PRAGMA takes no bound parameters; the number is our own */
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", i + 1);
	rc = exec_sql(conn, sql, fn, err);
	if (rc == 0)
		rc = exec_sql(conn, "COMMIT", fn, err);
	if (rc == 0)
		log_info("db: %s: applied migration %s (schema version %d)", path, db_migration_names[i],
			 i + 1);
done:
	if (!sqlite3_get_autocommit(conn))
		sqlite3_exec(conn, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int db_migrate(const char *path, const struct db_opts *o, struct seer_err *err)
{
	static const char fn[] = "db_migrate";
	struct db_opts defaults;
	sqlite3 *conn = NULL;
	int64_t version = 0, objects = 0;
	int rc;

	if (o == NULL) {
		db_opts_default(&defaults);
		o = &defaults;
	}
	rc = conn_open(path, 1, o, &conn, fn, err);
	if (rc < 0)
		return rc;
	/*
	 * The version and the number of schema objects, read in one statement
	 * so both come from one snapshot. Tables but no version: another
	 * program's database, named by mistake, refused before anything is
	 * changed. (Our own migrations commit their tables and the version
	 * together, so a racing seer process never leaves that state.)
	 */
	rc = read_version(conn, &version, &objects, fn, err);
	if (rc == 0)
		rc = check_version(version, path, fn, err);
	if (rc == 0 && version == 0 && objects > 0)
		rc = seer_err_set(
			err, SEER_EUNSUPPORTED,
			"%s: %s is not a seer history database (it has tables but no schema version)", fn,
			path);
	if (rc == 0)
		rc = set_wal(conn, o->busy_timeout_ms, path, fn, err);
	/*
	 * This connection leaves foreign keys off (SQLite's default): a future
	 * migration that rebuilds a table needs them off while it copies.
	 */
	for (int i = (int)version; rc == 0 && i < db_migrations_count; i++)
		rc = migrate_one(conn, path, i, err);
	sqlite3_close(conn);
	return rc;
}

/* sqlite3_wal_hook(): remember the log's size after each commit. */
static int wal_hook(void *arg, sqlite3 *conn, const char *name, int pages)
{
	(void)conn;
	(void)name;
	((struct db *)arg)->wal_pages = pages;
	return SQLITE_OK;
}

int db_checkpoint(struct db *db, struct seer_err *err)
{
	int rc;

	if (db->wal_pages < DB_CHECKPOINT_PAGES)
		return 0;
	db->wal_pages = 0;
	/*
	 * PASSIVE, as SQLite's own: copies what no reader still needs, never
	 * waits. SQLITE_BUSY: another connection (worker) is checkpointing
	 * right now, which is as good.
	 */
	rc = sqlite3_wal_checkpoint_v2(db->conn, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc == SQLITE_BUSY)
		return 0;
	return rc == SQLITE_OK ? 1 : sql_fail(db->conn, rc, "db_checkpoint", err);
}

void db_close(struct db *db)
{
	if (db == NULL)
		return;
	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(db->st[i]);
	/* the last connection to close checkpoints the log into the database and removes it */
	sqlite3_close(db->conn);
	free(db);
}

int db_open(const char *path, const struct db_opts *o, struct db **out, struct seer_err *err)
{
	static const char fn[] = "db_open";
	struct db *db;
	int64_t version;
	int rc;

	*out = NULL;
	db = calloc(1, sizeof(*db));
	if (db == NULL)
		return seer_err_set(err, SEER_ENOMEM, "%s: out of memory", fn);
	if (o)
		db->opts = *o;
	else
		db_opts_default(&db->opts);
	if (db->opts.retention_batch <= 0)
		db->opts.retention_batch = 10000;
	rc = conn_open(path, 0, &db->opts, &db->conn, fn, err);
	if (rc < 0)
		goto fail;
	rc = query_int(db->conn, "PRAGMA user_version", &version, fn, err);
	if (rc < 0)
		goto fail;
	rc = check_version(version, path, fn, err);
	if (rc < 0)
		goto fail;
	if (version < db_migrations_count) {
		rc = seer_err_set(err, SEER_EUNSUPPORTED,
				  "%s: %s has schema version %lld, expected %d (not migrated)", fn, path,
				  (long long)version, db_migrations_count);
		goto fail;
	}
	rc = set_wal(db->conn, db->opts.busy_timeout_ms, path, fn, err);
	if (rc < 0)
		goto fail;
	/*
	 * NORMAL: in WAL mode a commit is durable once the log is synced at
	 * the next checkpoint; a power cut can lose the last few commits but
	 * never corrupts the file. Per-commit fsync is not worth its cost for
	 * a history log.
	 */
	rc = exec_sql(db->conn, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", fn, err);
	if (rc < 0)
		goto fail;
	/*
	 * Replaces SQLite's automatic checkpoint, which runs inside the commit
	 * that crosses the threshold (some 8 ms here, with its fsync): the
	 * worker checkpoints with db_checkpoint() once its answers are out.
	 */
	sqlite3_wal_hook(db->conn, wal_hook, db);
	for (int i = 0; i < ST_N; i++) {
		int src = sqlite3_prepare_v3(db->conn, stmt_defs[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
					     &db->st[i], NULL);

		if (src != SQLITE_OK) {
			rc = seer_err_set(err, status_of(src), "%s: preparing %s: %s", fn, stmt_defs[i].name,
					  sqlite3_errmsg(db->conn));
			goto fail;
		}
	}
	*out = db;
	return 0;
fail:
	db_close(db);
	return rc;
}

/* ----------------------------------------------------------------- writes */

static int is_sha256_hex(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return i == 64;
}

/* Check what the schema cannot express; the message names the record. */
static int record_check(const struct db_record *r, int i, struct seer_err *err)
{
	static const char fn[] = "db_insert";

	if (r->sha256 && !is_sha256_hex(r->sha256))
		return seer_err_set(err, SEER_EINVAL, "%s: record %d: sha256 is not 64 lowercase hex digits",
				    fn, i);
	if (r->status < 100 || r->status > 599)
		return seer_err_set(err, SEER_EINVAL, "%s: record %d: status %d is not an HTTP status", fn, i,
				    r->status);
	if (r->bytes < 0 || r->width < 0 || r->height < 0)
		return seer_err_set(err, SEER_EINVAL, "%s: record %d: negative size", fn, i);
	if (r->error_code == NULL && (r->topk_json == NULL || r->top1_index < 0 || r->top1_label == NULL))
		return seer_err_set(err, SEER_EINVAL, "%s: record %d: a success needs its top-1 and top-K",
				    fn, i);
	if (r->thumb_len > 0 && r->thumb == NULL)
		return seer_err_set(err, SEER_EINVAL, "%s: record %d: thumbnail length without bytes", fn, i);
	return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Bind a positive integer, or NULL for 0 ("not known"). */
static void bind_dim(sqlite3_stmt *st, int i, int v)
{
	if (v > 0)
		sqlite3_bind_int(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* Insert one record inside the open transaction; returns an SQLite code. */
static int insert_one(struct db *db, const struct db_record *r, int64_t *id)
{
	sqlite3_stmt *st = db->st[ST_INSERT];
	int has_top1 = r->top1_index >= 0;
	int rc;

	sqlite3_bind_int64(st, 1, r->time_ms);
	bind_text(st, 2, r->client);
	bind_text(st, 3, r->file_name);
	bind_text(st, 4, r->content_type);
	sqlite3_bind_int64(st, 5, r->bytes);
	bind_dim(st, 6, r->width);
	bind_dim(st, 7, r->height);
	bind_text(st, 8, r->sha256);
	bind_text(st, 9, r->model);
	sqlite3_bind_int(st, 10, r->status);
	bind_text(st, 11, r->error_code);
	bind_text(st, 12, r->error_message);
	sqlite3_bind_int(st, 13, r->cached != 0);
	if (has_top1) {
		sqlite3_bind_int(st, 14, r->top1_index);
		bind_text(st, 15, r->top1_label);
		sqlite3_bind_double(st, 16, r->top1_prob);
	} else {
		sqlite3_bind_null(st, 14);
		sqlite3_bind_null(st, 15);
		sqlite3_bind_null(st, 16);
	}
	bind_text(st, 17, r->topk_json);
	/* a NaN binds as NULL, which the JSON shows as null */
	sqlite3_bind_double(st, 18, r->t_decode);
	sqlite3_bind_double(st, 19, r->t_preprocess);
	sqlite3_bind_double(st, 20, r->t_inference);
	sqlite3_bind_double(st, 21, r->t_total);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return rc;
	*id = sqlite3_last_insert_rowid(db->conn);
	if (r->thumb == NULL || r->thumb_len == 0)
		return SQLITE_OK;
	st = db->st[ST_INSERT_THUMB];
	sqlite3_bind_int64(st, 1, *id);
	sqlite3_bind_blob64(st, 2, r->thumb, r->thumb_len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int db_insert(struct db *db, const struct db_record *recs, int n, int64_t *ids, struct seer_err *err)
{
	static const char fn[] = "db_insert";
	int64_t id = 0;
	int rc;

	if (n < 0 || (n > 0 && recs == NULL))
		return seer_err_set(err, SEER_EINVAL, "%s: no records", fn);
	for (int i = 0; i < n; i++) {
		rc = record_check(&recs[i], i, err);
		if (rc < 0)
			return rc;
	}
	if (n == 0)
		return 0;
	rc = stmt_exec(db, ST_BEGIN_WRITE, fn, err);
	if (rc < 0)
		return rc;
	for (int i = 0; i < n; i++) {
		int src = insert_one(db, &recs[i], &id);

		if (src != SQLITE_OK) {
			/* the message first: the rollback would replace it */
			rc = sql_fail(db->conn, src, fn, err);
			goto fail;
		}
		if (ids)
			ids[i] = id;
	}
	rc = stmt_exec(db, ST_COMMIT, fn, err);
	if (rc < 0)
		goto fail;
	return 0;
fail:
	/* the ids handed out belong to rows that no longer exist */
	for (int i = 0; ids && i < n; i++)
		ids[i] = 0;
	tx_abort(db);
	return rc;
}

/* Run one retention DELETE with its bound values in its own transaction; adds the rows deleted to *count. */
static int delete_batch(struct db *db, enum db_stmt s, int64_t a, int64_t b, int nargs, int64_t *count,
			struct seer_err *err)
{
	static const char fn[] = "db_retention";
	int rc;

	sqlite3_bind_int64(db->st[s], 1, a);
	if (nargs > 1)
		sqlite3_bind_int64(db->st[s], 2, b);
	rc = stmt_exec(db, s, fn, err);
	if (rc < 0)
		return rc;
	*count = sqlite3_changes64(db->conn);
	return 0;
}

/* The lowest and highest id in use, in *lo and *hi; both 0 for an empty table. */
static int id_range(struct db *db, int64_t *lo, int64_t *hi, struct seer_err *err)
{
	sqlite3_stmt *st = db->st[ST_ID_RANGE];
	int rc = sqlite3_step(st);

	if (rc != SQLITE_ROW) {
		rc = sql_fail(db->conn, rc, "db_retention", err);
		sqlite3_reset(st);
		return rc;
	}
	*hi = sqlite3_column_int64(st, 0);
	*lo = sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	return 0;
}

int db_retention(struct db *db, int64_t max_rows, int max_days, int64_t now_ms, int64_t *deleted,
		 struct seer_err *err)
{
	static const char fn[] = "db_retention";
	int64_t batch = db->opts.retention_batch, total = 0, n = 0;
	int rc = 0;

	if (max_rows < 0 || max_days < 0)
		return seer_err_set(err, SEER_EINVAL, "%s: negative limit", fn);
	/* by age: everything older than the cutoff, a batch at a time */
	while (max_days > 0) {
		rc = stmt_exec(db, ST_BEGIN_WRITE, fn, err);
		if (rc == 0)
			rc = delete_batch(db, ST_DELETE_BEFORE, now_ms - (int64_t)max_days * 86400000, batch,
					  2, &n, err);
		if (rc == 0)
			rc = stmt_exec(db, ST_COMMIT, fn, err);
		if (rc < 0)
			goto fail;
		total += n;
		if (n < batch)
			break;
	}
	/*
	 * By count: every row whose id is not among the newest max_rows ids,
	 * a batch at a time. Ids grow by one per row and rows leave oldest
	 * first, so that is exactly the rows beyond max_rows (a gap in the ids,
	 * left by age retention after the clock went back, only keeps fewer).
	 * It costs two lookups, not a count(*) of the table (some 10 ms at a
	 * million rows, every RETENTION_EVERY inserts), and needs no lock to be
	 * exact: two workers trimming at once delete the same rows.
	 */
	if (max_rows > 0) {
		int64_t lo = 0, hi = 0;

		rc = id_range(db, &lo, &hi, err);
		if (rc < 0)
			goto fail;
		n = batch;
		while (hi - lo + 1 > max_rows && n == batch) {
			rc = stmt_exec(db, ST_BEGIN_WRITE, fn, err);
			if (rc == 0)
				rc = delete_batch(db, ST_DELETE_UPTO, hi - max_rows, batch, 2, &n, err);
			if (rc == 0)
				rc = stmt_exec(db, ST_COMMIT, fn, err);
			if (rc < 0)
				goto fail;
			total += n;
		}
	}
	if (deleted)
		*deleted = total;
	return 0;
fail:
	tx_abort(db);
	if (deleted)
		*deleted = total;
	return rc;
}

/* ------------------------------------------------------------------ reads */

int db_cache_lookup(struct db *db, const char *sha256, const char *model, char **topk_json, int *width,
		    int *height, struct seer_err *err)
{
	static const char fn[] = "db_cache_lookup";
	sqlite3_stmt *st = db->st[ST_CACHE];
	const char *topk;
	int rc;

	*topk_json = NULL;
	if (sha256 == NULL || model == NULL)
		return seer_err_set(err, SEER_EINVAL, "%s: no sha256 or model", fn);
	bind_text(st, 1, sha256);
	bind_text(st, 2, model);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return 0;
	}
	if (rc != SQLITE_ROW) {
		rc = sql_fail(db->conn, rc, fn, err);
		sqlite3_reset(st);
		return rc;
	}
	topk = (const char *)sqlite3_column_text(st, 0);
	*width = sqlite3_column_int(st, 1);
	*height = sqlite3_column_int(st, 2);
	*topk_json = topk ? strdup(topk) : NULL;
	if (*topk_json == NULL) {
		/* a success always has its top-K (db_insert checks), so NULL here means no memory */
		sqlite3_reset(st);
		return seer_err_set(err, SEER_ENOMEM, "%s: out of memory", fn);
	}
	sqlite3_reset(st);
	return 1;
}

/* A number as JSON, with enough digits to read back a float exactly; null when not finite. */
static void json_num(struct json_buf *b, double x)
{
	if (isfinite(x))
		json_printf(b, "%.9g", x);
	else
		json_raw(b, "null");
}

static void json_col_str(struct json_buf *b, sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		json_raw(b, "null");
	else
		json_str(b, (const char *)sqlite3_column_text(st, i));
}

static void json_col_int(struct json_buf *b, sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		json_raw(b, "null");
	else
		json_printf(b, "%lld", (long long)sqlite3_column_int64(st, i));
}

static void json_col_num(struct json_buf *b, sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		json_raw(b, "null");
	else
		json_num(b, sqlite3_column_double(st, i));
}

/* Unix milliseconds as an ISO-8601 UTC string with milliseconds ("2026-11-28T23:40:12.345Z"). */
static void json_time(struct json_buf *b, int64_t ms)
{
	int64_t s = ms / 1000, frac = ms % 1000;
	struct tm tm;
	time_t t;

	if (frac < 0) { /* floor, for times before 1970 */
		frac += 1000;
		s--;
	}
	t = (time_t)s;
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
		json_raw(b, "null");
		return;
	}
	json_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900, tm.tm_mon + 1,
		    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

/* Append the ROW at the statement's current result; the stored top-K too when with_topk. */
static void row_json(struct json_buf *b, sqlite3_stmt *st, int with_topk)
{
	json_printf(b, "{\"id\": %lld, \"time\": ", (long long)sqlite3_column_int64(st, COL_ID));
	json_time(b, sqlite3_column_int64(st, COL_TIME));
	json_raw(b, ", \"client\": ");
	json_col_str(b, st, COL_CLIENT);
	json_raw(b, ", \"file\": ");
	json_col_str(b, st, COL_FILE);
	json_raw(b, ", \"content_type\": ");
	json_col_str(b, st, COL_TYPE);
	json_raw(b, ", \"bytes\": ");
	json_col_int(b, st, COL_BYTES);
	json_raw(b, ", \"width\": ");
	json_col_int(b, st, COL_WIDTH);
	json_raw(b, ", \"height\": ");
	json_col_int(b, st, COL_HEIGHT);
	json_raw(b, ", \"sha256\": ");
	json_col_str(b, st, COL_SHA256);
	json_raw(b, ", \"model\": ");
	json_col_str(b, st, COL_MODEL);
	json_raw(b, ", \"status\": ");
	json_col_int(b, st, COL_STATUS);
	json_raw(b, ", \"error\": ");
	if (sqlite3_column_type(st, COL_ERR_CODE) == SQLITE_NULL) {
		json_raw(b, "null");
	} else {
		json_raw(b, "{\"code\": ");
		json_col_str(b, st, COL_ERR_CODE);
		json_raw(b, ", \"message\": ");
		json_col_str(b, st, COL_ERR_MSG);
		json_raw(b, "}");
	}
	json_printf(b, ", \"cached\": %s, \"top1\": ", sqlite3_column_int(st, COL_CACHED) ? "true" : "false");
	if (sqlite3_column_type(st, COL_TOP1_INDEX) == SQLITE_NULL) {
		json_raw(b, "null");
	} else {
		json_printf(b, "{\"index\": %d, \"label\": ", sqlite3_column_int(st, COL_TOP1_INDEX));
		json_col_str(b, st, COL_TOP1_LABEL);
		json_raw(b, ", \"prob\": ");
		json_col_num(b, st, COL_TOP1_PROB);
		json_raw(b, "}");
	}
	if (with_topk) {
		/* stored only if json_valid() accepted it (a CHECK in the schema), so it is copied as is */
		const char *topk = (const char *)sqlite3_column_text(st, COL_TOPK);

		json_raw(b, ", \"topk\": ");
		json_raw(b, topk ? topk : "null");
	}
	json_raw(b, ", \"timings_ms\": {\"decode\": ");
	json_col_num(b, st, COL_T_DECODE);
	json_raw(b, ", \"preprocess\": ");
	json_col_num(b, st, COL_T_PREPROCESS);
	json_raw(b, ", \"inference\": ");
	json_col_num(b, st, COL_T_INFERENCE);
	json_raw(b, ", \"total\": ");
	json_col_num(b, st, COL_T_TOTAL);
	json_printf(b, "}, \"has_thumb\": %s}", sqlite3_column_int(st, COL_HAS_THUMB) ? "true" : "false");
}

/*
 * Finish a JSON answer: on failure (or a buffer that ran out of memory)
 * cut out back to its length before the call, so no half answer is left.
 */
static int json_finish(struct json_buf *out, size_t len0, int rc, const char *fn, struct seer_err *err)
{
	if (rc == 0 && out->failed)
		rc = seer_err_set(err, SEER_ENOMEM, "%s: out of memory", fn);
	if (rc < 0 && !out->failed && out->data) {
		out->len = len0;
		out->data[len0] = '\0';
	}
	return rc;
}

int db_history_json(struct db *db, int limit, int64_t before_id, const char *label, struct json_buf *out,
		    struct seer_err *err)
{
	static const char fn[] = "db_history_json";
	sqlite3_stmt *st = db->st[label ? ST_HISTORY_LABEL : ST_HISTORY];
	size_t len0 = out->len;
	int64_t last_id = 0;
	int rc, n = 0;

	if (limit < 1 || limit > DB_HISTORY_LIMIT_MAX)
		return seer_err_set(err, SEER_EINVAL, "%s: limit %d is not within 1..%d", fn, limit,
				    DB_HISTORY_LIMIT_MAX);
	sqlite3_bind_int64(st, 1, before_id > 0 ? before_id : INT64_MAX);
	/* one row more than asked tells whether there is a next page */
	sqlite3_bind_int(st, 2, limit + 1);
	if (label)
		bind_text(st, 3, label);
	json_raw(out, "{\"items\": [");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == limit)
			break;
		if (n++ > 0)
			json_raw(out, ", ");
		row_json(out, st, 0);
		last_id = sqlite3_column_int64(st, COL_ID);
	}
	if (rc == SQLITE_ROW) {
		json_printf(out, "], \"next_before_id\": %lld}", (long long)last_id);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		json_raw(out, "], \"next_before_id\": null}");
		rc = 0;
	} else {
		rc = sql_fail(db->conn, rc, fn, err);
	}
	sqlite3_reset(st);
	return json_finish(out, len0, rc, fn, err);
}

int db_row_json(struct db *db, int64_t id, struct json_buf *out, struct seer_err *err)
{
	static const char fn[] = "db_row_json";
	sqlite3_stmt *st = db->st[ST_ROW];
	size_t len0 = out->len;
	int rc;

	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row_json(out, st, 1);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = seer_err_set(err, SEER_ENOENT, "%s: no row %lld", fn, (long long)id);
	} else {
		rc = sql_fail(db->conn, rc, fn, err);
	}
	sqlite3_reset(st);
	return json_finish(out, len0, rc, fn, err);
}

int db_thumb(struct db *db, int64_t id, void **jpeg, size_t *len, struct seer_err *err)
{
	static const char fn[] = "db_thumb";
	sqlite3_stmt *st = db->st[ST_THUMB];
	const void *blob;
	int rc;

	*jpeg = NULL;
	*len = 0;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		rc = seer_err_set(err, SEER_ENOENT, "%s: no thumbnail for row %lld", fn, (long long)id);
	} else if (rc != SQLITE_ROW) {
		rc = sql_fail(db->conn, rc, fn, err);
	} else {
		blob = sqlite3_column_blob(st, 0);
		*len = (size_t)sqlite3_column_bytes(st, 0);
		*jpeg = malloc(*len ? *len : 1);
		if (*jpeg == NULL) {
			*len = 0;
			rc = seer_err_set(err, SEER_ENOMEM, "%s: out of memory", fn);
		} else {
			if (*len)
				memcpy(*jpeg, blob, *len);
			rc = 0;
		}
	}
	sqlite3_reset(st);
	return rc;
}

/* The "hours" array of the stats: every hour of the window, zeros where nothing happened. */
static int stats_hours(struct db *db, int64_t since_h, int hours, struct json_buf *b, int64_t totals[4])
{
	sqlite3_stmt *st = db->st[ST_STATS_HOURS];
	int64_t h = since_h;
	int rc;

	json_raw(b, "[");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t row_h = sqlite3_column_int64(st, 0);
		int64_t count = sqlite3_column_int64(st, 1), errors = sqlite3_column_int64(st, 2);

		for (; h < row_h; h++)
			json_printf(b,
				    "%s{\"hour\": %lld, \"count\": 0, \"errors\": 0, \"avg_ms\": null, "
				    "\"max_ms\": null}",
				    h > since_h ? ", " : "", (long long)(h * 3600));
		json_printf(b, "%s{\"hour\": %lld, \"count\": %lld, \"errors\": %lld, \"avg_ms\": ",
			    h > since_h ? ", " : "", (long long)(h * 3600), (long long)count,
			    (long long)errors);
		json_col_num(b, st, 4);
		json_raw(b, ", \"max_ms\": ");
		json_col_num(b, st, 5);
		json_raw(b, "}");
		h++;
		totals[0] += count;
		totals[1] += count - errors;
		totals[2] += errors;
		totals[3] += sqlite3_column_int64(st, 3);
	}
	for (; h < since_h + hours; h++)
		json_printf(
			b,
			"%s{\"hour\": %lld, \"count\": 0, \"errors\": 0, \"avg_ms\": null, \"max_ms\": null}",
			h > since_h ? ", " : "", (long long)(h * 3600));
	json_raw(b, "]");
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int stats_labels(struct db *db, struct json_buf *b)
{
	sqlite3_stmt *st = db->st[ST_STATS_LABELS];
	int rc, n = 0;

	json_raw(b, "[");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_raw(b, n++ ? ", {\"label\": " : "{\"label\": ");
		json_col_str(b, st, 0);
		json_printf(b, ", \"count\": %lld}", (long long)sqlite3_column_int64(st, 1));
	}
	json_raw(b, "]");
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int db_stats_json(struct db *db, int hours, int64_t now_ms, struct json_buf *out, struct seer_err *err)
{
	static const char fn[] = "db_stats_json";
	struct json_buf series, labels;
	int64_t totals[4] = {0}; /* total, ok, errors, cached */
	int64_t now_h, since_h;
	size_t len0 = out->len;
	int rc, src;

	if (hours < 1 || hours > DB_STATS_HOURS_MAX)
		return seer_err_set(err, SEER_EINVAL, "%s: hours %d is not within 1..%d", fn, hours,
				    DB_STATS_HOURS_MAX);
	if (now_ms < 0)
		return seer_err_set(err, SEER_EINVAL, "%s: time before 1970", fn);
	now_h = now_ms / 3600000;
	since_h = now_h - hours + 1;
	json_buf_init(&series);
	json_buf_init(&labels);
	/* one read transaction: both queries see the same rows, however many workers are writing */
	rc = stmt_exec(db, ST_BEGIN, fn, err);
	if (rc < 0)
		return rc;
	for (int s = ST_STATS_HOURS; s <= ST_STATS_LABELS; s++) {
		sqlite3_bind_int64(db->st[s], 1, since_h * 3600000);
		sqlite3_bind_int64(db->st[s], 2, (now_h + 1) * 3600000);
	}
	src = stats_hours(db, since_h, hours, &series, totals);
	if (src == SQLITE_OK)
		src = stats_labels(db, &labels);
	if (src != SQLITE_OK) {
		rc = sql_fail(db->conn, src, fn, err);
		tx_abort(db);
		goto done;
	}
	rc = stmt_exec(db, ST_COMMIT, fn, err);
	if (rc < 0) {
		tx_abort(db);
		goto done;
	}
	if (series.failed || labels.failed) {
		rc = seer_err_set(err, SEER_ENOMEM, "%s: out of memory", fn);
		goto done;
	}
	json_printf(out,
		    "{\"total\": %lld, \"ok\": %lld, \"errors\": %lld, \"cached\": %lld, \"since\": %lld, ",
		    (long long)totals[0], (long long)totals[1], (long long)totals[2], (long long)totals[3],
		    (long long)(since_h * 3600));
	json_raw(out, "\"hours\": ");
	json_raw(out, series.data);
	json_raw(out, ", \"labels\": ");
	json_raw(out, labels.data);
	json_raw(out, "}");
done:
	json_buf_free(&series);
	json_buf_free(&labels);
	return json_finish(out, len0, rc, fn, err);
}

int db_explain(struct db *db, struct json_buf *out, struct seer_err *err)
{
	static const char fn[] = "db_explain";
	size_t len0 = out->len;
	int rc = 0;

	for (int i = 0; i < ST_N && rc == 0; i++) {
		sqlite3_stmt *st = NULL;
		char *sql;

		if (strncmp(stmt_defs[i].sql, "SELECT", 6) != 0 &&
		    strncmp(stmt_defs[i].sql, "DELETE", 6) != 0)
			continue;
		/* the text is one of ours, never a user value */
		sql = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", stmt_defs[i].sql);
		if (sql == NULL)
			return json_finish(out, len0, seer_err_set(err, SEER_ENOMEM, "%s: out of memory", fn),
					   fn, err);
		rc = sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL);
		sqlite3_free(sql);
		while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			json_printf(out, "%s: %s\n", stmt_defs[i].name,
				    (const char *)sqlite3_column_text(st, 3));
			rc = SQLITE_OK;
		}
		rc = rc == SQLITE_DONE ? 0 : sql_fail(db->conn, rc, fn, err);
		sqlite3_finalize(st);
	}
	return json_finish(out, len0, rc, fn, err);
}
