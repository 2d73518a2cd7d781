#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test of every crate; in CI (or
# with SITECAST_CRASH_ROUNDS=N) a few rounds of the crash suite too, and (or with
# SITECAST_FUZZ_SECONDS=S) every fuzz target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
# The fuzz crate is outside the workspace: check its files directly.
rustfmt --check --edition 2021 fuzz/fuzz_targets/*.rs fuzz/examples/*.rs
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
if [ "${CI:-}" = true ] || [ -n "${SITECAST_FUZZ_SECONDS:-}" ]; then
  # 45 s a target: with the nightly toolchain, cargo-fuzz and the instrumented build on
  # a fresh machine, about 13 minutes in all.
  echo "== fuzz"
  bash scripts/fuzz.sh "${SITECAST_FUZZ_SECONDS:-45}"
fi
