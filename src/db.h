/*
 * db.h - the classification history in SQLite.
 *
 * One row per classification request that reached a worker (successes and
 * failures), with a JPEG thumbnail for successes. The schema lives in
 * sql/NNN_*.sql and is compiled into the program; db_migrate() brings a
 * database file up to the newest version (PRAGMA user_version) and is run
 * once by the supervisor before any worker starts. Each worker then has its
 * own connection from db_open(): WAL journal, synchronous=NORMAL, a busy
 * timeout, foreign keys on.
 *
 * Every function returns 0 or a negative seer status with a message in err
 * (SEER_EIO for SQLite failures, naming SQLite's own message: "database or
 * disk is full", "database is locked", ...; SEER_EINVAL for a record that
 * breaks the schema's rules, SEER_ECORRUPT for a file that is not a sound
 * database, SEER_ENOMEM). A failed write leaves the database as it was (each
 * call is one transaction) and the connection usable.
 *
 * A struct db is one connection and its prepared statements: use it from one
 * thread at a time, and open it after fork(), never before.
 */
#ifndef SEER_DB_H
#define SEER_DB_H

#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "status.h"

struct db;

struct db_opts {
	int busy_timeout_ms; /* how long a write waits for the lock (default 5000) */
	int retention_batch; /* rows db_retention() deletes per transaction (default 10000) */
};

/* Bounds of db_history_json()'s limit and db_stats_json()'s hours (SEER_EINVAL outside). */
#define DB_HISTORY_LIMIT_MAX 1000
#define DB_STATS_HOURS_MAX (24 * 366)

/* Fill o with the defaults; passing NULL options to db_migrate() or db_open() means these. */
void db_opts_default(struct db_opts *o);

/*
 * Create the file if needed and apply every migration newer than its
 * user_version, each in its own transaction. Refuses (SEER_EUNSUPPORTED) a
 * database whose version is newer than this program knows, and one with
 * tables but no version (another program's file), changing nothing. Safe
 * when several processes run it at once: each migration is applied once.
 */
int db_migrate(const char *path, const struct db_opts *o, struct seer_err *err);

/* Open a connection to a database db_migrate() has brought up to date (else SEER_EUNSUPPORTED). */
int db_open(const char *path, const struct db_opts *o, struct db **out, struct seer_err *err);
void db_close(struct db *db);

/* The schema version this program writes (the newest migration). */
int db_schema_version(void);

/* One row. Strings may be NULL (stored as NULL). */
struct db_record {
	int64_t time_ms; /* Unix time in milliseconds */
	const char *client;
	const char *file_name;
	const char *content_type;
	int64_t bytes;
	int width, height;  /* 0 when the image was not decoded */
	const char *sha256; /* 64 lowercase hex digits */
	const char *model;
	int status;				/* the HTTP status of this image's answer */
	const char *error_code, *error_message; /* NULL on success */
	int top1_index;				/* -1 when there is no result */
	const char *top1_label;
	double top1_prob;
	const char *topk_json; /* JSON array [{"index","label","prob"},...], NULL on failure */
	int cached;
	double t_decode, t_preprocess, t_inference, t_total; /* milliseconds */
	const void *thumb;				     /* JPEG bytes or NULL */
	size_t thumb_len;
};

/*
 * Insert n rows in one transaction (all or none); ids[i] (ids may be NULL)
 * receives the id of recs[i], or 0 when the call fails. A success
 * (error_code NULL) must have top1_index >= 0, top1_label and topk_json;
 * topk_json must be valid JSON; sha256 64 lowercase hex digits; status an
 * HTTP status (SEER_EINVAL otherwise). Ids are never reused, even after
 * retention deleted every row.
 */
int db_insert(struct db *db, const struct db_record *recs, int n, int64_t *ids, struct seer_err *err);

/*
 * The stored answer for these bytes and this model: the newest successful
 * row with this sha256 and model. Returns 1 and sets *topk_json (malloc'd
 * JSON array, caller frees), *width, *height; 0 when there is none.
 */
int db_cache_lookup(struct db *db, const char *sha256, const char *model, char **topk_json, int *width,
		    int *height, struct seer_err *err);

/*
 * Append to out the JSON of GET /api/history (API.md): rows newest first,
 * at most limit, with id < before_id (before_id <= 0: from the newest),
 * top-1 label equal to label when label is not NULL.
 *
 * All the JSON functions leave out as it was when they fail.
 */
int db_history_json(struct db *db, int limit, int64_t before_id, const char *label, struct json_buf *out,
		    struct seer_err *err);

/* Append one ROW (with its full topk) to out; SEER_ENOENT when there is no such id. */
int db_row_json(struct db *db, int64_t id, struct json_buf *out, struct seer_err *err);

/* The thumbnail of row id (malloc'd, caller frees); SEER_ENOENT when there is none. */
int db_thumb(struct db *db, int64_t id, void **jpeg, size_t *len, struct seer_err *err);

/*
 * Append the JSON of GET /api/stats?hours=hours (API.md), counting back from
 * now_ms: `hours` whole UTC hours, the last one containing now_ms, every hour
 * listed (avg_ms and max_ms are null for an hour without requests). The
 * totals cover the same window.
 */
int db_stats_json(struct db *db, int hours, int64_t now_ms, struct json_buf *out, struct seer_err *err);

/*
 * Delete the oldest rows (and their thumbnails) beyond max_rows and those
 * older than max_days before now_ms; 0 disables either. *deleted (may be
 * NULL) receives the number of rows removed. The deletes run in batches of
 * opts.retention_batch rows, each its own transaction, so a large backlog
 * never holds the write lock for long; on failure the batches already done
 * stay done (and are counted in *deleted).
 */
int db_retention(struct db *db, int64_t max_rows, int max_days, int64_t now_ms, int64_t *deleted,
		 struct seer_err *err);

/*
 * Copy the write-ahead log back into the database once this connection's
 * commits have grown it past 1000 pages. A commit never does that itself
 * (db_open() turns SQLite's automatic checkpoint off), so a writer calls
 * this when nobody waits on it: seerd's workers after sending their
 * answers. A passive checkpoint: it never waits for other connections and
 * copies what their readers no longer need. Returns 1 if it ran, 0 if the
 * log was still small or another connection was checkpointing it, or a
 * negative status.
 */
int db_checkpoint(struct db *db, struct seer_err *err);

/*
 * For tests and diagnostics: append the query plan SQLite chose for each
 * prepared statement, one "NAME: DETAIL" line per plan step, so a lookup
 * that silently turned into a table scan can be caught.
 */
int db_explain(struct db *db, struct json_buf *out, struct seer_err *err);

/*
 * Internal: the migrations, sql/NNN_*.sql in order (migration i brings the
 * schema to version i + 1), compiled in by scripts/gen-sql.sh.
 */
extern const int db_migrations_count;
extern const char *const db_migration_names[];
extern const char *const db_migration_sql[];

#endif
