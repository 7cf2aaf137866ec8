#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test pgbarge:
# the PostgreSQL server and client, zstd, openssl, age (the encrypted-backup
# tests decrypt with the standard tool), the OpenSSH client and server (the
# tunnel tests start their own sshd). apt-get runs only when
# something is missing. Extra Debian packages can be named as arguments
# (bench.sh adds hyperfine, pgcopydb, time, age and jq).
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v pg_dump >/dev/null 2>&1 || missing+=(postgresql-client)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
{ command -v age && command -v age-keygen; } >/dev/null 2>&1 || missing+=(age)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
command -v setsid >/dev/null 2>&1 || missing+=(util-linux)
# The SSH tunnel tests run the OpenSSH client against their own sshd.
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    # The tests make their own throwaway clusters; the package's default cluster is not wanted.
    $sudo mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install the Rust toolchain (rustup) first" >&2
    exit 1
fi
# The S3-compatible server the object-store tests run against (crates.io;
# 0.14 is the last line that builds with rustc 1.95).
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
    echo "installing: s3s-fs (cargo install, a few minutes)" >&2
    cargo install -q --locked s3s-fs --version "~0.14" --features binary
fi
