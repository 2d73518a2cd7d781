#!/usr/bin/env bash
# Measures a package upload into a release build of central: throughput, and
# central's peak resident memory (VmHWM from /proc) — which must stay flat
# whatever the package size, because uploads are streamed to disk.
#   scripts/bench-upload.sh [SIZE_MIB]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}

cargo build --release --quiet --bin sitecast-central
BIN=$PWD/target/release
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN/sitecast-central" init --dir "$WORK/central" --api-listen 127.0.0.1:0 --quic-listen 127.0.0.1:0 >/dev/null
coproc CENTRAL { RUST_LOG=warn exec "$BIN/sitecast-central" serve --dir "$WORK/central"; }
PID=$CENTRAL_PID
read -r -t 30 line <&"${CENTRAL[0]}"
URL=${line#sitecast-central: serving }

head -c "$((SIZE_MIB << 20))" /dev/urandom > "$WORK/package.bin"
rss_before=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
start=$(date +%s.%N)
curl -sf --cacert "$WORK/central/tls/ca.pem" -H "Authorization: Bearer $(cat "$WORK/central/admin.token")" \
  ${CURL_OPTS:-} -H "Content-Type: application/octet-stream" -X POST -T "$WORK/package.bin" \
  "$URL/api/v1/packages?name=bench&version=1&action=store&path=/opt/bench&fragment_size=4MiB" >/dev/null
end=$(date +%s.%N)
rss_after=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
cpu=$(awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$PID/stat")

awk -v mib="$SIZE_MIB" -v s="$start" -v e="$end" -v b="$rss_before" -v a="$rss_after" -v cpu="$cpu" 'BEGIN {
  t = e - s
  printf "uploaded %d MiB in %.2f s: %.0f MiB/s (central CPU %.2f s)\n", mib, t, mib / t, cpu
  printf "central peak RSS: %.1f MiB before, %.1f MiB after the upload\n", b / 1024, a / 1024
}'
