#!/usr/bin/env bash
# End-to-end speed of pgbarge against the usual tools, on the same data in the
# same run, with hyperfine; prints a ratio per competitor and pgbarge's peak RSS.
#
#   scripts/bench.sh                 # 5 million rows, about 1.1 GB of CSV
#   ROWS=500000 RUNS=2 scripts/bench.sh
#   ONLY=verify scripts/bench.sh     # one part: backup or verify
#
# Stage throughput (MB/s per stage) is measured separately: cargo bench --bench stages
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh

ROWS="${ROWS:-5000000}"
RUNS="${RUNS:-3}"
ONLY="${ONLY:-all}"
want() { [ "$ONLY" = all ] || [ "$ONLY" = "$1" ]; }
bash scripts/install-deps.sh hyperfine time
cargo build --release --locked -q
BIN="$PWD/target/release/pgbarge"

WORK="$(mktemp -d /tmp/pgbarge-bench.XXXXXX)"
chmod 755 "$WORK"
PGDIR="$WORK/pg" OUT="$WORK/out"
mkdir -p "$OUT"
cleanup() { pg_stop "$PGDIR"; rm -rf "$WORK"; }
trap cleanup EXIT
pg_start "$PGDIR" 5432
export PGHOST="$PGDIR" PGPORT=5432 PGUSER=postgres PGDATABASE=bench
psql -X -q -d postgres -c "CREATE DATABASE bench"

echo "creating table t with $ROWS rows..." >&2
psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE t (
    id bigint PRIMARY KEY,
    created_at timestamptz NOT NULL,
    message text,
    amount numeric(12,2),
    payload jsonb,
    is_active boolean,
    ref_id integer
);
INSERT INTO t
SELECT g,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
       'message ' || g || ', with "quotes" and' || E'\n' || 'a second line ' || md5(g::text),
       (g % 100000) / 100.0,
       jsonb_build_object('k', g, 'tags', jsonb_build_array('a', 'b', md5((g * 7)::text))),
       g % 2 = 0,
       g % 1000
FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE t;
SQL
CSV_BYTES=$(psql -X -q -c "\\copy t to stdout csv header" | wc -c)
echo "table t: $ROWS rows, $CSV_BYTES bytes of CSV" >&2

if want backup; then
    hyperfine --runs "$RUNS" --warmup 1 --style basic --export-csv "$WORK/backup.csv" \
        --prepare "rm -rf '$OUT'/*" \
        -n "pgbarge backup" "'$BIN' backup -t t -o '$OUT/pgb' -q" \
        -n "psql copy to null" "psql -X -q -c '\\copy t to stdout csv header' > /dev/null" \
        -n "psql copy | zstd -3" "psql -X -q -c '\\copy t to stdout csv header' | zstd -3 -q -T1 > '$OUT/t.csv.zst'" \
        -n "pg_dump -Fc" "pg_dump -Fc -t t -f '$OUT/t.dump'"

    rm -rf "$OUT"/*
    /usr/bin/time -v "$BIN" backup -t t -o "$OUT/rss" -q 2> "$WORK/time.txt"
    RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
fi

# Prints each command's mean, then each pgbarge command's time over each
# other command's (below 1.00x: pgbarge is faster). $1: hyperfine's CSV, $2: title.
ratios() {
    echo
    echo "== $2, mean seconds over $RUNS runs"
    awk -F, 'NR > 1 { gsub(/"/, "", $1); n++; name[n] = $1; mean[n] = $2 }
        END {
            for (i = 1; i <= n; i++) printf "  %-28s %8.2f s\n", name[i], mean[i]
            for (i = 1; i <= n; i++) if (name[i] ~ /^pgbarge/)
                for (j = 1; j <= n; j++) if (name[j] !~ /^pgbarge/)
                    printf "  %-28s / %-24s = %.2fx\n", name[i], name[j], mean[i] / mean[j]
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

if want backup; then
    ratios "$WORK/backup.csv" "backup of $ROWS rows ($CSV_BYTES bytes of CSV)"
    echo "  pgbarge peak RSS: $((RSS_KB / 1024)) MB"
fi
if want verify; then
    ratios "$WORK/verify.csv" "offline verify of a backup of $ROWS rows ($CSV_BYTES bytes of CSV)"
fi
