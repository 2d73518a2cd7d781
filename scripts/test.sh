#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test of every crate; in CI (or
# with SITECAST_CRASH_ROUNDS=N) a few rounds of the crash suite too.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
if [ "${CI:-}" = true ] || [ -n "${SITECAST_CRASH_ROUNDS:-}" ]; then
  # The binaries `cargo test` just built (debug): no second, release build.
  echo "== crash suite"
  SITECAST_BIN_DIR=$PWD/target/debug SITECAST_CRASH_DRIVER=$PWD/target/debug/crash-suite \
    bash scripts/crash-suite.sh "${SITECAST_CRASH_ROUNDS:-5}"
fi
