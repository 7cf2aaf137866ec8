# Shell helpers shared by demo.sh and bench.sh: find the PostgreSQL server
# binaries and start/stop throwaway clusters on a unix socket in a short folder;
# start the local S3-compatible server.
# Source this file; it defines functions only.

pg_bindir() {
    local d
    d="$(pg_config --bindir 2>/dev/null || true)"
    # "return 0", not "return": in an EXIT trap a bare return gives the
    # status the script failed with, which under set -e ended the cleanup
    # before it stopped the cluster.
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
    [ -x "$d/initdb" ] || { echo "PostgreSQL server not found; run scripts/test.sh or apt-get install postgresql" >&2; return 1; }
    echo "$d"
}

# as_pg CMD...: run a server binary as the postgres OS user when we are root.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_start DIR PORT [LISTEN]: initdb (if needed) and start a cluster whose
# socket is in DIR; LISTEN (say 127.0.0.1) also opens a TCP port.
pg_start() {
    local dir="$1" port="$2" listen="${3:-}" bin
    bin="$(pg_bindir)"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C --no-sync >/dev/null
        cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '$listen'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = '4GB'
checkpoint_timeout = '30min'
CONF
    fi
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
}

# pg_stop DIR: stop the cluster in DIR (immediately; it is throwaway).
pg_stop() {
    local dir="$1" bin
    bin="$(pg_bindir)"
    [ -f "$dir/data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# s3_start DIR KEY SECRET: start s3s-fs (installed by install-deps.sh) on a
# random 127.0.0.1 port, serving the buckets under DIR (one folder each), and
# export AWS_* for it. Sets S3S_PID; the caller kills it on exit.
s3_start() {
    local dir="$1" key="$2" secret="$3" bin port
    bin="$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")"
    port=$((20000 + RANDOM % 20000))
    "$bin" --host 127.0.0.1 --port "$port" --access-key "$key" --secret-key "$secret" "$dir" >/dev/null 2>&1 &
    S3S_PID=$!
    sleep 1
    export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_REGION=us-east-1
}
