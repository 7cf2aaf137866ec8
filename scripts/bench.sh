#!/usr/bin/env bash
# End-to-end speed of pgbarge against the usual tools, on the same data in the
# same run, with hyperfine; prints a ratio per competitor and pgbarge's peak RSS.
#
#   scripts/bench.sh                 # 5 million rows, about 1.1 GB of CSV
#   ROWS=500000 RUNS=2 scripts/bench.sh
#   ONLY=copy,restore scripts/bench.sh   # some parts: backup, verify, schema, clean, small, many, copy, restore, linear, s3, memory, diff, encrypt
#
# The longest parts: linear (backup, copy and restore of t and of a table
# five times its size: seconds per GB and peak RSS of each, $RUNS runs each)
# and many (list and copy --dry-run of 10,000 tables).
#   TRANSPORT=unix scripts/bench.sh      # every client on the unix socket instead of TCP
#
# Every client reaches the server over TCP on 127.0.0.1 by default, as a
# production server is reached. On a unix socket the server's send buffer is
# net.core.wmem_default (208 KiB on Debian), so the server stalls whenever the
# reading client is off the CPU for about a millisecond; on two cores that
# costs a client with real work per byte (pgbarge's compression) more than
# one that discards the bytes (see README, "Speed").
#
# Stage throughput (MB/s per stage) is measured separately: cargo bench --bench stages
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh

ROWS="${ROWS:-5000000}"
RUNS="${RUNS:-3}"
ONLY="${ONLY:-all}"
want() { case ",$ONLY," in *,all,* | *,"$1",*) return 0 ;; *) return 1 ;; esac; }
bash scripts/install-deps.sh hyperfine time pgcopydb age jq
cargo build --release --locked -q
BIN="$PWD/target/release/pgbarge"

# mean_median: numbers on stdin, one per line (first field); prints "mean,median".
mean_median() {
    sort -g | awk '{ t[++m] = $1; s += $1 }
        END { printf "%.6f,%.6f\n", s / m, (m % 2) ? t[(m + 1) / 2] : (t[m / 2] + t[m / 2 + 1]) / 2 }'
}

# interleaved CSV PREPARE NAME CMD [NAME CMD ...]: $RUNS rounds (after one
# warm-up round) in which every command runs once, after PREPARE, in an
# order that rotates each round; CSV gets each command's mean and median, as
# hyperfine's export names them. hyperfine runs all of one command's runs
# before the next command's, so a drift of this machine's speed during a
# part (a third within hours, see the README) lands on one command; here it
# lands on all of them alike. Each time is hyperfine's, of one run.
interleaved() {
    local csv="$1" prepare="$2" names=() cmds=() times r k i n
    shift 2
    while [ $# -gt 0 ]; do names+=("$1"); cmds+=("$2"); shift 2; done
    n=${#names[@]}
    times="$(mktemp -p "$WORK")"
    for ((r = 0; r <= RUNS; r++)); do
        for ((k = 0; k < n; k++)); do
            i=$(((k + r) % n))
            hyperfine --runs 1 --prepare "$prepare" --style none --export-json "$WORK/one.json" \
                -n "${names[$i]}" "${cmds[$i]}" > /dev/null
            if [ "$r" -gt 0 ]; then
                printf '%s\t%s\n' "$i" "$(jq '.results[0].mean' "$WORK/one.json")" >> "$times"
            fi
        done
    done
    {
        echo "command,mean,median"
        for ((i = 0; i < n; i++)); do
            echo "${names[$i]},$(awk -F'\t' -v i="$i" '$1 == i { print $2 }' "$times" | mean_median)"
        done
    } > "$csv"
}

WORK="$(mktemp -d /tmp/pgbarge-bench.XXXXXX)"
chmod 755 "$WORK"
PGDIR="$WORK/pg" OUT="$WORK/out"
mkdir -p "$OUT"
S3S_PID=""
cleanup() {
    if [ -n "$S3S_PID" ]; then kill "$S3S_PID" 2>/dev/null || true; fi
    pg_stop "$PGDIR"; rm -rf "$WORK"
}
trap cleanup EXIT
PORT=54329
pg_start "$PGDIR" "$PORT" 127.0.0.1
case "${TRANSPORT:-tcp}" in
    tcp) HOST=127.0.0.1 ;;
    unix) HOST="$PGDIR" ;;
    *) echo "TRANSPORT is tcp or unix" >&2; exit 2 ;;
esac
export PGHOST="$HOST" PGPORT="$PORT" PGUSER=postgres PGDATABASE=bench
psql -X -q -d postgres -c "CREATE DATABASE bench"

# The big table is built only for the parts that use it.
needs_t() {
    local p
    for p in backup verify schema clean copy restore linear s3 memory encrypt; do want "$p" && return 0; done
    return 1
}
if needs_t; then
# fill_table NAME ROWS: the bench table's definition and rows.
fill_table() {
echo "creating table $1 with $2 rows..." >&2
psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE $1 (
    id bigint PRIMARY KEY,
    created_at timestamptz NOT NULL,
    message text,
    amount numeric(12,2),
    payload jsonb,
    is_active boolean,
    ref_id integer
);
INSERT INTO $1
SELECT g,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
       'message ' || g || ', with "quotes" and' || E'\n' || 'a second line ' || md5(g::text),
       (g % 100000) / 100.0,
       jsonb_build_object('k', g, 'tags', jsonb_build_array('a', 'b', md5((g * 7)::text))),
       g % 2 = 0,
       g % 1000
FROM generate_series(1, $2) g;
VACUUM ANALYZE $1;
SQL
}
fill_table t "$ROWS"
CSV_BYTES=$(psql -X -q -c "\\copy t to stdout csv header" | wc -c)
# The table's pages are written out before anything is timed.
psql -X -q -c CHECKPOINT && sync
echo "table t: $ROWS rows, $CSV_BYTES bytes of CSV" >&2
fi

if want backup; then
    interleaved "$WORK/backup.csv" "rm -rf '$OUT'/* && sync" \
        "pgbarge backup" "'$BIN' backup -t t -o '$OUT/pgb' -q" \
        "psql copy to null" "psql -X -q -c '\\copy t to stdout csv header' > /dev/null" \
        "psql copy | zstd -3" "psql -X -q -c '\\copy t to stdout csv header' | zstd -3 -q -T1 > '$OUT/t.csv.zst'" \
        "pg_dump -Fc" "pg_dump -Fc -t t -f '$OUT/t.dump'"

    rm -rf "$OUT"/*
    /usr/bin/time -v "$BIN" backup -t t -o "$OUT/rss" -q 2> "$WORK/time.txt"
    RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
fi

if want small; then
    # Per-table overhead: 1,000 small tables (100 rows each; an id sequence,
    # text, numeric, timestamptz, boolean; every tenth table references the
    # one before it), copied and backed up + restored into an empty copy of
    # the schema, against pg_dump --data-only | psql.
    psql -X -q -d postgres -c "CREATE DATABASE small"
    psql -X -q -v ON_ERROR_STOP=1 -d small <<'SQL'
DO $$ BEGIN FOR i IN 1..1000 LOOP
  EXECUTE format('CREATE TABLE s%s (id serial PRIMARY KEY, name text, amount numeric(10,2),
                  at timestamptz, flag boolean, parent int %s)', i,
                 CASE WHEN i % 10 = 0 THEN format('REFERENCES s%s (id)', i - 1) ELSE '' END);
  EXECUTE format('INSERT INTO s%s (name, amount, at, flag, parent)
                  SELECT md5(g::text), g * 1.5, timestamptz ''2026-01-01'' + g * interval ''1 min'',
                         g %% 2 = 0, %s FROM generate_series(1, 100) g', i,
                 CASE WHEN i % 10 = 0 THEN 'g' ELSE 'NULL' END);
END LOOP; END $$;
SQL
    # A CHECKPOINT and a sync after the fresh schema, as before every other
    # load here: otherwise the first command to make its files durable
    # (backup's syncfs) also writes out the 1,000 tables just created.
    FRESH="psql -X -q -d postgres -c 'DROP DATABASE IF EXISTS small_tgt' -c 'CREATE DATABASE small_tgt' && pg_dump -s small | psql -X -q -d small_tgt && psql -X -q -d postgres -c CHECKPOINT && sync"
    # Each run backs up into a new folder, as a user does. Deleting the last
    # run's 1,000 files just before would time this disk's treatment of
    # freshly freed inodes (an ext4 without a journal skips each one while
    # allocating), not the backup: they are all deleted after the part.
    mkdir -p "$OUT/small-runs"
    # These commands take about a second each and their ratios are targets
    # near 1.0x, so a drift of the machine's speed between one command's
    # runs and the next's would decide them: their runs are interleaved.
    interleaved "$WORK/small.csv" "$FRESH" \
        "pgbarge copy" "'$BIN' copy --source small --target small_tgt -q" \
        "pgbarge backup + restore" "d=\$(mktemp -u -p '$OUT/small-runs') && '$BIN' backup -d small -o \$d -q && '$BIN' restore \$d -d small_tgt -q" \
        "pg_dump --data-only | psql" "pg_dump --data-only small | psql -X -q -d small_tgt"
    hyperfine --runs "$RUNS" --warmup 1 --style basic --export-csv "$WORK/small-list.csv" \
        -n "pgbarge list of 1000 tables" "'$BIN' list -d small -q > /dev/null" \
        -n "pgbarge copy --dry-run of 1000 tables" "'$BIN' copy --source small --target small_tgt --mode truncate --dry-run -q > /dev/null"
    rm -rf "$OUT"/*
fi

if want many; then
    # list and copy --dry-run of 10,000 tables (the issue's bound: under 2 s each).
    # Like pg_dump, copy locks every table it reads in one transaction: the
    # server's lock table must hold 10,000 (max_locks_per_transaction times
    # max_connections), as it must for pg_dump of such a database.
    echo "max_locks_per_transaction = 256" >> "$PGDIR/data/postgresql.conf"
    pg_stop "$PGDIR" && pg_start "$PGDIR" "$PORT" 127.0.0.1
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS many" -c "CREATE DATABASE many"
    for from in $(seq 1 1000 10000); do
        psql -X -q -v ON_ERROR_STOP=1 -d many -c "DO \$\$ BEGIN FOR i IN $from..$((from + 999)) LOOP
            EXECUTE format('CREATE TABLE m%s (id serial PRIMARY KEY, name text, at timestamptz)', i);
        END LOOP; END \$\$"
    done
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS many_tgt" -c "CREATE DATABASE many_tgt"
    pg_dump -s many | psql -X -q -d many_tgt
    hyperfine --runs "$RUNS" --warmup 1 --style basic --export-csv "$WORK/many.csv" \
        -n "pgbarge list of 10000 tables" "'$BIN' list -d many -q > /dev/null" \
        -n "pgbarge copy --dry-run of 10000 tables" "'$BIN' copy --source many --target many_tgt --dry-run -q > /dev/null"
    psql -X -q -d postgres -c "DROP DATABASE many" -c "DROP DATABASE many_tgt"
fi

if want linear; then
    # Cost linear in size: backup, copy and restore of t and of t5, five
    # times its rows; seconds per GB of CSV and peak RSS. $RUNS rounds; in
    # each, an operation runs on both tables one after the other (the order
    # alternating by round), so a drift of the machine's speed lands on both
    # alike: one run each, minutes apart, differed by up to 18 % per GB
    # between the tables while two runs of the same command differ by 15 %.
    fill_table t5 $((ROWS * 5))
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS lin" -c "CREATE DATABASE lin"
    pg_dump -s -t t -t t5 bench | psql -X -q -d lin > /dev/null
    psql -X -q -c CHECKPOINT && sync
    rm -f "$WORK"/lin-*
    # One measured command: a line "seconds peak-RSS-KB" appended to $WORK/lin-$1.
    measured() {
        local name="$1"; shift
        /usr/bin/time -f "%e %M" -a -o "$WORK/lin-$name" "$@" > /dev/null
    }
    # Empties lin's copy of $1 and writes every dirty page out first.
    settle() {
        psql -X -q -d lin -c "TRUNCATE $1" -c CHECKPOINT && sync
    }
    for ((r = 1; r <= RUNS; r++)); do
        if ((r % 2)); then order="t t5"; else order="t5 t"; fi
        for tb in $order; do
            rm -rf "$OUT/lin-$tb" && sync
            measured "backup-$tb" "$BIN" backup -t "$tb" -o "$OUT/lin-$tb" -q
            # The control: how the plain pipe's cost per GB moves with size
            # on this machine, run beside pgbarge's.
            rm -f "$OUT/lin.csv.zst" && sync
            measured "pipe-$tb" bash -c "psql -X -q -c '\\copy $tb to stdout csv header' | zstd -3 -q -T1 > '$OUT/lin.csv.zst'"
        done
        for tb in $order; do
            settle "$tb"
            measured "copy-$tb" "$BIN" copy --source bench --target lin -t "$tb" -q
        done
        for tb in $order; do
            settle "$tb"
            measured "restore-$tb" "$BIN" restore "$OUT/lin-$tb" -d lin -q
            # The control for restore: the same file loaded by psql, to tell
            # the server's cost growing with size from pgbarge's.
            settle "$tb"
            zst=$(ls "$OUT/lin-$tb"/data/*.csv.zst)
            measured "load-$tb" bash -c "zstd -dc -q '$zst' | psql -X -q -d lin -c '\\copy $tb from stdin (format csv, header)'"
        done
    done
    for tb in t t5; do
        grep -o '"csv_bytes": *[0-9]*' "$OUT/lin-$tb/manifest.json" | grep -o '[0-9]*$' > "$WORK/lin-bytes-$tb"
    done
    psql -X -q -d postgres -c "DROP DATABASE lin"
    psql -X -q -c "DROP TABLE t5"
    rm -rf "$OUT"/*
fi

# Prints each command's mean, then each pgbarge command's time over each
# other command's (below 1.00x: pgbarge is faster). $1: hyperfine's CSV, $2: title.
# With a median column (hyperfine's CSV and interleaved's have one), the
# medians' ratio is printed beside the means': one slow run moves a mean.
ratios() {
    echo
    echo "== $2, over ${TRANSPORT:-tcp}, mean seconds over $RUNS runs"
    awk -F, 'NR == 1 { for (c = 1; c <= NF; c++) if ($c == "median") mc = c; next }
        { gsub(/"/, "", $1); n++; name[n] = $1; mean[n] = $2; if (mc) median[n] = $mc }
        END {
            for (i = 1; i <= n; i++) printf "  %-28s %8.2f s\n", name[i], mean[i]
            for (i = 1; i <= n; i++) if (name[i] ~ /^pgbarge/)
                for (j = 1; j <= n; j++) if (name[j] !~ /^pgbarge/) {
                    printf "  %-28s / %-24s = %.2fx", name[i], name[j], mean[i] / mean[j]
                    if (mc) printf "  (medians: %.2fx)", median[i] / median[j]
                    printf "\n"
                }
        }' "$1"
}

if want verify; then
    # verify reads the backup just taken; the reference pipe reads the same file.
    rm -rf "$OUT"/*
    "$BIN" backup -t t -o "$OUT/vb" -q
    ZST=$(ls "$OUT"/vb/data/*.csv.zst)
    hyperfine --runs "$RUNS" --warmup 1 --style basic --export-csv "$WORK/verify.csv" \
        -n "pgbarge verify" "'$BIN' verify '$OUT/vb' -q" \
        -n "pgbarge verify --deep" "'$BIN' verify '$OUT/vb' --deep -q" \
        -n "zstd -dc | sha256sum" "zstd -dc -q '$ZST' | sha256sum > /dev/null"
fi

if want schema; then
    # A whole restore with the schema, of t with its primary key and one more
    # index, into a new database: pgbarge's pre-data, rows, post-data in one
    # transaction against pg_restore's single transaction of pg_dump -Fc.
    psql -X -q -c "CREATE INDEX t_created_at ON t (created_at)"
    rm -rf "$OUT"/*
    "$BIN" backup -t t -o "$OUT/sb" --schema -q
    pg_dump -Fc -t t -f "$OUT/t-full.dump" bench
    hyperfine --runs "$RUNS" --warmup 1 --style basic --export-csv "$WORK/schema.csv" \
        --prepare "psql -X -q -d postgres -c 'DROP DATABASE IF EXISTS fresh' -c 'CREATE DATABASE fresh' -c CHECKPOINT && sync" \
        -n "pgbarge restore --schema" "'$BIN' restore '$OUT/sb' -d fresh --schema -q" \
        -n "pg_restore --single-transaction" "pg_restore --single-transaction -d fresh '$OUT/t-full.dump'"
    rm -rf "$OUT"/*
    psql -X -q -c "DROP INDEX t_created_at"
fi

if want clean; then
    # Putting a whole database back over a changed one: restore --clean of a
    # full backup with schema against pg_restore --clean --if-exists
    # --single-transaction of a pg_dump -Fc taken of the same database. Each
    # run starts from a copy of the database with a table added and a
    # column dropped (what a migration does).
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS whole" -c "CREATE DATABASE whole TEMPLATE bench"
    psql -X -q -d whole -c "DROP TABLE IF EXISTS t2" -c "CREATE INDEX t_created_at ON t (created_at)"
    rm -rf "$OUT"/*
    "$BIN" backup -d whole -o "$OUT/whole" --schema -q
    pg_dump -Fc -f "$OUT/whole.dump" whole
    psql -X -q -d whole -c "CREATE TABLE added (i int)" -c "ALTER TABLE t DROP COLUMN payload"
    hyperfine --runs "$RUNS" --warmup 1 --style basic --export-csv "$WORK/clean.csv" \
        --prepare "psql -X -q -d postgres -c 'DROP DATABASE IF EXISTS changed' -c 'CREATE DATABASE changed TEMPLATE whole' -c CHECKPOINT && sync" \
        -n "pgbarge restore --clean" "'$BIN' restore '$OUT/whole' -d changed --clean -q" \
        -n "pg_restore --clean --if-exists --single-transaction" "pg_restore --clean --if-exists --single-transaction -d changed '$OUT/whole.dump'"
    rm -rf "$OUT"/*
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS changed" -c "DROP DATABASE whole"
fi

if want diff; then
    # Comparing two schemas of 1,000 tables, each with an index, a check
    # constraint and a trigger: pgbarge diff (one catalog query per kind of
    # object on each side) against pg_dump --schema-only of both and diff.
    for db in diff_a diff_b; do
        psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
        psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
DO $$
BEGIN
    FOR i IN 1..1000 LOOP
        EXECUTE format('CREATE TABLE %I (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2) CHECK (amount >= 0), at timestamptz DEFAULT now())', 't' || i);
        EXECUTE format('CREATE INDEX ON %I (name, at)', 't' || i);
        EXECUTE format('CREATE TRIGGER touch BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION touch()', 't' || i);
    END LOOP;
END $$;
SQL
    done
    hyperfine --runs "$RUNS" --warmup 1 --style basic --export-csv "$WORK/diff.csv" \
        -n "pgbarge diff" "'$BIN' diff --source 'dbname=diff_a' --target 'dbname=diff_b' -q" \
        -n "pg_dump --schema-only x2 | diff" "bash -c 'diff <(pg_dump -s diff_a | grep -v restrict) <(pg_dump -s diff_b | grep -v restrict) > /dev/null'"
    psql -X -q -d postgres -c "DROP DATABASE diff_a" -c "DROP DATABASE diff_b"
fi

# Files the server itself reads for the load ceiling: in a folder it owns.
SRV="$WORK/srv"
mkdir -p "$SRV"
[ "$(id -u)" = 0 ] && chown postgres "$SRV"
# A target database with t's definition and no rows; emptied before each run.
empty_target() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"
    pg_dump -s -t t -t t2 bench | psql -X -q -d "$1"
}
# A CHECKPOINT and a sync before each run, so no run pays for the previous
# one's (or the setup's) dirty pages being written out in the background.
TRUNC="psql -X -q -d tgt -c 'TRUNCATE t' -c CHECKPOINT && sync"

if want copy; then
    empty_target tgt
    psql -X -q -c "COPY t TO '$SRV/t.bin' (FORMAT binary)"
    cat > "$WORK/filters.ini" <<INI
[include-only-table]
public.t
INI
    PGCOPYDB=(pgcopydb copy table-data --source "host=$PGHOST port=$PORT dbname=bench"
        --target "host=$PGHOST port=$PORT dbname=tgt" --filters "$WORK/filters.ini"
        --dir "$WORK/pgcopydb" --restart --table-jobs 1 --index-jobs 1)
    WITH_PGCOPYDB=()
    if "${PGCOPYDB[@]}" >"$WORK/pgcopydb.log" 2>&1; then
        WITH_PGCOPYDB=("pgcopydb copy table-data" "$(printf '%q ' "${PGCOPYDB[@]}") >/dev/null 2>&1")
    else
        echo "pgcopydb failed here, left out (see its log below):" >&2
        tail -n 5 "$WORK/pgcopydb.log" >&2
    fi
    interleaved "$WORK/copy.csv" "$TRUNC" \
        "pgbarge copy" "'$BIN' copy --source bench --target tgt -t t -q" \
        "psql binary pipe" "psql -X -q -c '\\copy t to stdout (format binary)' | psql -X -q -d tgt -c '\\copy t from stdin (format binary)'" \
        "psql text pipe" "psql -X -q -c '\\copy t to stdout' | psql -X -q -d tgt -c '\\copy t from stdin'" \
        "pg_dump -a | psql" "pg_dump -a -t t bench | psql -X -q -d tgt" \
        "${WITH_PGCOPYDB[@]}" \
        "server COPY FROM file (binary)" "psql -X -q -d tgt -c \"COPY t FROM '$SRV/t.bin' (FORMAT binary)\""
    rm -f "$SRV/t.bin"

    # Two tables: -j 2 against one after the other.
    psql -X -q -c "CREATE TABLE IF NOT EXISTS t2 AS SELECT * FROM t"
    empty_target tgt
    hyperfine --runs "$RUNS" --warmup 1 --style basic --export-csv "$WORK/copy-j.csv" \
        --prepare "psql -X -q -d tgt -c 'TRUNCATE t, t2' -c CHECKPOINT && sync" \
        -n "pgbarge copy -j 2 (two tables)" "'$BIN' copy --source bench --target tgt -t t -t t2 --per-table-commit -j 2 -q" \
        -n "one after the other: pgbarge copy -j 1" "'$BIN' copy --source bench --target tgt -t t -t t2 --per-table-commit -j 1 -q"
fi

if want restore; then
    rm -rf "$OUT"/*
    "$BIN" backup -t t -o "$OUT/rb" -q
    ZST=$(ls "$OUT"/rb/data/*.csv.zst)
    zstd -dc -q "$ZST" > "$SRV/t.csv"
    pg_dump -Fc -t t -f "$OUT/t.dump" bench
    empty_target tgt
    interleaved "$WORK/restore.csv" "$TRUNC" \
        "pgbarge restore" "'$BIN' restore '$OUT/rb' -d tgt -q" \
        "zstd -dc | psql copy csv" "zstd -dc -q '$ZST' | psql -X -q -d tgt -c '\\copy t from stdin (format csv, header)'" \
        "pg_restore -a" "pg_restore -a -d tgt '$OUT/t.dump'" \
        "server COPY FROM file (csv)" "psql -X -q -d tgt -c \"COPY t FROM '$SRV/t.csv' (FORMAT csv, HEADER)\""
    rm -f "$SRV/t.csv"
fi

if want memory; then
    # Peak RSS of every command that moves data, on t and on a table of three
    # rows of 100 MiB values; the goal is 64 MB plus 1.5 times the largest row.
    psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE big (id int PRIMARY KEY, v text);
INSERT INTO big SELECT i, repeat(md5(i::text), 100 * 1024 * 1024 / 32) FROM generate_series(1, 3) i;
SQL
    empty_target tgt
    psql -X -q -d tgt -c "CREATE TABLE big (id int PRIMARY KEY, v text)"
    # The peak RSS in MB of the command given.
    peak_rss_mb() {
        /usr/bin/time -f %M -o "$WORK/rss.txt" "$@" > /dev/null
        echo $(( $(tail -n 1 "$WORK/rss.txt") / 1024 ))
    }
    # One line of the table: $1 the label, $2 the table.
    rss_line() {
        local b="$OUT/mem-$2" backup verify copy deep restore
        rm -rf "$b"
        backup=$(peak_rss_mb "$BIN" backup -q -d bench -t "$2" -o "$b")
        verify=$(peak_rss_mb "$BIN" verify -q "$b" -d bench --deep)
        copy=$(peak_rss_mb "$BIN" copy -q --source bench --target tgt -t "$2" --mode truncate)
        deep=$(peak_rss_mb "$BIN" copy -q --source bench --target tgt -t "$2" --mode truncate --verify=deep)
        restore=$(peak_rss_mb "$BIN" restore -q "$b" -d tgt -t "$2" --mode truncate)
        rm -rf "$b"
        printf '  %-34s %7s %9s %7s %12s %8s\n' "$1" "$backup" "$verify" "$copy" "$deep" "$restore"
    }
    MEMORY_LINES="$(rss_line "t ($ROWS rows)" t)
$(rss_line "big (3 rows of 100 MiB values)" big)"
fi

if want s3; then
    # A local S3-compatible server (s3s-fs, installed by install-deps.sh), its
    # objects on the same disk as the local backup.
    mkdir -p "$WORK/s3/bench"
    s3_start "$WORK/s3" bench bench-secret
    hyperfine --runs "$RUNS" --warmup 1 --style basic --export-csv "$WORK/s3.csv" \
        --prepare "rm -rf '$OUT'/* '$WORK'/s3/bench/*" \
        -n "pgbarge backup to s3://" "'$BIN' backup -t t -o s3://bench/b -q" \
        -n "backup to a local folder: pgbarge" "'$BIN' backup -t t -o '$OUT/local' -q"
fi

if want encrypt; then
    # An encrypted backup and restore (age, one x25519 recipient) against
    # unencrypted ones of the same table: what the age stage costs.
    age-keygen -o "$WORK/age-key.txt" 2>/dev/null
    AGE_PUB=$(age-keygen -y "$WORK/age-key.txt")
    hyperfine --runs "$RUNS" --warmup 1 --style basic --export-csv "$WORK/encrypt-backup.csv" \
        --prepare "rm -rf '$OUT'/* && sync" \
        -n "pgbarge backup --encrypt-to" "'$BIN' backup -t t -o '$OUT/enc' -q --encrypt-to '$AGE_PUB'" \
        -n "unencrypted: pgbarge backup" "'$BIN' backup -t t -o '$OUT/plain' -q"
    rm -rf "$OUT"/*
    "$BIN" backup -t t -o "$OUT/enc" -q --encrypt-to "$AGE_PUB"
    "$BIN" backup -t t -o "$OUT/plain" -q
    empty_target tgt
    hyperfine --runs "$RUNS" --warmup 1 --style basic --export-csv "$WORK/encrypt-restore.csv" --prepare "$TRUNC" \
        -n "pgbarge restore --identity" "'$BIN' restore '$OUT/enc' -d tgt -q --identity '$WORK/age-key.txt'" \
        -n "unencrypted: pgbarge restore" "'$BIN' restore '$OUT/plain' -d tgt -q"
    rm -rf "$OUT"/*
fi

if want many; then
    ratios "$WORK/many.csv" "10,000 tables: list and copy --dry-run (absolute times; bound 2 s)"
fi
if want linear; then
    echo
    echo "== cost in size: t ($ROWS rows) against t5 ($((ROWS * 5)) rows), median seconds of $RUNS runs each, over ${TRANSPORT:-tcp}"
    echo "  (controls, beside each pgbarge run: pipe is psql \\copy | zstd -3 for backup, load is zstd -dc | psql \\copy for restore)"
    # median FILE: the median of the first column; peak FILE: the largest second.
    median() { mean_median < "$1" | cut -d, -f2; }
    peak() { awk '$2 > p { p = $2 } END { print p }' "$1"; }
    for op in backup pipe copy restore load; do
        S1=$(median "$WORK/lin-$op-t") S5=$(median "$WORK/lin-$op-t5")
        M1=$(peak "$WORK/lin-$op-t") M5=$(peak "$WORK/lin-$op-t5")
        B1=$(cat "$WORK/lin-bytes-t") B5=$(cat "$WORK/lin-bytes-t5")
        awk -v op="$op" -v s1="$S1" -v s5="$S5" -v b1="$B1" -v b5="$B5" -v m1="$M1" -v m5="$M5" 'BEGIN {
            g1 = s1 / (b1 / 1e9); g5 = s5 / (b5 / 1e9)
            printf "  %-8s t: %7.2f s, %6.2f s/GB, %4d MB RSS   t5: %7.2f s, %6.2f s/GB, %4d MB RSS   per GB t5/t = %.2fx\n",
                op, s1, g1, m1 / 1024, s5, g5, m5 / 1024, g5 / g1 }'
    done
fi
if want backup; then
    ratios "$WORK/backup.csv" "backup of $ROWS rows ($CSV_BYTES bytes of CSV)"
    echo "  pgbarge peak RSS: $((RSS_KB / 1024)) MB"
fi
if want small; then
    ratios "$WORK/small.csv" "1,000 tables of 100 rows each"
    ratios "$WORK/small-list.csv" "1,000 tables: list and copy --dry-run (absolute times)"
fi
if want clean; then
    ratios "$WORK/clean.csv" "whole database put back over a changed one ($ROWS rows, a primary key and an index)"
fi
if want schema; then
    ratios "$WORK/schema.csv" "whole restore with the schema of $ROWS rows, a primary key and an index"
fi
if want copy; then
    ratios "$WORK/copy.csv" "copy of $ROWS rows between two databases of one server"
    ratios "$WORK/copy-j.csv" "copy of two such tables"
fi
if want restore; then
    ratios "$WORK/restore.csv" "restore of the backup of $ROWS rows"
fi
if want s3; then
    ratios "$WORK/s3.csv" "backup of $ROWS rows to a local S3-compatible server and to disk"
fi
if want diff; then
    ratios "$WORK/diff.csv" "schema comparison of two databases of 1,000 tables (index, check, trigger each)"
fi
if want verify; then
    ratios "$WORK/verify.csv" "offline verify of a backup of $ROWS rows ($CSV_BYTES bytes of CSV)"
fi
if want encrypt; then
    ratios "$WORK/encrypt-backup.csv" "encrypted backup of $ROWS rows against an unencrypted one"
    ratios "$WORK/encrypt-restore.csv" "restore of that encrypted backup against the unencrypted one"
fi
if want memory; then
    echo
    echo "== pgbarge peak RSS, MB"
    printf '  %-34s %7s %9s %7s %12s %8s\n' table backup "verify -d" copy "copy --deep" restore
    echo "$MEMORY_LINES"
fi
