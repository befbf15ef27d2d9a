-- 001_init.sql - the first schema of the classification history.
--
-- Applied by db_migrate() inside one BEGIN IMMEDIATE transaction, which then
-- sets PRAGMA user_version to this file's number; a migration therefore must
-- not BEGIN or COMMIT itself. Never edit a migration once released: add the
-- next NNN_*.sql instead.

-- One row per image a worker answered, successes and failures alike.
-- AUTOINCREMENT: ids are never reused, even after retention has deleted
-- every row, so a client's bookmark, paging cursor or cached thumbnail can
-- never point at a different classification later.
CREATE TABLE classification (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	time_ms INTEGER NOT NULL,           -- Unix time, milliseconds
	client TEXT,                        -- the client's address
	file_name TEXT,                     -- as the client named it (UTF-8)
	content_type TEXT,                  -- as the client declared it
	bytes INTEGER NOT NULL CHECK (bytes >= 0),
	width INTEGER,                      -- NULL when the image was not decoded
	height INTEGER,
	sha256 TEXT,                        -- of the uploaded bytes, lowercase hex
	model TEXT,                         -- the model id that answered
	status INTEGER NOT NULL CHECK (status BETWEEN 100 AND 599),
	error_code TEXT,                    -- NULL exactly when the image succeeded
	error_message TEXT,
	cached INTEGER NOT NULL DEFAULT 0 CHECK (cached IN (0, 1)),
	top1_index INTEGER,                 -- the best class, NULL without a result
	top1_label TEXT,
	top1_prob REAL,
	-- The top-K as a JSON array; the API copies it into its answers as is,
	-- so only well-formed JSON gets in.
	topk TEXT CHECK (topk IS NULL OR json_valid(topk)),
	t_decode_ms REAL,
	t_preprocess_ms REAL,
	t_inference_ms REAL,
	t_total_ms REAL
);

-- Thumbnails (a few KB each) live apart so that scanning classification for
-- the history and the statistics never reads through image bytes. The
-- thumbnail's id is its row's id, and it goes when the row goes (db_open()
-- turns foreign keys on).
CREATE TABLE thumbnail (
	id INTEGER PRIMARY KEY REFERENCES classification (id) ON DELETE CASCADE,
	jpeg BLOB NOT NULL
);

-- The cache: the newest successful row for these bytes and this model is
-- one index search, the newest first.
CREATE INDEX classification_cache ON classification (sha256, model, id) WHERE error_code IS NULL;

-- The history filtered by label: label = ? AND id < ? ORDER BY id DESC is a
-- range of this index, walked backwards, whatever page it is.
CREATE INDEX classification_label ON classification (top1_label, id) WHERE top1_label IS NOT NULL;

-- The statistics' time window and retention by age.
CREATE INDEX classification_time ON classification (time_ms);
