#!/usr/bin/env bash
# Sitecast demo, end to end on loopback:
#   a central; two sites (127.1.0.0/16 and 127.2.0.0/16) with one relay each;
#   three agents per site; one package deployed to all six.
# Prints the stats, the bytes each relay received from central and served to
# agents, and the fragment bytes central served to agents directly. Exits 0 only
# if all six agents report SUCCESS and the package crossed the "WAN" (central ->
# relay) once per site.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null || { echo "demo: '$1' is required" >&2; exit 1; }; }
need cargo; need curl; need jq; need python3; need tar

echo "== building (release)"
cargo build --release --quiet --bin sitecast-central --bin sitecast --bin sitecast-relay --bin sitecast-agent
BIN=$PWD/target/release

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
wait_for() { # wait_for DESCRIPTION COMMAND...: retry for up to 60 s
  local what=$1; shift
  for _ in $(seq 1 600); do "$@" && return 0; sleep 0.1; done
  echo "demo: timed out waiting for $what" >&2; exit 1
}

echo "== central"
"$BIN/sitecast-central" init --dir "$WORK/central" --api-listen 127.0.0.1:0 --quic-listen 127.0.0.1:0 >/dev/null
coproc CENTRAL { RUST_LOG=warn exec "$BIN/sitecast-central" serve --dir "$WORK/central"; }
PIDS+=("$CENTRAL_PID")
read -r -t 30 line <&"${CENTRAL[0]}"; URL=${line#sitecast-central: serving }
read -r -t 30 line <&"${CENTRAL[0]}"; QUIC=${line#sitecast-central: quic }
echo "API $URL, QUIC $QUIC"
export SITECAST_URL=$URL SITECAST_TOKEN=$(cat "$WORK/central/admin.token") SITECAST_CA=$WORK/central/tls/ca.pem
sc() { "$BIN/sitecast" "$@"; }

echo "== two sites, one relay each"
declare -A RELAY
for n in 1 2; do
  site=$([ $n = 1 ] && echo paris || echo lyon)
  sc site add "$site" --subnet "127.$n.0.0/16" >/dev/null
  port=$(free_port "127.$n.0.1")
  created=$(sc --json relay add --site "$site" --subnet "127.$n.0.0/16" --url "http://127.$n.0.1:$port")
  id=$(jq -r .id <<<"$created")
  RELAY[$n]=$id
  "$BIN/sitecast-relay" enroll --dir "$WORK/relay-$site" --central "$QUIC" --ca "$SITECAST_CA" \
    --id "$id" --token "$(jq -r .token <<<"$created")" --listen "127.$n.0.1:$port" >/dev/null
  RUST_LOG=warn "$BIN/sitecast-relay" serve --dir "$WORK/relay-$site" >/dev/null 2>"$WORK/relay-$site.log" &
  PIDS+=($!)
done
sc relay list

echo "== a package: an installer in a tar.gz, 8 MiB, in 1 MiB fragments"
mkdir -p "$WORK/src"
cat > "$WORK/src/install.sh" <<'SCRIPT'
#!/bin/sh
# Runs on each computer, in the unpacked package's directory.
echo "$SITECAST_PACKAGE_NAME $SITECAST_PACKAGE_VERSION installed on $SITECAST_COMPUTER_ID"
SCRIPT
head -c $((8 << 20)) /dev/urandom > "$WORK/src/payload.bin"
chmod +x "$WORK/src/install.sh"
tar -C "$WORK/src" -czf "$WORK/hello.tar.gz" install.sh payload.bin
SIZE=$(stat -c %s "$WORK/hello.tar.gz")
PKG=$(sc --json package create --name hello --version 1.0 --file "$WORK/hello.tar.gz" \
  --action launch --command install.sh \
  --priority 5 --fragment-size 1MiB | jq -r .id)
sc package activate "$PKG" --all-sites >/dev/null
echo "package $PKG ($SIZE bytes) activated for all sites; relays replicating over QUIC"
complete() { [ "$(sc --json relay list | jq "[.[].holdings[] | select(.package_id == \"$PKG\" and .complete)] | length")" = 2 ]; }
wait_for "both relays to hold the package" complete
sc relay list

echo "== six agents, three per site"
AGENTS=()
for n in 1 2; do
  for k in 1 2 3; do
    name=pc-$([ $n = 1 ] && echo paris || echo lyon)-$k
    "$BIN/sitecast-agent" enroll --dir "$WORK/$name" --central "$URL" --ca "$SITECAST_CA" \
      --token "$(cat "$WORK/central/enroll.token")" --bind "127.$n.0.1$k" --hostname "$name" >/dev/null
    AGENTS+=("$name")
  done
done
sc package assign "$PKG" --all
for a in "${AGENTS[@]}"; do
  RUST_LOG=warn "$BIN/sitecast-agent" once --dir "$WORK/$a" > "$WORK/$a.out" 2>&1 &
  PIDS+=($!)
done
for a in "${AGENTS[@]}"; do wait_for "$a to finish" grep -q "$PKG:" "$WORK/$a.out"; done
for a in "${AGENTS[@]}"; do echo "$a: $(cat "$WORK/$a.out")"; done

echo "== stats"
sc package stats "$PKG"
served() { [ "$(sc --json relay list | jq "[.[] | select(.bytes_to_agents >= 3 * $SIZE)] | length")" = 2 ]; }
wait_for "relays to report what they served" served

echo "== bytes"
STATUS=$(curl -sf --cacert "$SITECAST_CA" -H "Authorization: Bearer $SITECAST_TOKEN" "$URL/api/v1/status")
sc --json relay list | jq -r '.[] | "relay \(.id) (\(.site)): received \(.bytes_from_central) bytes from central, served \(.bytes_to_agents) bytes to agents"'
echo "central served $(jq .fragment_bytes_to_agents <<<"$STATUS") fragment bytes to agents directly (package: $SIZE bytes)"

ok=$(sc --json package stats "$PKG" | jq '.counts.SUCCESS // 0')
once=$(sc --json relay list | jq "[.[] | select(.bytes_from_central < 2 * $SIZE)] | length")
direct=$(jq .fragment_bytes_to_agents <<<"$STATUS")
if [ "$ok" = 6 ] && [ "$once" = 2 ] && [ "$direct" = 0 ]; then
  echo "demo: OK — 6/6 SUCCESS, each relay received the package once, central served no fragment to agents"
else
  echo "demo: FAILED — $ok/6 SUCCESS, $once/2 relays received it once, central served $direct fragment bytes" >&2
  exit 1
fi
