#!/usr/bin/env bash
# The main job on a built-in demo: two throwaway PostgreSQL clusters (a local
# "source" and a production-like "target") loaded with the ERP fixture, and
# pgbarge run against them. The clusters are stopped and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh

bash scripts/install-deps.sh
cargo build --release --locked -q
BIN="$PWD/target/release/pgbarge"

DEMO="$(mktemp -d /tmp/pgbarge-demo.XXXXXX)"
chmod 755 "$DEMO"
SRC="$DEMO/src" TGT="$DEMO/tgt"
S3S_PID=""
cleanup() {
    if [ -n "$S3S_PID" ]; then kill "$S3S_PID" 2>/dev/null || true; fi
    if [ -f "$DEMO/sshd/sshd.pid" ]; then kill "$(cat "$DEMO/sshd/sshd.pid")" 2>/dev/null || true; fi
    pg_stop "$SRC"; pg_stop "$TGT"; pg_stop "$DEMO/remote"; rm -rf "$DEMO"
}
trap cleanup EXIT

# Prints a title and the command (with the long paths and connection strings
# shown by name, so it fits a terminal), then runs it.
step() {
    local shown="${*:2}"
    shown="${shown//"$BIN"/pgbarge}"
    shown="${shown//"$SRC_CONN"/\"\$SRC_CONN\"}"
    shown="${shown//"$TGT_CONN"/\"\$TGT_CONN\"}"
    shown="${shown//"$DEMO"/\$DEMO}"
    printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "$shown" | fold -s -w "${COLUMNS:-80}"
    "${@:2}"
}

pg_start "$SRC" 5432
pg_start "$TGT" 5432
export PGUSER=postgres
# A terminal would page psql's tables; the demo runs straight through.
export PSQL_PAGER=cat PAGER=cat
SRC_CONN="host=$SRC port=5432 dbname=erp"
TGT_CONN="postgresql://postgres@${TGT//\//%2F}:5432/erp"
printf 'DEMO=%s\nSRC_CONN=%s\nTGT_CONN=%s\n' "$DEMO" "$SRC_CONN" "$TGT_CONN"
for side in "$SRC:source" "$TGT:target"; do
    dir="${side%%:*}" file="${side##*:}"
    psql -X -q -h "$dir" -d postgres -c "CREATE DATABASE erp"
    psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -d erp -f "fixtures/erp/$file.sql"
done

step "What the local source holds, in foreign-key load order" "$BIN" list -d "$SRC_CONN"
step "The production-like target (a URL works too)" "$BIN" list -d "$TGT_CONN"
step "Only the role tables, as JSON" "$BIN" list -d "$TGT_CONN" -t 'Role*' -t UserPermission --json
echo
echo "Names are case-sensitive; a pattern that matches nothing is an error (exit 2):"
set +e
"$BIN" list -d "$TGT_CONN" -t role
echo "exit code: $?"
set -e

BACKUP="$DEMO/backup-full" CRITICAL="$DEMO/backup-critical"
step "Full backup of the target before the migration (one snapshot, zstd, manifest last)" \
    "$BIN" backup -d "$TGT_CONN" -o "$BACKUP" --schema
step "Per-table backup of the critical tables" \
    "$BIN" backup -d "$TGT_CONN" -o "$CRITICAL" -t User -t TimeEntry -t Customer --compress zstd:9
step "Plain tools can check it: sha256sum -c" sh -c "cd '$BACKUP' && sha256sum -c SHA256SUMS"
step "The backup folder" ls -l "$BACKUP" "$BACKUP/data"
step "And read it: zstd -dc" sh -c "zstd -dc '$BACKUP'/data/*.public.User.csv.zst | head -n 4 | cut -c 1-80"

# An S3-compatible store on 127.0.0.1 (s3s-fs), as a stand-in for S3.
mkdir -p "$DEMO/s3/erp-backups"
s3_start "$DEMO/s3" demo demo-secret
step "The same backup straight into an S3-compatible store (AWS_* from the environment)" \
    "$BIN" backup -d "$TGT_CONN" -o s3://erp-backups/before-migration
step "... and verified from there" "$BIN" verify s3://erp-backups/before-migration -q

step "Verify the backup offline: every file read once, checksums, counts, headers, fingerprints" \
    "$BIN" verify "$BACKUP" --deep
step "Check the runbook's expected row counts against the backup" \
    "$BIN" verify "$BACKUP" --expect fixtures/erp/expect-target.csv
step "Compare the critical tables' backup with the live target, content included" \
    "$BIN" verify "$CRITICAL" -d "$TGT_CONN" --deep

# An encrypted backup: age, to a key made for the demo.
age-keygen -o "$DEMO/age-key.txt" 2>/dev/null
AGE_PUB=$(age-keygen -y "$DEMO/age-key.txt")
ENCRYPTED="$DEMO/backup-encrypted"
step "An encrypted backup (age): file names and manifest.json tell nothing of the tables" \
    "$BIN" backup -d "$TGT_CONN" -o "$ENCRYPTED" --schema --encrypt-to "$AGE_PUB"
step "The encrypted folder" ls -l "$ENCRYPTED" "$ENCRYPTED/data"
step "Verified without the key: every file there, sizes and sha256" "$BIN" verify "$ENCRYPTED"
step "... and with it: the content too" \
    "$BIN" verify "$ENCRYPTED" --deep --identity "$DEMO/age-key.txt" -q
step "Read by hand: age -d | zstd -dc" \
    sh -c "age -d -i '$DEMO/age-key.txt' '$ENCRYPTED/data/0001.csv.zst.age' | zstd -dc | head -n 3 | cut -c 1-80"

echo
echo "A damaged backup is caught: one byte of the User file flipped (exit 1):"
DAMAGED="$DEMO/backup-damaged"
cp -a "$BACKUP" "$DAMAGED"
USER_FILE=$(ls "$DAMAGED"/data/*.public.User.csv.zst)
printf '\x00' | dd of="$USER_FILE" bs=1 seek=20 conv=notrunc status=none
set +e
"$BIN" verify "$DAMAGED" -t User
echo "exit code: $?"
set -e

ROLE_TABLES=(-t Role -t Permission -t RolePermission -t RoleAssignment -t UserPermission -t TimeEntryRejectionNote)
echo
echo "Copy the role, permission and rejection-note data before the DDL:"
echo "the target lacks a column (exit 2, nothing written):"
set +e
"$BIN" copy --source "$SRC_CONN" --target "$TGT_CONN" "${ROLE_TABLES[@]}"
echo "exit code: $?"
set -e
echo
echo "How the target's schema differs from the source's before the DDL (exit 1):"
set +e
step "Compare the two schemas, object by object" \
    "$BIN" diff --source "$SRC_CONN" --target "$TGT_CONN" -q
echo "exit code: $?"
set -e
step "Run the runbook's DDL files on the target" \
    "$BIN" sql -d "$TGT_CONN" fixtures/erp/migrations/0[1-6]-*.sql
echo
echo "After the DDL, only the column the migration keeps on purpose (exit 1):"
set +e
step "Compare again" "$BIN" diff --source "$SRC_CONN" --target "$TGT_CONN"
echo "exit code: $?"
set -e
step "... and everything else matches (Role left out)" \
    "$BIN" diff --source "$SRC_CONN" --target "$TGT_CONN" -T Role
step "What the copy would do" \
    "$BIN" copy --source "$SRC_CONN" --target "$TGT_CONN" "${ROLE_TABLES[@]}" --dry-run
step "The same copy now succeeds, content compared before commit" \
    "$BIN" copy --source "$SRC_CONN" --target "$TGT_CONN" "${ROLE_TABLES[@]}" --verify=deep
step "The target's audit triggers fired during the copy, as for the application's own writes" \
    psql -X -d "$TGT_CONN" -c 'SELECT "tableName", operation, count(*) AS rows FROM "AuditLog" GROUP BY 1, 2 ORDER BY 1, 2'

# The whole runbook as one plan, on a fresh pair of databases.
psql -X -q -h "$SRC" -d postgres -c "CREATE DATABASE erp_plan_src"
psql -X -q -h "$TGT" -d postgres -c "CREATE DATABASE erp_plan"
psql -X -q -v ON_ERROR_STOP=1 -h "$SRC" -d erp_plan_src -f fixtures/erp/source.sql
psql -X -q -v ON_ERROR_STOP=1 -h "$TGT" -d erp_plan -f fixtures/erp/target.sql
export ERP_SOURCE="host=$SRC port=5432 dbname=erp_plan_src"
export ERP_TARGET="host=$TGT port=5432 dbname=erp_plan"
export ERP_WORK="$DEMO/plan-work"
schema_of() { pg_dump -h "$TGT" -d erp_plan --schema-only | grep -v '^\\\(un\)\?restrict '; }
schema_of > "$DEMO/schema-before-migration.sql"
step "The runbook, checked without changing anything" "$BIN" run fixtures/erp/plan.toml --dry-run
step "The runbook: backups, verification, DDL, copy, checks" "$BIN" run fixtures/erp/plan.toml -q
step "Its log" sh -c "cat '$ERP_WORK'/runs/*/run.md | head -n 30 | cut -c 1-80"

AFTER="$DEMO/backup-after-copy"
step "Checkpoint: back up the copied tables" \
    "$BIN" backup -d "$TGT_CONN" -o "$AFTER" -q "${ROLE_TABLES[@]}"
step "Something goes wrong: role descriptions overwritten, user permissions emptied" \
    psql -X -q -d "$TGT_CONN" -c "UPDATE \"Role\" SET description = 'oops'" -c 'TRUNCATE "UserPermission"'
echo
echo "The live tables no longer match the checkpoint (exit 1):"
set +e
"$BIN" verify "$AFTER" -d "$TGT_CONN" -t Role -t UserPermission --deep
echo "exit code: $?"
set -e
step "Restore only those two tables (rows referencing Role are kept and checked)" \
    "$BIN" restore "$AFTER" -d "$TGT_CONN" -t Role -t UserPermission --mode truncate --disable-triggers
step "And prove it" \
    "$BIN" verify "$AFTER" -d "$TGT_CONN" -t Role -t UserPermission --deep

# The whole migration undone, as the run's log says.
ROLLBACK="$(grep -m1 '^    pgbarge restore' "$ERP_WORK"/runs/*/run.md | sed 's/^ *//')"
step "Later, the migration must be undone: what the log's rollback would drop" \
    env PATH="$(dirname "$BIN"):$PATH" bash -c "$ROLLBACK --dry-run"
step "The migrated database is damaged further: a table dropped, rows deleted" \
    psql -X -q -h "$TGT" -d erp_plan -c 'DROP TABLE "TimeEntryRejectionNote"' \
    -c 'DELETE FROM "TimeEntry" WHERE id % 2 = 0'
step "The log's rollback command, as printed: schema and rows back, one transaction" \
    env PATH="$(dirname "$BIN"):$PATH" bash -c "$ROLLBACK"
step "Proved: the live database equals the full backup, content included" \
    "$BIN" verify "$ERP_WORK/backups/full" -d "$ERP_TARGET" --deep
schema_unchanged() {
    schema_of | diff "$DEMO/schema-before-migration.sql" - && echo "identical to the one taken before the migration"
}
step "Proved: the schema (pg_dump --schema-only) is the one from before the migration" schema_unchanged

# Production behind a bastion: an sshd on loopback in front of a cluster that
# listens on TCP only there, reached with --ssh (the system's ssh, with its own
# config and known_hosts, so nothing of ~/.ssh is used or changed).
if [ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null; then
    SSHD="$DEMO/sshd" REMOTE_PORT=$((30000 + RANDOM % 10000)) SSH_PORT=$((40000 + RANDOM % 10000))
    pg_start "$DEMO/remote" "$REMOTE_PORT" 127.0.0.1
    psql -X -q -h "$DEMO/remote" -p "$REMOTE_PORT" -d postgres -c "CREATE DATABASE erp"
    psql -X -q -v ON_ERROR_STOP=1 -h "$DEMO/remote" -p "$REMOTE_PORT" -d erp -f fixtures/erp/target.sql
    mkdir -p "$SSHD"
    for k in host_key user_key; do ssh-keygen -q -t ed25519 -N '' -f "$SSHD/$k"; done
    cp "$SSHD/user_key.pub" "$SSHD/authorized_keys"
    cat > "$SSHD/sshd_config" <<CONF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSHD/host_key
PidFile $SSHD/sshd.pid
AuthorizedKeysFile $SSHD/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
LogLevel ERROR
CONF
    [ "$(id -u)" = 0 ] && mkdir -p /run/sshd
    /usr/sbin/sshd -f "$SSHD/sshd_config" -E "$SSHD/sshd.log"
    echo "bastion $(cat "$SSHD/host_key.pub")" > "$SSHD/known_hosts"
    cat > "$SSHD/ssh_config" <<CONF
Host bastion
  HostName 127.0.0.1
  Port $SSH_PORT
  User $(id -un)
  IdentityFile $SSHD/user_key
  IdentitiesOnly yes
  IdentityAgent none
  HostKeyAlias bastion
  UserKnownHostsFile $SSHD/known_hosts
  GlobalKnownHostsFile /dev/null
CONF
    export PGBARGE_SSH_COMMAND="ssh -F $SSHD/ssh_config"
    REMOTE_CONN="host=localhost port=$REMOTE_PORT dbname=erp user=postgres"
    step "Production behind a bastion: the database listens only where the bastion reaches it" \
        "$BIN" list -d "$REMOTE_CONN" --ssh bastion -t 'Role*'
    step "A backup through the tunnel; the tunnel closes when pgbarge exits" \
        "$BIN" backup -d "$REMOTE_CONN" --ssh bastion -o "$DEMO/backup-via-bastion" -q
    step "No ssh process is left behind" sh -c "pgrep -f '[s]sh -F $SSHD/ssh_config' >/dev/null && echo 'ssh still running' || echo 'none left'"
else
    echo
    echo "(With openssh-server installed, this demo also reaches a database through an SSH bastion:"
    echo " apt-get install openssh-server, then run scripts/demo.sh again.)"
fi
