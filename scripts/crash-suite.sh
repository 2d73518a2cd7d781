#!/usr/bin/env bash
# Crash suite: the real central, relay and agent binaries of a deployment on
# loopback, each killed with SIGKILL at N random points of a deployment (default
# 100 each, so 3N rounds), checked after every restart: nothing acknowledged lost,
# no command run twice, nothing held by a relay that does not verify, every
# deployment completed. Prints the counts; exits non-zero on any failed check.
#
#   scripts/crash-suite.sh [N]
#   SEED=123 scripts/crash-suite.sh 5         # replays a run (the seed is printed)
#   SITECAST_BIN_DIR=target/debug scripts/crash-suite.sh 5   # binaries already built
#   SITECAST_CRASH_KEEP=1 ...                 # keeps the work directory (always kept on failure)
#   SITECAST_CRASH_DRIVER=target/debug/crash-suite ...     # a driver already built
#
# The driver is the `crash-suite` binary of the sitecast-tests crate
# (tests/src/bin/crash-suite/); this script only builds and starts it.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-100}
if [ -z "${SITECAST_BIN_DIR:-}" ]; then
  echo "== building the release binaries"
  cargo build --release --quiet --bin sitecast-central --bin sitecast --bin sitecast-relay --bin sitecast-agent
  export SITECAST_BIN_DIR=$PWD/target/release
fi
for b in sitecast-central sitecast-relay sitecast-agent; do
  [ -x "$SITECAST_BIN_DIR/$b" ] || { echo "crash-suite: no $SITECAST_BIN_DIR/$b" >&2; exit 1; }
done
# The driver needs no speed: the debug build `cargo test` makes is enough
# (SITECAST_CRASH_DRIVER names one already built).
DRIVER=${SITECAST_CRASH_DRIVER:-}
if [ -z "$DRIVER" ]; then
  echo "== building the driver"
  cargo build --quiet -p sitecast-tests --bin crash-suite
  DRIVER=target/debug/crash-suite
fi
exec "$DRIVER" "$N"
