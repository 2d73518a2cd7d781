#!/usr/bin/env bash
# Deploys one large package (default 1 GiB) through a relay to an agent with
# release builds, and prints the time of each stage and the peak resident memory
# (VmHWM / ru_maxrss) of central, the relay and the agent — which must stay flat
# whatever the package size: everything is streamed, nothing is held whole.
#   scripts/bench-deploy.sh [SIZE_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}

cargo build --release --quiet --bin sitecast-central --bin sitecast --bin sitecast-relay --bin sitecast-agent
BIN=$PWD/target/release
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
hwm() { awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$1/status"; }
now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.2f s", e - s }'; }

"$BIN/sitecast-central" init --dir "$WORK/central" --api-listen 127.0.0.1:0 --quic-listen 127.0.0.1:0 >/dev/null
coproc CENTRAL { RUST_LOG=warn exec "$BIN/sitecast-central" serve --dir "$WORK/central"; }
CPID=$CENTRAL_PID; PIDS+=("$CPID")
read -r -t 30 line <&"${CENTRAL[0]}"; URL=${line#sitecast-central: serving }
read -r -t 30 line <&"${CENTRAL[0]}"; QUIC=${line#sitecast-central: quic }
export SITECAST_URL=$URL SITECAST_TOKEN=$(cat "$WORK/central/admin.token") SITECAST_CA=$WORK/central/tls/ca.pem
sc() { "$BIN/sitecast" "$@"; }

sc site add paris --subnet 127.1.0.0/16 >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.1.0.1",0)); print(s.getsockname()[1])')
R=$(sc --json relay add --site paris --subnet 127.1.0.0/16 --url "http://127.1.0.1:$PORT")
"$BIN/sitecast-relay" enroll --dir "$WORK/relay" --central "$QUIC" --ca "$SITECAST_CA" \
  --id "$(jq -r .id <<<"$R")" --token "$(jq -r .token <<<"$R")" --listen "127.1.0.1:$PORT" >/dev/null
RUST_LOG=warn "$BIN/sitecast-relay" serve --dir "$WORK/relay" >/dev/null 2>&1 &
RPID=$!; PIDS+=("$RPID")

head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/package.bin"
t=$(now)
PKG=$(sc --json package create --name big --version 1 --file "$WORK/package.bin" --action store \
  --path "$WORK/installed" --archive none --fragment-size 4MiB | jq -r .id)
echo "upload of $SIZE_MIB MiB to central: $(since "$t")"
t=$(now)
sc package activate "$PKG" --all-sites >/dev/null
until [ "$(sc --json relay list | jq "[.[].holdings[] | select(.complete)] | length")" = 1 ]; do sleep 0.2; done
echo "replication central -> relay over QUIC: $(since "$t")"

"$BIN/sitecast-agent" enroll --dir "$WORK/agent" --central "$URL" --ca "$SITECAST_CA" \
  --token "$(cat "$WORK/central/enroll.token")" --bind 127.1.0.11 >/dev/null
sc package assign "$PKG" --all >/dev/null
t=$(now)
AGENT_RSS=$(RUST_LOG=warn python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
if r.returncode: sys.exit(r.returncode)
print("%.1f MiB" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))
' "$BIN/sitecast-agent" once --dir "$WORK/agent")
echo "agent download, verify, rebuild, store: $(since "$t")"
cmp "$WORK/package.bin" "$WORK/installed/big"
echo "status: $(sc --json package stats "$PKG" | jq -c .counts)"
echo "peak RSS: central $(hwm "$CPID"), relay $(hwm "$RPID"), agent $AGENT_RSS"
