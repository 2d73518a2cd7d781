#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target of fuzz/ for SECONDS each (default 60), one at a
# time, each on a scratch copy of its committed seed corpus (fuzz/corpus/TARGET), so
# the committed corpus never grows. Installs a nightly toolchain and cargo-fuzz if
# they are missing. Exits non-zero if any target crashed, leaked, timed out or ran
# out of memory, after printing the input that did it; replay one with
#   cd fuzz && cargo +nightly fuzz run TARGET ARTIFACT
# SITECAST_FUZZ_TARGETS="info grammars" fuzzes only those targets.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
case $seconds in
'' | *[!0-9]*)
  echo "usage: $0 [SECONDS]  (seconds per target, default 60)" >&2
  exit 2
  ;;
esac

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "== installing a nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "== cargo +nightly fuzz build"
(cd fuzz && cargo +nightly fuzz build)
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir=$PWD/fuzz/target/$host/release
artifacts=$PWD/fuzz/artifacts

targets=${SITECAST_FUZZ_TARGETS:-$(cd fuzz && cargo +nightly fuzz list)}
work=$(mktemp -d "${TMPDIR:-/tmp}/sitecast-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

summary=()
failed=0
for target in $targets; do
  corpus=$work/corpus/$target
  mkdir -p "$corpus" "$artifacts/$target"
  if [ -d "fuzz/corpus/$target" ]; then
    cp -R "fuzz/corpus/$target/." "$corpus/"
  fi
  seeds=$(find "$corpus" -type f | wc -l)
  # A fresh TMPDIR per target: the unpack target leaves its scratch directory
  # behind when libFuzzer exits, and this removes it.
  rm -rf "$work/tmp" && mkdir -p "$work/tmp"
  log=$work/$target.log
  echo "== fuzz $target for ${seconds}s ($seeds seeds)"
  started=$(date +%s)
  status=0
  TMPDIR=$work/tmp "$bin_dir/$target" "$corpus" \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/$target/" -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  took=$(($(date +%s) - started))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  grown=$(find "$corpus" -type f | wc -l)
  line="$target: ${runs:-?} runs in ${took}s, corpus $seeds -> $grown"
  if [ "$status" -ne 0 ]; then
    failed=1
    tail -n 40 "$log"
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    line="$line, FAILED (exit $status), input ${artifact:-none written}"
    if [ -n "$artifact" ] && [ -f "$artifact" ]; then
      # CI's checkout is thrown away: the log must carry the input itself.
      echo "input as base64 (base64 -d > crash; cd fuzz && cargo +nightly fuzz run $target crash):"
      head -c 65536 "$artifact" | base64
    fi
  fi
  echo "$line"
  summary+=("$line")
done

echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  echo "fuzzing found a failure: the inputs are under fuzz/artifacts/" >&2
  exit 1
fi
