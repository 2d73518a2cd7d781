#!/usr/bin/env bash
# Sitecast demo: what central does today, end to end over loopback.
#   central initialised and serving -> a site and its relay -> a package
#   created (fragmented, signed) -> its signed info verified independently
#   with openssl -> an agent enrolls, is notified, reports -> stats.
# Exits non-zero if any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null || { echo "demo: '$1' is required" >&2; exit 1; }; }
need cargo; need curl; need jq; need openssl

echo "== building"
cargo build --release --quiet --bin sitecast-central --bin sitecast
BIN=$PWD/target/release

WORK=$(mktemp -d)
CENTRAL_PID=
cleanup() {
  [ -n "$CENTRAL_PID" ] && kill "$CENTRAL_PID" 2>/dev/null && wait "$CENTRAL_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== central: init and serve (ephemeral ports on 127.0.0.1)"
"$BIN/sitecast-central" init --dir "$WORK/central" --api-listen 127.0.0.1:0 --quic-listen 127.0.0.1:0
coproc CENTRAL { RUST_LOG=warn exec "$BIN/sitecast-central" serve --dir "$WORK/central"; }
CENTRAL_PID=$CENTRAL_PID
read -r -t 30 line <&"${CENTRAL[0]}"
URL=${line#sitecast-central: serving }
echo "central is serving $URL"

sc() { "$BIN/sitecast" --central-dir "$WORK/central" "$@"; }
# The CLI reads the URL from central.toml; with port 0 there, point it at the bound port.
export SITECAST_URL=$URL SITECAST_TOKEN=$(cat "$WORK/central/admin.token") SITECAST_CA=$WORK/central/tls/ca.pem
sc() { "$BIN/sitecast" "$@"; }

echo "== a site and its relay"
sc site add paris --subnet 127.1.0.0/16
sc relay add --site paris --subnet 127.1.0.0/16 --url http://127.1.0.1:8080
sc site list

echo "== a package: a tar.gz with an install script, in 64 KiB fragments"
mkdir -p "$WORK/src"
printf '#!/bin/sh\necho "hello from sitecast"\n' > "$WORK/src/install.sh"
head -c 300000 /dev/urandom > "$WORK/src/payload.bin"
tar -C "$WORK/src" -czf "$WORK/hello.tar.gz" install.sh payload.bin
PKG=$(sc --json package create --name hello --version 1.0 --file "$WORK/hello.tar.gz" \
  --action launch --command "install.sh" --priority 5 --fragment-size 64KiB | jq -r .id)
sc package show "$PKG"
sc package activate "$PKG" --site paris

echo "== the signed info, verified with openssl (Ed25519 over DSSE's PAE)"
sc_curl() { curl -sf --cacert "$SITECAST_CA" -H "Authorization: Bearer $SITECAST_TOKEN" "$@"; }
sc_curl "$URL/api/v1/packages/$PKG/info" > "$WORK/info.dsse.json"
jq -r .payload "$WORK/info.dsse.json" | base64 -d > "$WORK/payload.json"
jq -r '.signatures[0].sig' "$WORK/info.dsse.json" | base64 -d > "$WORK/sig.bin"
TYPE=$(jq -r .payloadType "$WORK/info.dsse.json")
{ printf 'DSSEv1 %d %s %d ' "${#TYPE}" "$TYPE" "$(stat -c %s "$WORK/payload.json")"; cat "$WORK/payload.json"; } > "$WORK/pae.bin"
openssl pkeyutl -verify -pubin -inkey "$WORK/central/keys/signing.pub" -rawin \
  -in "$WORK/pae.bin" -sigfile "$WORK/sig.bin"
[ "$(sha256sum < "$WORK/hello.tar.gz" | cut -d' ' -f1)" = "$(jq -r .sha256 "$WORK/payload.json")" ]
echo "whole-file SHA-256 matches the signed info; $(jq '.fragments | length' "$WORK/payload.json") fragment digests"

echo "== an agent enrolls, is notified by its poll, and reports"
ENROLL=$(curl -sf --cacert "$SITECAST_CA" -H 'Content-Type: application/json' \
  -d "{\"enroll_token\":\"$(cat "$WORK/central/enroll.token")\",\"hostname\":\"pc-paris-1\",\"os\":\"linux\",\"addresses\":[\"127.1.0.11\"]}" \
  "$URL/api/v1/agent/enroll")
CID=$(jq -r .computer_id <<<"$ENROLL"); ATOKEN=$(jq -r .token <<<"$ENROLL")
sc package assign "$PKG" --computer "$CID"
agent() { curl -sf --cacert "$SITECAST_CA" -H "Authorization: Bearer $ATOKEN" -H 'Content-Type: application/json' "$@"; }
agent -d '{"addresses":["127.1.0.11"]}' "$URL/api/v1/agent/poll" | jq -c .
agent "$URL/api/v1/agent/packages/$PKG/fragments/1" | cmp -n 65536 - "$WORK/hello.tar.gz"
agent -d '{"code":"SUCCESS","exit_code":0,"output":"hello from sitecast"}' "$URL/api/v1/agent/packages/$PKG/status" >/dev/null
sc computer list
sc package stats "$PKG"
[ "$(sc --json package stats "$PKG" | jq -r '.counts.SUCCESS')" = 1 ]
echo "demo: OK"
