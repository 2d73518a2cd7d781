#!/usr/bin/env bash
# Replication benchmarks, release builds, on loopback:
#  1. a relay capped at 20 MB/s: its measured rate against the cap (target: within 5%);
#  2. QUIC replication throughput of a 1 GiB package, central -> relay, uncapped,
#     against an HTTPS download of the same bytes with curl from nginx, as a ratio,
#     with the CPU seconds each side spent.
#   scripts/bench-replication.sh [CAPPED_MIB] [BIG_MIB]   (defaults 200 and 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
CAPPED_MIB=${1:-200}
BIG_MIB=${2:-1024}
CAP=20MB/s
CAP_BYTES=20000000

if ! command -v nginx >/dev/null && ! [ -x /usr/sbin/nginx ]; then
  echo "installing nginx (for the HTTPS baseline)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null) \
    || (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null)
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet --bin sitecast-central --bin sitecast --bin sitecast-relay
BIN=$PWD/target/release
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }

"$BIN/sitecast-central" init --dir "$WORK/central" --api-listen 127.0.0.1:0 --quic-listen 127.0.0.1:0 >/dev/null
coproc CENTRAL { RUST_LOG=warn exec "$BIN/sitecast-central" serve --dir "$WORK/central"; }
CPID=$CENTRAL_PID; PIDS+=("$CPID")
read -r -t 30 line <&"${CENTRAL[0]}"; URL=${line#sitecast-central: serving }
read -r -t 30 line <&"${CENTRAL[0]}"; QUIC=${line#sitecast-central: quic }
export SITECAST_URL=$URL SITECAST_TOKEN=$(cat "$WORK/central/admin.token") SITECAST_CA=$WORK/central/tls/ca.pem
sc() { "$BIN/sitecast" "$@"; }

relay() { # relay NAME SITE IP [extra enroll flags...]: prints the relay's PID
  local name=$1 site=$2 ip=$3; shift 3
  local port; port=$(python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$ip")
  sc site add "$site" --subnet "$ip/32" >/dev/null
  local r; r=$(sc --json relay add --site "$site" --subnet "$ip/32" --url "http://$ip:$port")
  "$BIN/sitecast-relay" enroll --dir "$WORK/$name" --central "$QUIC" --ca "$SITECAST_CA" \
    --id "$(jq -r .id <<<"$r")" --token "$(jq -r .token <<<"$r")" --listen "$ip:$port" "$@" >/dev/null
  RUST_LOG=warn "$BIN/sitecast-relay" serve --dir "$WORK/$name" >/dev/null 2>&1 &
  echo $!
}
complete() { [ "$(sc --json relay list | jq "[.[] | select(.site == \"$1\") | .holdings[] | select(.package_id == \"$2\" and .complete)] | length")" = 1 ]; }
package() { # package NAME MIB: creates a package of random bytes, prints its id
  head -c $(($2 << 20)) /dev/urandom > "$WORK/$1.bin"
  sc --json package create --name "$1" --version 1 --file "$WORK/$1.bin" --action store \
    --path /opt/x --archive none --fragment-size 1MiB | jq -r .id
}

echo "== 1. a relay capped at $CAP"
CAPPED=$(package capped "$CAPPED_MIB")
RPID=$(relay capped-relay capped 127.1.0.1 --max-rate "$CAP"); PIDS+=("$RPID")
sleep 1
t=$(now)
sc package activate "$CAPPED" --site capped >/dev/null
# The relay measures its own rate over the last 5 s and reports it: sample it mid-way.
sleep 6
MEASURED=$(sc --json relay list | jq '[.[] | select(.site == "capped") | .replication.rate][0]')
until complete capped "$CAPPED"; do sleep 0.05; done
awk -v b=$((CAPPED_MIB << 20)) -v s="$t" -v e="$(now)" -v cap=$CAP_BYTES -v m="$MEASURED" 'BEGIN {
  r = b / (e - s)
  printf "the relay measured %.2f MB/s against its cap of %.2f MB/s (%+.1f%%)\n", m / 1e6, cap / 1e6, (m - cap) / cap * 100
  printf "end to end (activation to complete, info and reports included): %.0f MB in %.2f s, %.2f MB/s (%+.1f%%)\n", b / 1e6, e - s, r / 1e6, (r - cap) / cap * 100
}'

echo "== 2. 1 GiB: QUIC replication against HTTPS (nginx + curl)"
BIG=$(package big "$BIG_MIB")
RPID=$(relay big-relay big 127.2.0.1); PIDS+=("$RPID")
sleep 1
c0=$(cpu "$CPID"); r0=$(cpu "$RPID"); t=$(now)
sc package activate "$BIG" --site big >/dev/null
until complete big "$BIG"; do sleep 0.05; done
t_quic=$(awk -v s="$t" -v e="$(now)" 'BEGIN { print e - s }')
cpu_quic=$(awk -v a="$c0" -v b="$(cpu "$CPID")" -v c="$r0" -v d="$(cpu "$RPID")" 'BEGIN { printf "%.2f", (b - a) + (d - c) }')

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/www" "$WORK/nginx-tmp"
ln "$WORK/big.bin" "$WORK/www/big.bin"
# nginx's workers run unprivileged: let them read the file.
chmod a+rx "$WORK" "$WORK/www"; chmod a+r "$WORK/www/big.bin"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events {}
http {
  access_log off;
  client_body_temp_path $WORK/nginx-tmp; proxy_temp_path $WORK/nginx-tmp;
  fastcgi_temp_path $WORK/nginx-tmp; uwsgi_temp_path $WORK/nginx-tmp; scgi_temp_path $WORK/nginx-tmp;
  sendfile on;
  server {
    listen 127.0.0.1:$PORT ssl;
    ssl_certificate $WORK/central/tls/server.pem;
    ssl_certificate_key $WORK/central/tls/server.key;
    root $WORK/www;
  }
}
CONF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK"
for _ in $(seq 100); do [ -f "$WORK/nginx.pid" ] && break; sleep 0.05; done
NPID=$(cat "$WORK/nginx.pid")
n0=$(cpu "$NPID"); t=$(now)
CURL_CPU=$(python3 -c '
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.2f" % (u.ru_utime + u.ru_stime))
' curl -sf --cacert "$SITECAST_CA" -o /dev/null "https://127.0.0.1:$PORT/big.bin")
t_https=$(awk -v s="$t" -v e="$(now)" 'BEGIN { print e - s }')
# nginx does the work in a worker process: add the workers' CPU.
n1=0; for w in $(pgrep -P "$NPID"); do n1=$(awk -v a="$n1" -v b="$(cpu "$w")" 'BEGIN { print a + b }'); done
cpu_https=$(awk -v c="$CURL_CPU" -v n="$n1" 'BEGIN { printf "%.2f", c + n }')

awk -v b=$((BIG_MIB << 20)) -v q="$t_quic" -v h="$t_https" -v cq="$cpu_quic" -v ch="$cpu_https" 'BEGIN {
  printf "QUIC replication (central -> relay, fragments verified, fsynced): %.2f s, %.0f MB/s, %s CPU s\n", q, b / q / 1e6, cq
  printf "HTTPS download (nginx -> curl, to /dev/null):                     %.2f s, %.0f MB/s, %s CPU s\n", h, b / h / 1e6, ch
  printf "QUIC/HTTPS throughput ratio: %.2f\n", h / q
}'
