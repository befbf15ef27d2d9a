#!/bin/sh
# Compile the schema migrations into C (src/sql_migrations.c), so seerd
# carries its schema and cannot run against SQL files from another version.
#
# usage: gen-sql.sh sql/001_init.sql sql/002_x.sql ...   (every migration, in order)
#
# File N must be named NNN_name.sql with NNN = N (001, 002, ...): the number is
# the user_version the migration brings the database to. A migration file in
# the same directory that is not given here is an error, so one added to sql/
# but forgotten in am/db.am is caught at build time rather than never applied.
set -eu
if [ $# -eq 0 ]; then
	echo "gen-sql: no migration files given" >&2
	exit 1
fi

n=0
for f in "$@"; do
	n=$((n + 1))
	base=$(basename "$f")
	want=$(printf '%03d' "$n")
	case $base in
	"$want"_*.sql) ;;
	*)
		echo "gen-sql: migration $n is $base; expected ${want}_NAME.sql" >&2
		exit 1
		;;
	esac
	if [ ! -s "$f" ]; then
		echo "gen-sql: $f is missing or empty" >&2
		exit 1
	fi
done
dir=$(dirname "$1")
for f in "$dir"/[0-9][0-9][0-9]_*.sql; do
	[ -e "$f" ] || continue
	listed=no
	for g in "$@"; do
		[ "$(basename "$g")" = "$(basename "$f")" ] && listed=yes
	done
	if [ "$listed" = no ]; then
		echo "gen-sql: $f is not in the list of migrations (am/db.am)" >&2
		exit 1
	fi
done

echo '/* Generated from the migrations in sql/ by scripts/gen-sql.sh: do not edit. */'
echo '#include "db.h"'
echo
echo "const int db_migrations_count = $n;"
echo
echo 'const char *const db_migration_names[] = {'
for f in "$@"; do
	printf '\t"%s",\n' "$(basename "$f")"
done
echo '};'
echo
echo 'const char *const db_migration_sql[] = {'
for f in "$@"; do
	# Each line becomes a string literal ending in \n; backslashes, quotes
	# and question marks (trigraphs) are escaped.
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/\t"/' -e 's/$/\\n"/' "$f"
	echo '	,'
done
echo '};'
