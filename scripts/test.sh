#!/usr/bin/env bash
# The whole check, from a fresh Debian machine: install what is missing, then
# formatting, lints, and every test (unit tests and the integration tests,
# which start their own throwaway PostgreSQL cluster). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
