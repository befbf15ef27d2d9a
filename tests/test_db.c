/*
 * test_db.c - the history database against real SQLite files: migrations
 * (repeated, refused, raced), rows and their JSON, the cache lookup, paging,
 * statistics, retention, and writes that fail on a full disk or a held lock
 * without losing or damaging anything.
 *
 * JSON answers are checked with SQLite's own JSON functions (json_valid,
 * json_extract) on an in-memory database: a real parser, not string matching.
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <sqlite3.h>

#include "db.h"
#include "tap.h"

static char tmpdir[] = "/tmp/seer-test-db-XXXXXX";
static sqlite3 *jdb; /* in-memory: runs the JSON checks */

/* ---------------------------------------------------------------- helpers */

/* A fresh database path in the test directory. */
static const char *db_path(const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

/* Open path with the plain SQLite API, as another program would. */
static sqlite3 *raw_open(const char *path)
{
	sqlite3 *c = NULL;

	if (sqlite3_open_v2(path, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		printf("# raw_open %s: %s\n", path, c ? sqlite3_errmsg(c) : "?");
		sqlite3_close(c);
		return NULL;
	}
	sqlite3_busy_timeout(c, 5000);
	return c;
}

/* The first column of the first row of sql as an integer; -1 on error. */
static long long raw_int(sqlite3 *c, const char *sql)
{
	sqlite3_stmt *st;
	long long v = -1;

	if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) != SQLITE_OK) {
		printf("# %s: %s\n", sql, sqlite3_errmsg(c));
		return -1;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The first column of the first row as a malloc'd string (NULL for SQL NULL or error). */
static char *raw_text(sqlite3 *c, const char *sql)
{
	sqlite3_stmt *st;
	char *v = NULL;

	if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		v = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return v;
}

static int raw_exec(sqlite3 *c, const char *sql)
{
	int rc = sqlite3_exec(c, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		printf("# %s: %s\n", sql, sqlite3_errmsg(c));
	return rc;
}

/* Rows in a table of the database at path, through a new connection. */
static long long count_rows(const char *path, const char *table)
{
	char sql[128];
	sqlite3 *c = raw_open(path);
	long long n;

	if (c == NULL)
		return -1;
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	n = raw_int(c, sql);
	sqlite3_close(c);
	return n;
}

/* The file's journal mode is WAL. */
static int journal_is_wal(const char *path)
{
	sqlite3 *c = raw_open(path);
	char *mode = c ? raw_text(c, "PRAGMA journal_mode") : NULL;
	int wal = mode && strcmp(mode, "wal") == 0;

	free(mode);
	sqlite3_close(c);
	return wal;
}

/* PRAGMA integrity_check through a new connection is exactly "ok". */
static int integrity_ok(const char *path)
{
	sqlite3 *c = raw_open(path);
	char *r = c ? raw_text(c, "PRAGMA integrity_check") : NULL;
	int ok = r && strcmp(r, "ok") == 0;

	if (!ok)
		printf("# integrity_check: %s\n", r ? r : "(failed)");
	free(r);
	sqlite3_close(c);
	return ok;
}

/* Evaluate "SELECT expr" with ?1 = doc and ?2 = path on the JSON connection. */
static sqlite3_stmt *jeval(const char *expr, const char *doc, const char *path)
{
	char sql[256];
	sqlite3_stmt *st;

	snprintf(sql, sizeof(sql), "SELECT %s", expr);
	if (sqlite3_prepare_v2(jdb, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_text(st, 1, doc ? doc : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path ? path : "$", -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

static int json_valid_doc(const char *doc)
{
	sqlite3_stmt *st = jeval("json_valid(?1)", doc, NULL);
	int ok = st && sqlite3_column_int(st, 0) == 1;

	sqlite3_finalize(st);
	return ok;
}

/* The value at path as text (a static copy; "(null)" for JSON null or a missing path). */
static const char *jtext(const char *doc, const char *path)
{
	static char buf[4][512];
	static int k;
	sqlite3_stmt *st = jeval("json_extract(?1, ?2)", doc, path);
	char *out = buf[k++ % 4];

	snprintf(out, 512, "%s",
		 st && sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "(null)");
	sqlite3_finalize(st);
	return out;
}

/* The JSON type at path ("null", "integer", "real", "text", "true", "false", "object", "array"). */
static const char *jtype(const char *doc, const char *path)
{
	static char buf[4][16];
	static int k;
	sqlite3_stmt *st = jeval("json_type(?1, ?2)", doc, path);
	char *out = buf[k++ % 4];

	snprintf(out, 16, "%s",
		 st && sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "(missing)");
	sqlite3_finalize(st);
	return out;
}

static double jnum(const char *doc, const char *path)
{
	sqlite3_stmt *st = jeval("json_extract(?1, ?2)", doc, path);
	double v = st ? sqlite3_column_double(st, 0) : NAN;

	sqlite3_finalize(st);
	return v;
}

static long long jint(const char *doc, const char *path)
{
	sqlite3_stmt *st = jeval("json_extract(?1, ?2)", doc, path);
	long long v = st ? sqlite3_column_int64(st, 0) : -999;

	sqlite3_finalize(st);
	return v;
}

/* The ids of a history page's items, in order, into ids[]; returns how many (-1 on error). */
static int page_ids(const char *doc, int64_t *ids, int cap)
{
	sqlite3_stmt *st;
	int n = 0;

	if (sqlite3_prepare_v2(jdb, "SELECT json_extract(value, '$.id') FROM json_each(?1, '$.items')", -1,
			       &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, doc, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW && n < cap)
		ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static const char topk_tabby[] = "[{\"index\": 281, \"label\": \"tabby\", \"prob\": 0.81234567}, "
				 "{\"index\": 282, \"label\": \"tiger cat\", \"prob\": 0.1}, "
				 "{\"index\": 285, \"label\": \"Egyptian cat\", \"prob\": 0.05}]";
static const char sha_a[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
static const char sha_b[] = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

/* A successful record with the given label; everything else plausible. */
static struct db_record rec_ok(int64_t time_ms, const char *label)
{
	struct db_record r = {
		.time_ms = time_ms,
		.client = "127.0.0.1",
		.file_name = "cat.jpg",
		.content_type = "image/jpeg",
		.bytes = 39012,
		.width = 500,
		.height = 375,
		.sha256 = sha_a,
		.model = "resnet18-f37072fd",
		.status = 200,
		.top1_index = 281,
		.top1_label = label,
		.top1_prob = 0.81234567,
		.topk_json = topk_tabby,
		.t_decode = 4.1,
		.t_preprocess = 0.3,
		.t_inference = 19.8,
		.t_total = 24.6,
	};
	return r;
}

/* A failed record: nothing decoded, no result. */
static struct db_record rec_fail(int64_t time_ms)
{
	struct db_record r = {
		.time_ms = time_ms,
		.client = "10.0.0.7",
		.bytes = 12,
		.status = 415,
		.error_code = "unsupported_format",
		.error_message = "GIF images are not supported; upload a JPEG or PNG",
		.top1_index = -1,
		.t_total = 0.2,
	};
	return r;
}

/* Migrate and open a fresh database in the test directory; NULL (and a failed test point) on error. */
static struct db *fresh_db(const char *name, const struct db_opts *o)
{
	struct seer_err err = {0};
	struct db *db = NULL;
	int rc;

	rc = db_migrate(db_path(name), o, &err);
	if (rc == 0)
		rc = db_open(db_path(name), o, &db, &err);
	if (rc < 0)
		tap_ok(0, "create %s: %s", name, err.msg);
	return db;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* -------------------------------------------------------------- migrations */

static long count_bytes(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* The supervisor migrates as root where the service user can write: no symlinks. */
static void test_symlink(void)
{
	struct seer_err err = {0};
	char target[1100];
	FILE *fp;
	int rc;

	snprintf(target, sizeof(target), "%s", db_path("victim"));
	fp = fopen(target, "w");
	if (fp != NULL) {
		fputs("not a database\n", fp);
		fclose(fp);
	}
	if (symlink(target, db_path("link.db")) == 0) {
		rc = db_migrate(db_path("link.db"), NULL, &err);
		tap_ok(rc != 0 && count_bytes(target) == 15,
		       "a symlink in place of the database is refused, its target untouched (%s)", err.msg);
	} else {
		tap_ok(0, "symlink: %s", strerror(errno));
	}
}

static void test_migrate(void)
{
	const char *path = db_path("migrate.db");
	struct seer_err err = {0};
	struct db *db = NULL;
	char *schema1, *schema2, *mode;
	sqlite3 *c;
	int rc;

	tap_ok(db_schema_version() >= 1 && db_migrations_count == db_schema_version() &&
		       strcmp(db_migration_names[0], "001_init.sql") == 0,
	       "the migrations are compiled in, in order (version %d)", db_schema_version());
	rc = db_migrate(path, NULL, &err);
	tap_ok(rc == 0, "migrate a new file (%s)", rc ? err.msg : "ok");
	c = raw_open(path);
	tap_ok(raw_int(c, "PRAGMA user_version") == db_schema_version(),
	       "user_version is the schema version");
	mode = raw_text(c, "PRAGMA journal_mode");
	tap_ok(mode && strcmp(mode, "wal") == 0, "journal mode is WAL (%s)", mode ? mode : "?");
	free(mode);
	schema1 = raw_text(c, "SELECT group_concat(type || ' ' || name || ': ' || sql, '; ') FROM "
			      "(SELECT * FROM sqlite_master ORDER BY name)");
	tap_ok(schema1 && strstr(schema1, "table classification") && strstr(schema1, "table thumbnail") &&
		       strstr(schema1, "index classification_cache") &&
		       strstr(schema1, "index classification_label"),
	       "tables and indexes exist");
	sqlite3_close(c);

	rc = db_migrate(path, NULL, &err);
	tap_ok(rc == 0, "migrating again succeeds (%s)", rc ? err.msg : "ok");
	c = raw_open(path);
	schema2 = raw_text(c, "SELECT group_concat(type || ' ' || name || ': ' || sql, '; ') FROM "
			      "(SELECT * FROM sqlite_master ORDER BY name)");
	tap_ok(schema1 && schema2 && strcmp(schema1, schema2) == 0 &&
		       raw_int(c, "PRAGMA user_version") == db_schema_version(),
	       "and changes nothing");
	free(schema1);
	free(schema2);

	rc = db_open(path, NULL, &db, &err);
	tap_ok(rc == 0 && db != NULL, "open the migrated file (%s)", rc ? err.msg : "ok");
	db_close(db);
	db = NULL;

	/* a database from a newer seer */
	raw_exec(c, "PRAGMA user_version = 99");
	sqlite3_close(c);
	rc = db_migrate(path, NULL, &err);
	tap_ok(rc == SEER_EUNSUPPORTED && strstr(err.msg, "newer"),
	       "a newer schema is refused by migrate (%s)", err.msg);
	rc = db_open(path, NULL, &db, &err);
	tap_ok(rc == SEER_EUNSUPPORTED && db == NULL && strstr(err.msg, "newer"), "and by open (%s)",
	       err.msg);
	c = raw_open(path);
	tap_ok(raw_int(c, "PRAGMA user_version") == 99, "and left as it was");
	sqlite3_close(c);

	/* a database nobody migrated */
	c = raw_open(db_path("bare.db"));
	raw_exec(c, "CREATE TABLE other (x)");
	sqlite3_close(c);
	rc = db_open(db_path("bare.db"), NULL, &db, &err);
	tap_ok(rc == SEER_EUNSUPPORTED && db == NULL && strstr(err.msg, "not migrated"),
	       "open refuses an unmigrated file (%s)", err.msg);
	rc = db_migrate(db_path("bare.db"), NULL, &err);
	tap_ok(rc == SEER_EUNSUPPORTED && strstr(err.msg, "not a seer history database") &&
		       count_rows(db_path("bare.db"), "sqlite_master") == 1 &&
		       !journal_is_wal(db_path("bare.db")),
	       "migrate leaves another program's database alone (%s)", err.msg);
	c = raw_open(db_path("negative.db"));
	raw_exec(c, "PRAGMA user_version = -3");
	sqlite3_close(c);
	rc = db_migrate(db_path("negative.db"), NULL, &err);
	tap_ok(rc == SEER_ECORRUPT, "a negative schema version is refused (%s)", err.msg);

	/* not a database at all */
	{
		FILE *fp = fopen(db_path("junk.db"), "wb");

		for (int i = 0; i < 512; i++)
			fputs("this is not an SQLite file\n", fp);
		fclose(fp);
	}
	rc = db_migrate(db_path("junk.db"), NULL, &err);
	tap_ok(rc == SEER_ECORRUPT && strstr(err.msg, "not a database"),
	       "a non-database file is refused (%s)", err.msg);
	rc = db_open(db_path("missing/dir.db"), NULL, &db, &err);
	tap_ok(rc < 0 && db == NULL && strstr(err.msg, "unable to open"), "a missing file is refused (%s)",
	       err.msg);
}

/*
 * Several processes start at once on a new file: all succeed and the schema
 * is applied once. Repeated on fresh files, since a race shows only now and
 * then.
 */
static int race_round(const char *path, int nproc)
{
	int go[2], failed = 0;
	pid_t pids[8];

	if (pipe(go) < 0)
		return nproc;
	fflush(stdout);
	for (int i = 0; i < nproc; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct seer_err err = {0};
			char b;
			int rc;

			close(go[1]);
			/* wait for the parent to close the pipe: every child starts together */
			if (read(go[0], &b, 1) < 0)
				_exit(2);
			rc = db_migrate(path, NULL, &err);
			if (rc < 0)
				fprintf(stderr, "child %d: %s\n", i, err.msg);
			_exit(rc == 0 ? 0 : 1);
		}
	}
	close(go[0]);
	close(go[1]);
	for (int i = 0; i < nproc; i++) {
		int status;

		if (pids[i] < 0 || waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			failed++;
	}
	return failed;
}

static void test_migrate_race(void)
{
	int rounds = 20, nproc = 4, failed = 0, wrong = 0;
	char name[32];

	for (int k = 0; k < rounds; k++) {
		sqlite3 *c;
		char *schema;

		snprintf(name, sizeof(name), "race%d.db", k);
		failed += race_round(db_path(name), nproc);
		c = raw_open(db_path(name));
		schema = raw_text(c, "SELECT count(*) || ' ' || group_concat(name) FROM sqlite_master "
				     "WHERE type = 'table' AND name IN ('classification', 'thumbnail')");
		if (raw_int(c, "PRAGMA user_version") != db_schema_version() || schema == NULL ||
		    strncmp(schema, "2 ", 2) != 0)
			wrong++;
		free(schema);
		sqlite3_close(c);
		if (!integrity_ok(db_path(name)))
			wrong++;
	}
	tap_ok(failed == 0, "%d times %d processes migrating one new file at once: all succeed (%d failed)",
	       rounds, nproc, failed);
	tap_ok(wrong == 0, "each file has the schema once, at the right version, and is sound");
}

/* -------------------------------------------------------------------- rows */

static void test_rows(void)
{
	static const char name[] =
		"caf\xc3\xa9 \xe7\x8c\xab \xf0\x9f\x90\xb1 \"quoted\" back\\slash\nline.jpg";
	unsigned char thumb[700];
	struct db_record recs[3];
	struct seer_err err = {0};
	struct json_buf out;
	int64_t ids[3] = {0};
	void *jpeg = NULL;
	size_t len = 0;
	struct db *db;
	int rc;

	db = fresh_db("rows.db", NULL);
	if (db == NULL)
		return;
	for (size_t i = 0; i < sizeof(thumb); i++)
		thumb[i] = (unsigned char)(i * 7 + 3);
	recs[0] = rec_ok(1795909212345, "tabby");
	recs[0].file_name = name;
	recs[0].thumb = thumb;
	recs[0].thumb_len = sizeof(thumb);
	recs[1] = rec_fail(999);
	recs[1].t_decode = NAN;
	recs[2] = rec_ok(1700000000001, "tabby");
	recs[2].cached = 1;
	rc = db_insert(db, recs, 3, ids, &err);
	tap_ok(rc == 0 && ids[0] > 0 && ids[1] == ids[0] + 1 && ids[2] == ids[1] + 1,
	       "insert 3 rows in one call (%s)", rc ? err.msg : "ok");

	json_buf_init(&out);
	rc = db_row_json(db, ids[0], &out, &err);
	tap_ok(rc == 0 && json_valid_doc(out.data), "row JSON of a success is valid JSON (%s)",
	       rc ? err.msg : "ok");
	printf("# %s\n", out.data ? out.data : "");
	tap_ok(jint(out.data, "$.id") == ids[0] &&
		       strcmp(jtext(out.data, "$.time"), "2026-11-28T23:40:12.345Z") == 0,
	       "id and ISO-8601 time with milliseconds");
	tap_ok(strcmp(jtext(out.data, "$.file"), name) == 0,
	       "a unicode file name with quotes and a newline round-trips");
	tap_ok(strcmp(jtext(out.data, "$.client"), "127.0.0.1") == 0 &&
		       strcmp(jtext(out.data, "$.content_type"), "image/jpeg") == 0 &&
		       jint(out.data, "$.bytes") == 39012 && jint(out.data, "$.width") == 500 &&
		       jint(out.data, "$.height") == 375 && strcmp(jtext(out.data, "$.sha256"), sha_a) == 0 &&
		       strcmp(jtext(out.data, "$.model"), "resnet18-f37072fd") == 0 &&
		       jint(out.data, "$.status") == 200,
	       "client, type, sizes, hash, model, status");
	tap_ok(strcmp(jtype(out.data, "$.error"), "null") == 0 &&
		       strcmp(jtype(out.data, "$.cached"), "false") == 0 &&
		       strcmp(jtype(out.data, "$.has_thumb"), "true") == 0,
	       "error null, cached false, has_thumb true");
	tap_ok(jint(out.data, "$.top1.index") == 281 &&
		       strcmp(jtext(out.data, "$.top1.label"), "tabby") == 0 &&
		       fabs(jnum(out.data, "$.top1.prob") - 0.81234567) <= 1e-8,
	       "top1 with its probability to 8 digits (%s)", jtext(out.data, "$.top1.prob"));
	tap_ok(strcmp(jtype(out.data, "$.topk"), "array") == 0 &&
		       strcmp(jtext(out.data, "$.topk[2].label"), "Egyptian cat") == 0 &&
		       strcmp(jtype(out.data, "$.topk[3]"), "(missing)") == 0,
	       "the full top-K");
	tap_ok(fabs(jnum(out.data, "$.timings_ms.decode") - 4.1) < 1e-9 &&
		       fabs(jnum(out.data, "$.timings_ms.total") - 24.6) < 1e-9,
	       "timings");

	json_buf_reset(&out);
	rc = db_row_json(db, ids[1], &out, &err);
	tap_ok(rc == 0 && json_valid_doc(out.data), "row JSON of a failure is valid JSON (%s)",
	       rc ? err.msg : "ok");
	printf("# %s\n", out.data ? out.data : "");
	tap_ok(strcmp(jtext(out.data, "$.time"), "1970-01-01T00:00:00.999Z") == 0, "time %s",
	       jtext(out.data, "$.time"));
	tap_ok(strcmp(jtype(out.data, "$.file"), "null") == 0 &&
		       strcmp(jtype(out.data, "$.content_type"), "null") == 0 &&
		       strcmp(jtype(out.data, "$.width"), "null") == 0 &&
		       strcmp(jtype(out.data, "$.sha256"), "null") == 0 &&
		       strcmp(jtype(out.data, "$.model"), "null") == 0,
	       "NULL strings and unknown sizes come back as null");
	tap_ok(jint(out.data, "$.status") == 415 &&
		       strcmp(jtext(out.data, "$.error.code"), "unsupported_format") == 0 &&
		       strstr(jtext(out.data, "$.error.message"), "GIF") != NULL,
	       "status and error object");
	tap_ok(strcmp(jtype(out.data, "$.top1"), "null") == 0 &&
		       strcmp(jtype(out.data, "$.topk"), "null") == 0 &&
		       strcmp(jtype(out.data, "$.has_thumb"), "false") == 0 &&
		       strcmp(jtype(out.data, "$.timings_ms.decode"), "null") == 0,
	       "no top1, no topk, no thumbnail, a NaN timing is null");

	json_buf_reset(&out);
	rc = db_row_json(db, ids[2], &out, &err);
	tap_ok(rc == 0 && strcmp(jtype(out.data, "$.cached"), "true") == 0 &&
		       strcmp(jtext(out.data, "$.time"), "2023-11-14T22:13:20.001Z") == 0,
	       "cached true; time %s", jtext(out.data, "$.time"));

	{
		size_t before = out.len;

		rc = db_row_json(db, ids[2] + 100, &out, &err);
		tap_ok(rc == SEER_ENOENT && out.len == before,
		       "an unknown id is ENOENT and appends nothing (%s)", err.msg);
	}

	rc = db_thumb(db, ids[0], &jpeg, &len, &err);
	tap_ok(rc == 0 && len == sizeof(thumb) && memcmp(jpeg, thumb, len) == 0, "the thumbnail round-trips");
	free(jpeg);
	rc = db_thumb(db, ids[1], &jpeg, &len, &err);
	tap_ok(rc == SEER_ENOENT && jpeg == NULL, "no thumbnail for a failure (%s)", err.msg);
	rc = db_thumb(db, ids[2], &jpeg, &len, &err);
	tap_ok(rc == 0 && len == sizeof(thumb) && memcmp(jpeg, thumb, len) == 0,
	       "a row answered from the cache shows the thumbnail of the same bytes' row");
	free(jpeg);
	json_buf_reset(&out);
	rc = db_row_json(db, ids[2], &out, &err);
	tap_ok(rc == 0 && strcmp(jtype(out.data, "$.has_thumb"), "true") == 0, "... and says it has one");

	/* all or nothing: the third record breaks a schema rule, so none of the three is stored */
	{
		long long before = count_rows(db_path("rows.db"), "classification");
		int64_t bad_ids[3] = {0};

		recs[2].topk_json = "[{\"index\": 1, ";
		rc = db_insert(db, recs, 3, bad_ids, &err);
		tap_ok(rc == SEER_EINVAL && strstr(err.msg, "CHECK"), "malformed top-K JSON is refused (%s)",
		       err.msg);
		tap_ok(count_rows(db_path("rows.db"), "classification") == before &&
			       count_rows(db_path("rows.db"), "thumbnail") == 1 && bad_ids[0] == 0,
		       "and none of the batch was stored");
		recs[2].topk_json = topk_tabby;
		recs[2].sha256 = "ABC";
		rc = db_insert(db, recs, 3, bad_ids, &err);
		tap_ok(rc == SEER_EINVAL && strstr(err.msg, "sha256"), "a bad sha256 is refused (%s)",
		       err.msg);
		recs[2].sha256 = sha_a;
		recs[2].topk_json = NULL;
		rc = db_insert(db, recs, 3, bad_ids, &err);
		tap_ok(rc == SEER_EINVAL && strstr(err.msg, "top-K"),
		       "a success without top-K is refused (%s)", err.msg);
		recs[2].topk_json = topk_tabby;
		rc = db_insert(db, recs, 3, bad_ids, &err);
		tap_ok(rc == 0 && bad_ids[0] == ids[2] + 1, "the connection still writes afterwards (%s)",
		       rc ? err.msg : "ok");
	}
	json_buf_free(&out);
	db_close(db);
	tap_ok(integrity_ok(db_path("rows.db")), "integrity_check ok");
}

/* ------------------------------------------------------------------- cache */

static void test_cache(void)
{
	struct seer_err err = {0};
	struct db_record r[4];
	char *topk = NULL;
	int w = 0, h = 0, rc;
	struct db *db;

	db = fresh_db("cache.db", NULL);
	if (db == NULL)
		return;
	r[0] = rec_ok(1000, "tabby");
	r[0].topk_json = "[{\"index\": 281, \"label\": \"tabby\", \"prob\": 0.5}]";
	r[1] = rec_ok(2000, "tench"); /* same bytes, another model */
	r[1].model = "resnet18-other";
	r[1].topk_json = "[{\"index\": 0, \"label\": \"tench\", \"prob\": 0.9}]";
	r[1].width = 64;
	r[1].height = 32;
	r[2] = rec_fail(3000); /* same bytes and model, newer, but failed */
	r[2].sha256 = sha_a;
	r[2].model = "resnet18-f37072fd";
	r[3] = rec_ok(4000, "goldfish"); /* other bytes */
	r[3].sha256 = sha_b;
	r[3].topk_json = "[{\"index\": 1, \"label\": \"goldfish\", \"prob\": 0.7}]";
	rc = db_insert(db, r, 4, NULL, &err);
	tap_ok(rc == 0, "insert rows for the cache (%s)", rc ? err.msg : "ok");

	rc = db_cache_lookup(db, sha_a, "resnet18-f37072fd", &topk, &w, &h, &err);
	tap_ok(rc == 1 && topk && strcmp(topk, r[0].topk_json) == 0 && w == 500 && h == 375,
	       "hit: the successful row of this model, not the newer failure (%s)", topk ? topk : "none");
	free(topk);
	rc = db_cache_lookup(db, sha_a, "resnet18-other", &topk, &w, &h, &err);
	tap_ok(rc == 1 && topk && strcmp(topk, r[1].topk_json) == 0 && w == 64 && h == 32,
	       "another model gets its own answer");
	free(topk);
	rc = db_cache_lookup(db, sha_b, "resnet18-other", &topk, &w, &h, &err);
	tap_ok(rc == 0 && topk == NULL, "miss for bytes this model never saw");
	rc = db_cache_lookup(db, "0000000000000000000000000000000000000000000000000000000000000000",
			     "resnet18-f37072fd", &topk, &w, &h, &err);
	tap_ok(rc == 0 && topk == NULL, "miss for unknown bytes");

	r[0].topk_json = "[{\"index\": 281, \"label\": \"tabby\", \"prob\": 0.75}]";
	r[0].time_ms = 5000;
	rc = db_insert(db, r, 1, NULL, &err);
	rc = db_cache_lookup(db, sha_a, "resnet18-f37072fd", &topk, &w, &h, &err);
	tap_ok(rc == 1 && topk && strstr(topk, "0.75"), "the newest successful row wins");
	free(topk);
	db_close(db);
}

/* -------------------------------------------------------------- history */

/* Walk every page of the history (label may be NULL); returns the number of pages, ids in seen[]. */
static int walk_pages(struct db *db, int limit, const char *label, int64_t *seen, int cap, int *nseen,
		      int *bad)
{
	struct seer_err err = {0};
	struct json_buf out;
	int64_t before = 0;
	int pages = 0;

	*nseen = 0;
	*bad = 0;
	json_buf_init(&out);
	for (;;) {
		int64_t ids[DB_HISTORY_LIMIT_MAX];
		int n, rc;

		json_buf_reset(&out);
		rc = db_history_json(db, limit, before, label, &out, &err);
		if (rc < 0 || !json_valid_doc(out.data)) {
			printf("# page %d: %s\n", pages, rc < 0 ? err.msg : "invalid JSON");
			(*bad)++;
			break;
		}
		pages++;
		n = page_ids(out.data, ids, DB_HISTORY_LIMIT_MAX);
		if (n > limit || strcmp(jtype(out.data, "$.items[0].topk"), "(missing)") != 0)
			(*bad)++;
		for (int i = 0; i < n; i++) {
			char path[64];

			if (*nseen < cap)
				seen[(*nseen)++] = ids[i];
			snprintf(path, sizeof(path), "$.items[%d].top1.label", i);
			if (label && strcmp(jtext(out.data, path), label) != 0)
				(*bad)++;
		}
		if (strcmp(jtype(out.data, "$.next_before_id"), "null") == 0)
			break;
		before = jint(out.data, "$.next_before_id");
		if (n != limit || before != ids[n - 1] || pages > 1000) {
			(*bad)++;
			break;
		}
	}
	json_buf_free(&out);
	return pages;
}

/* Every id of want[] appears exactly once in seen[], newest (highest) first. */
static int same_ids_desc(const int64_t *seen, int nseen, const int64_t *want, int nwant)
{
	if (nseen != nwant)
		return 0;
	for (int i = 0; i < nseen; i++) {
		if (seen[i] != want[nwant - 1 - i])
			return 0;
	}
	return 1;
}

static void test_history(void)
{
	static const char *labels[] = {"tabby", "goldfish", "tench"};
	int64_t ids[57], seen[128], tabby[57];
	struct db_record r;
	struct seer_err err = {0};
	struct json_buf out;
	int pages, nseen, bad, ntabby = 0, rc = 0;
	struct db *db;

	db = fresh_db("history.db", NULL);
	if (db == NULL)
		return;
	/* inserted one by one, as workers do; every 7th fails */
	for (int i = 0; i < 57 && rc == 0; i++) {
		r = i % 7 == 3 ? rec_fail(1000 + i) : rec_ok(1000 + i, labels[i % 3]);
		rc = db_insert(db, &r, 1, &ids[i], &err);
		if (r.error_code == NULL && i % 3 == 0)
			tabby[ntabby++] = ids[i];
	}
	tap_ok(rc == 0, "insert 57 rows (%s)", rc ? err.msg : "ok");

	pages = walk_pages(db, 10, NULL, seen, 128, &nseen, &bad);
	tap_ok(pages == 6 && bad == 0 && same_ids_desc(seen, nseen, ids, 57),
	       "pages of 10: 6 pages, every row once, newest first (%d pages, %d rows, %d problems)", pages,
	       nseen, bad);
	pages = walk_pages(db, 19, NULL, seen, 128, &nseen, &bad);
	tap_ok(pages == 3 && bad == 0 && same_ids_desc(seen, nseen, ids, 57),
	       "pages of 19: a full last page still ends the walk (%d pages)", pages);
	pages = walk_pages(db, 1, NULL, seen, 128, &nseen, &bad);
	tap_ok(pages == 57 && bad == 0 && same_ids_desc(seen, nseen, ids, 57), "pages of 1 (%d pages)",
	       pages);
	pages = walk_pages(db, 200, NULL, seen, 128, &nseen, &bad);
	tap_ok(pages == 1 && bad == 0 && same_ids_desc(seen, nseen, ids, 57), "one page of 200");

	pages = walk_pages(db, 4, "tabby", seen, 128, &nseen, &bad);
	tap_ok(bad == 0 && same_ids_desc(seen, nseen, tabby, ntabby),
	       "label=tabby: only tabby rows, each once, newest first (%d of %d, %d pages)", nseen, ntabby,
	       pages);
	pages = walk_pages(db, 4, "no such label", seen, 128, &nseen, &bad);
	tap_ok(pages == 1 && nseen == 0 && bad == 0, "an unknown label: one empty page");

	json_buf_init(&out);
	rc = db_history_json(db, 5, ids[10], NULL, &out, &err);
	tap_ok(rc == 0 && jint(out.data, "$.items[0].id") == ids[9] &&
		       jint(out.data, "$.items[4].id") == ids[5] &&
		       jint(out.data, "$.next_before_id") == ids[5],
	       "before_id starts below that id");
	json_buf_reset(&out);
	rc = db_history_json(db, 5, ids[0], NULL, &out, &err);
	tap_ok(rc == 0 && json_valid_doc(out.data) &&
		       strcmp(jtype(out.data, "$.items[0]"), "(missing)") == 0 &&
		       strcmp(jtype(out.data, "$.next_before_id"), "null") == 0,
	       "before the first row: empty, no next page (%s)", out.data);
	json_buf_reset(&out);
	rc = db_history_json(db, 0, 0, NULL, &out, &err);
	tap_ok(rc == SEER_EINVAL && out.len == 0, "limit 0 refused (%s)", err.msg);
	rc = db_history_json(db, DB_HISTORY_LIMIT_MAX + 1, 0, NULL, &out, &err);
	tap_ok(rc == SEER_EINVAL && out.len == 0, "limit over the maximum refused");
	json_buf_free(&out);
	db_close(db);
}

/* The statements stay index searches: a regression to a table scan would pass every other test. */
static void test_plans(void)
{
	struct seer_err err = {0};
	struct json_buf out;
	struct db *db;
	int rc;

	db = fresh_db("plans.db", NULL);
	if (db == NULL)
		return;
	json_buf_init(&out);
	rc = db_explain(db, &out, &err);
	tap_ok(rc == 0 && out.data, "explain (%s)", rc ? err.msg : "ok");
	if (rc == 0) {
		for (char *line = out.data, *nl; *line; line = nl + 1) {
			nl = strchr(line, '\n');
			printf("# %.*s\n", (int)(nl - line), line);
		}
		tap_ok(strstr(out.data, "cache: SEARCH classification USING INDEX classification_cache "
					"(sha256=? AND model=?)") != NULL,
		       "cache lookup searches classification_cache");
		tap_ok(strstr(out.data, "history_label: SEARCH c USING INDEX classification_label "
					"(top1_label=? AND id<?)") != NULL,
		       "label filter with paging is a range of classification_label");
		tap_ok(strstr(out.data, "history: SEARCH c USING INTEGER PRIMARY KEY (rowid<?)") != NULL,
		       "unfiltered paging is a range of the primary key");
		tap_ok(strstr(out.data, "row: SEARCH c USING INTEGER PRIMARY KEY (rowid=?)") != NULL &&
			       strstr(out.data, "thumb: SEARCH c USING INTEGER PRIMARY KEY (rowid=?)") != NULL &&
			       strstr(out.data, "thumb: SEARCH o USING INDEX classification_cache") != NULL &&
			       strstr(out.data, "thumb: SEARCH t USING INTEGER PRIMARY KEY (rowid=?)") != NULL,
		       "one row and one thumbnail (its own, or its cache source's) are key lookups");
		tap_ok(strstr(out.data,
			      "stats_hours: SEARCH classification USING INDEX classification_time") != NULL &&
			       strstr(out.data, "delete_before: SEARCH classification USING") != NULL &&
			       strstr(out.data, "classification_time (time_ms<?)") != NULL,
		       "statistics and retention by age use the time index");
		tap_ok(strstr(out.data, "id_range: SEARCH classification") != NULL &&
			       strstr(out.data, "id_range: SCAN classification") == NULL &&
			       strstr(out.data,
				      "delete_upto: SEARCH classification USING INTEGER PRIMARY KEY "
				      "(rowid<?)") != NULL,
		       "retention by count reads the ends of the primary key, no count(*) scan");
		tap_ok(strstr(out.data, "cache: USE TEMP B-TREE") == NULL &&
			       strstr(out.data, "history: USE TEMP B-TREE") == NULL &&
			       strstr(out.data, "history_label: USE TEMP B-TREE") == NULL,
		       "no lookup sorts");
	}
	json_buf_free(&out);
	db_close(db);
}

/* ------------------------------------------------------------------- stats */

static void test_stats(void)
{
	const int64_t now = 1795909212345, hour = 3600000, now_h = now / hour;
	struct seer_err err = {0};
	struct db_record r[8];
	struct json_buf out;
	struct db *db;
	int rc;

	db = fresh_db("stats.db", NULL);
	if (db == NULL)
		return;
	r[0] = rec_ok(now - 600000, "tabby");
	r[0].t_total = 10;
	r[1] = rec_fail(now - 601000);
	r[1].t_total = 5;
	r[2] = rec_ok(now - 70 * 60000, "goldfish");
	r[2].t_total = 20;
	r[2].cached = 1;
	r[3] = rec_ok(now - 70 * 60000, "tabby");
	r[3].t_total = 30;
	r[4] = rec_ok(now - 5 * hour, "tench");	    /* before the 3-hour window */
	r[5] = rec_ok(now + 2 * hour, "tench");	    /* after it (a clock ahead) */
	r[6] = rec_ok((now_h - 2) * hour, "tench"); /* the window's first millisecond */
	r[6].t_total = 1;
	r[7] = rec_ok((now_h - 2) * hour - 1, "tench"); /* the one before */
	rc = db_insert(db, r, 8, NULL, &err);
	tap_ok(rc == 0, "insert rows for the statistics (%s)", rc ? err.msg : "ok");

	json_buf_init(&out);
	rc = db_stats_json(db, 3, now, &out, &err);
	tap_ok(rc == 0 && json_valid_doc(out.data), "stats JSON is valid (%s)", rc ? err.msg : "ok");
	printf("# %s\n", out.data ? out.data : "");
	tap_ok(jint(out.data, "$.total") == 5 && jint(out.data, "$.ok") == 4 &&
		       jint(out.data, "$.errors") == 1 && jint(out.data, "$.cached") == 1,
	       "totals over the window");
	tap_ok(jint(out.data, "$.since") == (now_h - 2) * 3600, "since is the start of the first hour");
	tap_ok(strcmp(jtype(out.data, "$.hours[3]"), "(missing)") == 0 &&
		       jint(out.data, "$.hours[0].hour") == (now_h - 2) * 3600 &&
		       jint(out.data, "$.hours[2].hour") == now_h * 3600,
	       "three hours, oldest first, in Unix seconds");
	tap_ok(jint(out.data, "$.hours[0].count") == 1 && jnum(out.data, "$.hours[0].max_ms") == 1 &&
		       jint(out.data, "$.hours[1].count") == 2 && jint(out.data, "$.hours[1].errors") == 0 &&
		       jnum(out.data, "$.hours[1].avg_ms") == 25 &&
		       jnum(out.data, "$.hours[1].max_ms") == 30 && jint(out.data, "$.hours[2].count") == 2 &&
		       jint(out.data, "$.hours[2].errors") == 1 &&
		       jnum(out.data, "$.hours[2].avg_ms") == 7.5 &&
		       jnum(out.data, "$.hours[2].max_ms") == 10,
	       "per-hour counts, errors, mean and max time");
	tap_ok(strcmp(jtext(out.data, "$.labels[0].label"), "tabby") == 0 &&
		       jint(out.data, "$.labels[0].count") == 2 &&
		       strcmp(jtext(out.data, "$.labels[1].label"), "goldfish") == 0 &&
		       strcmp(jtext(out.data, "$.labels[2].label"), "tench") == 0 &&
		       strcmp(jtype(out.data, "$.labels[3]"), "(missing)") == 0,
	       "labels by count, ties by name");

	json_buf_reset(&out);
	rc = db_stats_json(db, 6, now, &out, &err);
	/* hours: now-5h (r[4]), an empty one, r[7], r[6], then as above */
	tap_ok(rc == 0 && json_valid_doc(out.data) && jint(out.data, "$.total") == 7 &&
		       jint(out.data, "$.hours[0].count") == 1 && jint(out.data, "$.hours[1].count") == 0 &&
		       jint(out.data, "$.hours[1].errors") == 0 &&
		       strcmp(jtype(out.data, "$.hours[1].avg_ms"), "null") == 0 &&
		       strcmp(jtype(out.data, "$.hours[1].max_ms"), "null") == 0 &&
		       jint(out.data, "$.hours[2].count") == 1 && jint(out.data, "$.hours[3].count") == 1 &&
		       jint(out.data, "$.hours[5].count") == 2 &&
		       strcmp(jtype(out.data, "$.hours[6]"), "(missing)") == 0,
	       "six hours: empty hours listed with count 0 and null times");
	json_buf_reset(&out);
	rc = db_stats_json(db, 1, 0, &out, &err);
	tap_ok(rc == 0 && json_valid_doc(out.data) && jint(out.data, "$.total") == 0 &&
		       strcmp(jtype(out.data, "$.labels"), "array") == 0 &&
		       strcmp(jtype(out.data, "$.labels[0]"), "(missing)") == 0,
	       "an empty window (%s)", out.data);
	json_buf_reset(&out);
	rc = db_stats_json(db, 0, now, &out, &err);
	tap_ok(rc == SEER_EINVAL && out.len == 0, "hours 0 refused");
	json_buf_free(&out);
	db_close(db);
}

/* --------------------------------------------------------------- retention */

static void test_retention(void)
{
	const int64_t day = 86400000, now = 1795909212345;
	unsigned char thumb[300] = {0xff, 0xd8};
	const char *path = db_path("retention.db");
	struct db_opts o;
	struct seer_err err = {0};
	struct db_record r;
	int64_t ids[50], deleted = -1, id;
	void *jpeg = NULL;
	size_t len;
	struct db *db;
	int rc = 0;

	db_opts_default(&o);
	o.retention_batch = 7; /* several batches per call */
	db = fresh_db("retention.db", &o);
	if (db == NULL)
		return;
	/* row i is (50 - i) days old and has a thumbnail */
	for (int i = 0; i < 50 && rc == 0; i++) {
		r = rec_ok(now - (50 - i) * day, "tabby");
		r.thumb = thumb;
		r.thumb_len = sizeof(thumb);
		rc = db_insert(db, &r, 1, &ids[i], &err);
	}
	tap_ok(rc == 0 && count_rows(path, "thumbnail") == 50, "50 rows with thumbnails");

	rc = db_retention(db, 40, 0, now, &deleted, &err);
	tap_ok(rc == 0 && deleted == 10 && count_rows(path, "classification") == 40 &&
		       count_rows(path, "thumbnail") == 40,
	       "max 40 rows: 10 deleted with their thumbnails (%s, %lld)", rc ? err.msg : "ok",
	       (long long)deleted);
	tap_ok(db_thumb(db, ids[9], &jpeg, &len, &err) == SEER_ENOENT &&
		       db_thumb(db, ids[10], &jpeg, &len, &err) == 0,
	       "the oldest went, the next stayed");
	free(jpeg);
	rc = db_retention(db, 40, 0, now, &deleted, &err);
	tap_ok(rc == 0 && deleted == 0, "nothing more to delete at the limit");

	/* rows 10..49 are 40..1 days old; keep 25 days: rows older than now - 25 days go */
	rc = db_retention(db, 0, 25, now, &deleted, &err);
	tap_ok(rc == 0 && deleted == 15 && count_rows(path, "classification") == 25 &&
		       count_rows(path, "thumbnail") == 25,
	       "max 25 days: 15 deleted, over three batches (%s, %lld)", rc ? err.msg : "ok",
	       (long long)deleted);
	{
		struct json_buf out;

		json_buf_init(&out);
		rc = db_row_json(db, ids[25], &out, &err);
		tap_ok(rc == 0 && db_row_json(db, ids[24], &out, &err) == SEER_ENOENT,
		       "a row exactly 25 days old stays, one a day older went");
		json_buf_free(&out);
	}

	rc = db_retention(db, 20, 10, now, &deleted, &err);
	tap_ok(rc == 0 && deleted == 15 && count_rows(path, "classification") == 10 &&
		       count_rows(path, "thumbnail") == 10,
	       "both limits at once: the stricter wins (%lld deleted)", (long long)deleted);

	rc = db_retention(db, 0, 0, now, &deleted, &err);
	tap_ok(rc == 0 && deleted == 0 && count_rows(path, "classification") == 10,
	       "0 and 0 disable retention");

	/* ids are never handed out twice, even after every row went */
	rc = db_retention(db, 0, 1, now + 100 * day, &deleted, &err);
	tap_ok(rc == 0 && deleted == 10 && count_rows(path, "classification") == 0, "everything expired");
	r = rec_ok(now, "tabby");
	rc = db_insert(db, &r, 1, &id, &err);
	tap_ok(rc == 0 && id == ids[49] + 1, "the next id follows the last ever used (%lld)", (long long)id);
	db_close(db);
	tap_ok(integrity_ok(path), "integrity_check ok");
}

/* ----------------------------------------------------------- checkpoints */

static long long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static void test_checkpoint(void)
{
	const char *path = db_path("checkpoint.db");
	char wal[4200];
	unsigned char thumb[6000];
	struct seer_err err = {0};
	struct db_record r;
	long long before, after;
	int64_t id;
	int rc = 0, i;
	struct db *db = fresh_db("checkpoint.db", NULL);

	if (db == NULL)
		return;
	snprintf(wal, sizeof(wal), "%s-wal", path);
	memset(thumb, 0x5a, sizeof(thumb));
	/* commits until the log passes 1000 pages of 4 KiB */
	for (i = 0; i < 5000 && rc == 0 && file_size(wal) <= 1100LL * 4096; i++) {
		r = rec_ok(1795909212345 + i, "tabby");
		r.thumb = thumb;
		r.thumb_len = sizeof(thumb);
		rc = db_insert(db, &r, 1, &id, &err);
	}
	before = file_size(path);
	tap_ok(rc == 0 && file_size(wal) > 1100LL * 4096 && before < 1024 * 1024,
	       "commits do not checkpoint: %d rows, the log at %lld bytes, the database still %lld", i,
	       file_size(wal), before);
	rc = db_checkpoint(db, &err);
	after = file_size(path);
	tap_ok(rc == 1 && after >= (long long)i * (long long)sizeof(thumb),
	       "db_checkpoint copies the log in, thumbnails and all (%d; %lld -> %lld bytes)", rc, before,
	       after);
	tap_ok(db_checkpoint(db, &err) == 0, "and does nothing while the log is small");
	db_close(db);
	tap_ok(count_rows(path, "classification") == i && integrity_ok(path),
	       "every row is there, integrity_check ok");
}

/* ------------------------------------------------------ failing writes */

/* Insert batches of 4 rows with 4 KiB thumbnails until one fails; returns the rows written before. */
static int64_t fill(struct db *db, unsigned char *thumb, size_t thumb_len, int *rc, struct seer_err *err)
{
	struct db_record r[4];
	int64_t written = 0, ids[4];

	for (int k = 0; k < 10000; k++) {
		for (int i = 0; i < 4; i++) {
			r[i] = rec_ok(1000 + written + i, "tabby");
			r[i].thumb = thumb;
			r[i].thumb_len = thumb_len;
		}
		*rc = db_insert(db, r, 4, ids, err);
		if (*rc < 0)
			return written;
		written += 4;
	}
	return written;
}

/*
 * The shared part of both disk-full tests: fill the disk, check the failure
 * and that nothing was damaged, then make room (release()) and write again.
 */
static void disk_full(const char *what, const char *path, void (*limit)(const char *),
		      void (*release)(const char *), const char *expect)
{
	static unsigned char thumb[4096];
	struct seer_err err = {0};
	struct db_record r;
	struct json_buf first, again;
	int64_t written, ids[1];
	long long rows;
	struct db *db = NULL;
	int rc;

	for (size_t i = 0; i < sizeof(thumb); i++)
		thumb[i] = (unsigned char)(i * 131 + 7);
	rc = db_migrate(path, NULL, &err);
	if (rc == 0)
		rc = db_open(path, NULL, &db, &err);
	if (!tap_ok(rc == 0, "%s: create the database (%s)", what, rc ? err.msg : "ok"))
		return;
	r = rec_ok(1, "goldfish");
	rc = db_insert(db, &r, 1, ids, &err);
	json_buf_init(&first);
	json_buf_init(&again);
	db_row_json(db, ids[0], &first, &err);

	limit(path);
	written = fill(db, thumb, sizeof(thumb), &rc, &err);
	tap_ok(rc == SEER_EIO && strstr(err.msg, expect) && strstr(err.msg, "db_insert"),
	       "%s: a write fails with SQLite's message after %lld rows (%s)", what, (long long)written,
	       err.msg);
	rows = count_rows(path, "classification");
	tap_ok(rows == 1 + written && count_rows(path, "thumbnail") == written,
	       "%s: the failed batch left nothing behind (%lld rows)", what, rows);
	tap_ok(integrity_ok(path), "%s: integrity_check ok on the full disk", what);
	rc = db_row_json(db, ids[0], &again, &err);
	tap_ok(rc == 0 && first.data && again.data && strcmp(first.data, again.data) == 0,
	       "%s: an earlier row reads back unchanged on the same connection", what);
	rc = db_insert(db, &r, 1, ids, &err);
	tap_ok(rc == SEER_EIO, "%s: still full: the next write fails cleanly too (%s)", what, err.msg);

	release(path);
	rc = db_insert(db, &r, 1, ids, &err);
	tap_ok(rc == 0 && count_rows(path, "classification") == rows + 1,
	       "%s: with room again the same connection writes (%s)", what, rc ? err.msg : "ok");
	for (int k = 0; k < 3 && rc == 0; k++)
		rc = db_insert(db, &r, 1, ids, &err);
	tap_ok(rc == 0 && integrity_ok(path), "%s: and keeps writing (%s)", what, rc ? err.msg : "ok");
	json_buf_free(&first);
	json_buf_free(&again);
	db_close(db);
	tap_ok(integrity_ok(path) && count_rows(path, "classification") == rows + 4,
	       "%s: closed and reopened, sound, nothing lost", what);
}

/* ---- a real full file system: a 384 KiB tmpfs in a private mount namespace */

static char mnt_dir[512];

static void tmpfs_noop(const char *path)
{
	(void)path;
}

static void tmpfs_grow(const char *path)
{
	(void)path;
	if (mount(NULL, mnt_dir, NULL, MS_REMOUNT, "size=16m") < 0)
		printf("# remount: %s\n", strerror(errno));
}

static void test_disk_full_tmpfs(void)
{
	char path[600];

	snprintf(mnt_dir, sizeof(mnt_dir), "%s/small", tmpdir);
	mkdir(mnt_dir, 0700);
	/*
	 * A mount namespace of our own, with propagation cut, so the small
	 * file system is seen by this process only and vanishes with it.
	 */
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("seer-test", mnt_dir, "tmpfs", 0, "size=384k,mode=0700") < 0) {
		printf("ok %d # SKIP disk full on a real file system: cannot mount a tmpfs here (%s)\n",
		       ++tap_count, strerror(errno));
		mnt_dir[0] = '\0';
		return;
	}
	snprintf(path, sizeof(path), "%s/full.db", mnt_dir);
	/* the disk fills up as writes come; room comes back when the file system grows */
	disk_full("tmpfs", path, tmpfs_noop, tmpfs_grow, "database or disk is full");
	umount(mnt_dir);
}

/* ---- the file size limit: no privileges needed, writes past it fail with EFBIG */

static void fsize_limit(const char *path)
{
	char wal[600];
	struct stat sb;
	struct rlimit rl;
	off_t size = 0;

	snprintf(wal, sizeof(wal), "%s-wal", path);
	if (stat(wal, &sb) == 0)
		size = sb.st_size;
	if (stat(path, &sb) == 0 && sb.st_size > size)
		size = sb.st_size;
	/* without this the kernel kills the process (SIGXFSZ) instead of failing the write */
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &rl);
	rl.rlim_cur = (rlim_t)size + 200 * 1024;
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
		printf("# setrlimit: %s\n", strerror(errno));
}

static void fsize_unlimit(const char *path)
{
	struct rlimit rl;

	(void)path;
	getrlimit(RLIMIT_FSIZE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_FSIZE, &rl);
	signal(SIGXFSZ, SIG_DFL);
}

/* ---------------------------------------------------------------- locking */

static void test_locked(void)
{
	const char *path = db_path("locked.db");
	struct db_opts o;
	struct seer_err err = {0};
	struct db_record r = rec_ok(1000, "tabby");
	struct json_buf out;
	int64_t id;
	struct db *db;
	sqlite3 *other;
	double t0, waited;
	int rc;

	db_opts_default(&o);
	o.busy_timeout_ms = 300;
	db = fresh_db("locked.db", &o);
	if (db == NULL)
		return;
	rc = db_insert(db, &r, 1, &id, &err);
	other = raw_open(path);

	/* a reader does not block a writer (WAL) */
	raw_exec(other, "BEGIN");
	raw_int(other, "SELECT count(*) FROM classification");
	rc = db_insert(db, &r, 1, &id, &err);
	tap_ok(rc == 0, "a write succeeds while another connection reads (%s)", rc ? err.msg : "ok");
	raw_exec(other, "COMMIT");

	/* a writer does, up to the busy timeout */
	raw_exec(other, "BEGIN IMMEDIATE");
	raw_exec(other,
		 "INSERT INTO classification (time_ms, bytes, status, error_code) VALUES (5, 0, 500, 'x')");
	t0 = now_s();
	rc = db_insert(db, &r, 1, &id, &err);
	waited = now_s() - t0;
	tap_ok(rc == SEER_EIO && strstr(err.msg, "locked"), "a write blocked by another writer fails: %s",
	       err.msg);
	tap_ok(waited >= 0.25, "after waiting for the busy timeout (%.3f s for 300 ms)", waited);
	json_buf_init(&out);
	rc = db_history_json(db, 10, 0, NULL, &out, &err);
	tap_ok(rc == 0 && jint(out.data, "$.items[0].id") == 2 &&
		       strcmp(jtype(out.data, "$.items[2]"), "(missing)") == 0,
	       "reads still work meanwhile, and see only committed rows");
	json_buf_free(&out);
	raw_exec(other, "COMMIT");
	sqlite3_close(other);

	rc = db_insert(db, &r, 1, &id, &err);
	tap_ok(rc == 0 && id == 4 && count_rows(path, "classification") == 4,
	       "once the lock is released the same connection writes (%s)", rc ? err.msg : "ok");
	db_close(db);
}

/* Several worker processes inserting at once: the busy timeout serialises them, nothing is lost. */
static void test_concurrent(void)
{
	const char *path = db_path("workers.db");
	struct seer_err err = {0};
	int nproc = 3, per = 40, failed = 0;
	pid_t pids[3];
	int rc;

	rc = db_migrate(path, NULL, &err);
	if (!tap_ok(rc == 0, "create workers.db (%s)", rc ? err.msg : "ok"))
		return;
	fflush(stdout);
	for (int i = 0; i < nproc; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			unsigned char thumb[256] = {(unsigned char)i};
			struct db_record r = rec_ok(1000 + i, "tabby");
			struct db *db = NULL;
			int bad = 0;

			r.thumb = thumb;
			r.thumb_len = sizeof(thumb);
			if (db_open(path, NULL, &db, &err) < 0)
				_exit(1);
			for (int k = 0; k < per; k++) {
				if (db_insert(db, &r, 1, NULL, &err) < 0) {
					fprintf(stderr, "worker %d: %s\n", i, err.msg);
					bad++;
				}
			}
			db_close(db);
			_exit(bad ? 1 : 0);
		}
	}
	for (int i = 0; i < nproc; i++) {
		int status;

		if (pids[i] < 0 || waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			failed++;
	}
	tap_ok(failed == 0 && count_rows(path, "classification") == nproc * per &&
		       count_rows(path, "thumbnail") == nproc * per,
	       "%d processes x %d inserts: all stored", nproc, per);
	tap_ok(integrity_ok(path), "integrity_check ok");
}

/* Remove the test directory (flat, plus the tmpfs mount point). */
static void cleanup(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char p[600];

	while (d && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
		if (unlink(p) < 0)
			rmdir(p);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
}

int main(void)
{
	char path[600];

	if (mkdtemp(tmpdir) == NULL || sqlite3_open(":memory:", &jdb) != SQLITE_OK) {
		printf("Bail out! no temporary directory or in-memory database\n");
		return 1;
	}
	test_migrate();
	test_symlink();
	test_migrate_race();
	test_rows();
	test_cache();
	test_history();
	test_plans();
	test_stats();
	test_retention();
	test_checkpoint();
	test_locked();
	test_concurrent();
	snprintf(path, sizeof(path), "%s/fsize.db", tmpdir);
	/* EFBIG is "disk I/O error" to SQLite, a short write "database or disk is full" */
	disk_full("file size limit", path, fsize_limit, fsize_unlimit, "disk");
	test_disk_full_tmpfs();
	sqlite3_close(jdb);
	cleanup();
	return tap_done();
}
