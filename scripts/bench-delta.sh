#!/usr/bin/env bash
# Delta replication against rsync, on consecutive real releases (release builds,
# loopback). For each pair of versions the script fetches itself (npm tarballs,
# PyPI wheels), in two forms — the published compressed archive, and an
# uncompressed tar of its contents — it prints:
#   full size of the new version,
#   S-APP:    the bytes the relay received from central above QUIC (signed info
#             and delta, or fragments),
#   Sitecast: UDP bytes a relay holding the old version received on its QUIC
#             connection while replicating the new one (signed info + delta +
#             QUIC overhead), as the relay counts them,
#   rsync:    total bytes (sent + received) of `rsync --stats` pushing the new
#             version over the old one to an rsync daemon on loopback, without and
#             with -z,
#   the ratio Sitecast / rsync. rsync knows as much as Sitecast: the old file.
#   scripts/bench-delta.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null || { [ -z "${APT_UPDATED:-}" ] && apt-get update -qq && APT_UPDATED=1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need rsync rsync
need jq jq
need curl curl
need npm npm
need python3 python3

cargo build --release --quiet --locked --bin sitecast-central --bin sitecast --bin sitecast-relay
BIN=$PWD/target/release
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the corpus: pairs of consecutive releases ------------------------------
CORPUS=$WORK/corpus
mkdir -p "$CORPUS"
NPM_PAIRS="lodash 4.17.20 4.17.21
react-dom 18.2.0 18.3.0
eslint 8.56.0 8.57.0
typescript 5.4.4 5.4.5"
PYPI_PAIRS="requests 2.31.0 2.32.0
Django 5.0.6 5.0.7"
PAIRS=()   # "label old_file new_file"

echo "fetching the corpus..." >&2
while read -r name old new; do
  (cd "$CORPUS" && npm pack --silent "$name@$old" "$name@$new" >/dev/null 2>&1)
  a=$(ls "$CORPUS"/"${name//\//-}"-"$old".tgz) b=$(ls "$CORPUS"/"${name//\//-}"-"$new".tgz)
  PAIRS+=("$name-$old..$new.tgz $a $b")
  gzip -dc "$a" > "${a%.tgz}.tar"; gzip -dc "$b" > "${b%.tgz}.tar"
  PAIRS+=("$name-$old..$new.tar ${a%.tgz}.tar ${b%.tgz}.tar")
done <<< "$NPM_PAIRS"

# A wheel's contents as a reproducible uncompressed tar (sorted, fixed times).
untar_wheel() {
  python3 - "$1" "$2" <<'PY'
import sys, tarfile, zipfile, io
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z, tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as t:
    for name in sorted(z.namelist()):
        data = z.read(name)
        info = tarfile.TarInfo(name); info.size = len(data); info.mtime = 0; info.mode = 0o644
        t.addfile(info, io.BytesIO(data))
PY
}
while read -r name old new; do
  for v in "$old" "$new"; do
    python3 -m pip download --quiet --no-deps --only-binary :all: --python-version 3.12 \
      --dest "$CORPUS/$name-$v" "$name==$v" >/dev/null
  done
  a=$(ls "$CORPUS/$name-$old"/*.whl) b=$(ls "$CORPUS/$name-$new"/*.whl)
  PAIRS+=("$name-$old..$new.whl $a $b")
  untar_wheel "$a" "$CORPUS/$name-$old.tar"; untar_wheel "$b" "$CORPUS/$name-$new.tar"
  PAIRS+=("$name-$old..$new.tar $CORPUS/$name-$old.tar $CORPUS/$name-$new.tar")
done <<< "$PYPI_PAIRS"

# --- Sitecast: a central and one relay on loopback -------------------------
"$BIN/sitecast-central" init --dir "$WORK/central" --api-listen 127.0.0.1:0 --quic-listen 127.0.0.1:0 >/dev/null
coproc CENTRAL { RUST_LOG=warn exec "$BIN/sitecast-central" serve --dir "$WORK/central"; }
PIDS+=("$CENTRAL_PID")
read -r -t 30 line <&"${CENTRAL[0]}"; URL=${line#sitecast-central: serving }
read -r -t 30 line <&"${CENTRAL[0]}"; QUIC=${line#sitecast-central: quic }
export SITECAST_URL=$URL SITECAST_TOKEN=$(cat "$WORK/central/admin.token") SITECAST_CA=$WORK/central/tls/ca.pem
sc() { "$BIN/sitecast" "$@"; }
api() { curl -sS --fail-with-body --cacert "$SITECAST_CA" -H "Authorization: Bearer $SITECAST_TOKEN" "$@"; }

IP=127.9.0.1
PORT=$(python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$IP")
sc site add bench --subnet "$IP/32" >/dev/null
R=$(sc --json relay add --site bench --subnet "$IP/32" --url "http://$IP:$PORT")
RID=$(jq -r .id <<<"$R")
"$BIN/sitecast-relay" enroll --dir "$WORK/relay" --central "$QUIC" --ca "$SITECAST_CA" \
  --id "$RID" --token "$(jq -r .token <<<"$R")" --listen "$IP:$PORT" >/dev/null
RUST_LOG=warn "$BIN/sitecast-relay" serve --dir "$WORK/relay" >/dev/null 2>&1 &
PIDS+=($!)

relay_view() { sc --json relay list | jq ".[] | select(.id == \"$RID\")"; }
wait_complete() { # wait_complete PACKAGE_ID
  for _ in $(seq 600); do
    [ "$(relay_view | jq "[.holdings[] | select(.package_id == \"$1\" and .complete)] | length")" = 1 ] && return 0
    sleep 0.1
  done
  echo "relay never held $1" >&2; exit 1
}
upload() { # upload NAME VERSION FILE [QUERY...]: prints the package id
  api -X POST --data-binary @"$3" \
    "$URL/api/v1/packages?name=$1&version=$2&action=store&path=/opt/bench&archive=none&fragment_size=1MiB${4:-}" | jq -r .id
}

# --- rsync: a daemon on loopback ---------------------------------------------
RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/rsync-dest"
cat > "$WORK/rsyncd.conf" <<EOF
pid file = $WORK/rsyncd.pid
use chroot = no
[bench]
  path = $WORK/rsync-dest
  read only = no
  uid = $(id -u)
  gid = $(id -g)
EOF
rsync --daemon --no-detach --address=127.0.0.1 --port="$RPORT" --config="$WORK/rsyncd.conf" &
PIDS+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$RPORT") 2>/dev/null && break; sleep 0.1; done
rsync_bytes() { # rsync_bytes OLD NEW [FLAGS]: total bytes of pushing NEW over OLD
  cp "$1" "$WORK/rsync-dest/pkg"
  mkdir -p "$WORK/rsync-src"; cp "$2" "$WORK/rsync-src/pkg"
  # -I: compare contents even when size and time agree (same-size tars).
  rsync --stats --no-whole-file -I ${3:-} "$WORK/rsync-src/pkg" "rsync://127.0.0.1:$RPORT/bench/pkg" \
    | awk -F': ' '/^Total bytes sent/ {gsub(",","",$2); s=$2} /^Total bytes received/ {gsub(",","",$2); r=$2} END {print s + r}'
}

printf '%-32s %10s %10s %10s %10s %10s %7s %7s\n' PAIR FULL "S-APP" SITECAST RSYNC "RSYNC -z" "S/R" "S/R-z"
n=0
for pair in "${PAIRS[@]}"; do
  read -r label old new <<<"$pair"
  n=$((n + 1))
  v1=$(upload "p$n" 1 "$old")
  sc package activate "$v1" --site bench >/dev/null
  wait_complete "$v1"
  v2=$(upload "p$n" 2 "$new" "&supersedes=$v1")
  before=$(relay_view | jq .quic_bytes_from_central)
  app_before=$(relay_view | jq .bytes_from_central)
  sc package activate "$v2" --site bench >/dev/null
  wait_complete "$v2"
  after=$(relay_view | jq .quic_bytes_from_central)
  app=$(( $(relay_view | jq .bytes_from_central) - app_before ))
  s=$((after - before))
  r=$(rsync_bytes "$old" "$new")
  rz=$(rsync_bytes "$old" "$new" -z)
  full=$(stat -c %s "$new")
  # Each pair on its own: the next pair's activated set (pushed whole to the
  # relay on every change) does not carry this one's packages.
  sc package deactivate "$v2" --all-sites >/dev/null
  sc package deactivate "$v1" --all-sites >/dev/null
  awk -v l="$label" -v f="$full" -v a="$app" -v s="$s" -v r="$r" -v z="$rz" \
    'BEGIN { printf "%-32s %10d %10d %10d %10d %10d %7.3f %7.3f\n", l, f, a, s, r, z, s / r, s / z }'
done
