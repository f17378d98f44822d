#!/bin/sh
# Quick start: what c2 is for, on one machine, in under a minute.
#
#   sh examples/quickstart.sh
#
# It builds c2 (installing protoc if it is missing: Debian's
# protobuf-compiler), installs nginx if it is missing (Debian: nginx-light), and
# runs two versions of a small web release side by side behind nginx,
# switching the public endpoint from one to the other (blue/green) without
# touching either. Everything lives under target/quickstart/; when it ends,
# successfully or not, nothing it started is left running.
#
# Settings (environment variables; the defaults suit a fresh clone):
#   QUICKSTART_DIR          work directory             (target/quickstart)
#   QUICKSTART_PORT         port nginx listens on      (8480)
#   QUICKSTART_DEPLOY_PORT  first port for the deploys (8481; ten are reserved)
#   C2_BIN                  a c2 binary to use instead of building one
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
work=${QUICKSTART_DIR:-$root/target/quickstart}
port=${QUICKSTART_PORT:-8480}
deploy_port=${QUICKSTART_DEPLOY_PORT:-8481}

say() { printf '\n== %s\n' "$*"; }
die() {
  echo "quickstart: $*" >&2
  exit 1
}

if [ -n "${C2_BIN:-}" ]; then
  c2=$C2_BIN
else
  if ! command -v protoc >/dev/null 2>&1; then
    say "Installing protobuf-compiler (c2's etcd client is generated from etcd's gRPC definitions at build time)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler; } ||
      die "cannot install protoc: install it (apt-get install protobuf-compiler) and run again"
  fi
  say "Building c2"
  cargo build --quiet --bin c2
  c2=$root/target/debug/c2
fi

if ! command -v python3 >/dev/null 2>&1; then
  die "the example releases serve HTTP with python3: install it (apt-get install python3) and run again"
fi
if ! [ -x /usr/sbin/nginx ] && ! command -v nginx >/dev/null 2>&1; then
  say "Installing nginx (the frontend proxy)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; } ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx ||
    die "cannot install nginx: install it (apt-get install nginx-light) and run again"
fi
if [ -x /usr/sbin/nginx ]; then nginx=/usr/sbin/nginx; else nginx=$(command -v nginx); fi
if [ "$(id -u)" != 0 ]; then
  echo "quickstart: note: not root; Debian's nginx writes its logs under /var/log/nginx," >&2
  echo "quickstart: so if 'c2 connect' fails with Permission denied, run this as root" >&2
fi

start_time=$(date +%s)

# Whether a process runs with this pid and a command line matching $2 (a
# recycled pid or a zombie does not count).
alive() {
  tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -Eq "$2"
}

# Whether something listens on a TCP port (binding it fails).
in_use() {
  ! python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))' "$1" 2>/dev/null
}

# Processes of this work directory: the deploys' servers and nginx.
pid_files() {
  for f in "$work"/deploys/*/server.pid "$work"/deploys/frontend-proxy/nginx.pid; do
    [ -s "$f" ] && echo "$f"
  done
  return 0
}

# Kills what an earlier run of this script left running (one killed before
# it could clean up), so its ports are free again.
kill_leftovers() {
  for f in $(pid_files); do
    pid=$(cat "$f")
    if alive "$pid" 'http\.server|nginx'; then
      echo "quickstart: stopping leftover process $pid ($f)"
      kill "$pid" 2>/dev/null || true
    fi
  done
}

if [ -d "$work" ]; then
  [ -e "$work/.c2-quickstart" ] || [ -z "$(ls -A "$work")" ] ||
    die "$work is not empty and was not made by this script: set QUICKSTART_DIR elsewhere"
  kill_leftovers
  rm -rf "$work"
fi
mkdir -p "$work/etc"
: >"$work/.c2-quickstart"

for p in "$port" "$deploy_port" $((deploy_port + 1)); do
  # A process stopped a moment ago may still hold its port briefly.
  tries=0
  while in_use "$p"; do
    tries=$((tries + 1))
    [ "$tries" -lt 20 ] ||
      die "port $p is in use: set QUICKSTART_PORT (nginx) or QUICKSTART_DEPLOY_PORT (deploys) to free ports"
    sleep 0.1
  done
done

# Infrastructure context: what this machine tells every release it runs.
cat >"$work/site.json" <<JSON
{"title": "Hello from c2"}
JSON

# The config an operator keeps in /opt/etc/camus2.yaml; here c2 is pointed
# at it with CAMUS2_CONFIG.
cat >"$work/etc/camus2.yaml" <<YAML
deploysDir: $work/deploys
contextCache: $work/config
logFile: $work/log/camus2.log
releases:
  localdir: $root/examples/hello/releases
configSources:
  site:
    file: $work/site.json
deployMode:
  proxy:
    endPoints:
      main:
        serverNames: [localhost]
        etype: httpOnly
    frontendProxy:
      host:
        nginxBinary: $nginx
    httpPort: $port
    dynamicPortRange: {v1: $deploy_port, v2: $((deploy_port + 10))}
YAML
export CAMUS2_CONFIG="$work/etc/camus2.yaml"

# The pids this run started, to check at the end that they are all gone.
: >"$work/pids"
record_pids() {
  for f in $(pid_files); do
    grep -qx "$(cat "$f")" "$work/pids" || cat "$f" >>"$work/pids"
  done
}

run() {
  echo "\$ c2 $*"
  "$c2" "$@"
}

# GET / through nginx as a browser asking for http://localhost/ would:
# prints the status and the page, and keeps the page in $work/<file>.
fetch() {
  echo "\$ curl -H 'Host: localhost' http://127.0.0.1:$port/"
  if command -v curl >/dev/null 2>&1; then
    code=$(curl -sS -o "$work/$1" -w '%{http_code}' -H 'Host: localhost' "http://127.0.0.1:$port/")
  else
    code=$(python3 -c '
import sys, urllib.error, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Host": "localhost"})
try:
    resp = urllib.request.urlopen(req, timeout=10)
except urllib.error.HTTPError as e:
    resp = e
open(sys.argv[2], "wb").write(resp.read())
print(resp.status if hasattr(resp, "status") else resp.code)' "http://127.0.0.1:$port/" "$work/$1")
  fi
  echo "HTTP $code"
  cat "$work/$1"
}

# Stops everything through c2, as an operator would; used on failure too.
finished=no
cleanup() {
  status=$?
  trap - EXIT INT TERM
  if [ "$finished" = no ] && [ -e "${CAMUS2_CONFIG:-}" ]; then
    echo "quickstart: failed (exit $status): stopping what it started" >&2
    "$c2" disconnect main >/dev/null 2>&1 || true
    "$c2" stop hello-1.0 >/dev/null 2>&1 || true
    "$c2" stop hello-2.0 >/dev/null 2>&1 || true
    "$c2" shutdown-frontend-proxy >/dev/null 2>&1 || true
    record_pids
    kill_leftovers
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "The release store: two versions of a small web release"
run list-releases

say "Start both, side by side: each deploy gets its own port"
run start hello-1.0.zip
run start hello-2.0.zip
record_pids

say "Route the endpoint 'main' (server name localhost) to hello-1.0"
run connect main hello-1.0
record_pids
fetch served-1.0.html
grep -q '<h1>hello 1.0</h1>' "$work/served-1.0.html" || die "nginx did not serve hello 1.0"

say "What runs where"
run status

say "Blue/green: switch 'main' to hello-2.0 (nginx reloads, no request is dropped)"
run connect main hello-2.0
fetch served-2.0.html
grep -q '<h1>hello 2.0</h1>' "$work/served-2.0.html" || die "nginx did not serve hello 2.0"

say "A deploy that serves an endpoint cannot be stopped"
if run stop hello-2.0; then die "c2 stopped a connected deploy"; fi

say "Clean up: retire hello-1.0, disconnect 'main', stop hello-2.0 and nginx"
run stop hello-1.0
run disconnect main
fetch served-none.html
run stop hello-2.0
run shutdown-frontend-proxy
run status

say "Nothing left running"
left=""
for pid in $(cat "$work/pids"); do
  if alive "$pid" 'http\.server|nginx'; then left="$left $pid"; fi
done
for p in "$port" "$deploy_port" $((deploy_port + 1)); do
  if in_use "$p"; then left="$left port:$p"; fi
done
[ -z "$left" ] || die "still running after the cleanup:$left"
echo "the servers (pids $(tr '\n' ' ' <"$work/pids"| sed 's/ $//')) and nginx are gone; ports $port, $deploy_port and $((deploy_port + 1)) are free"
finished=yes

echo
echo "Quick start OK in $(($(date +%s) - start_time)) s: hello-1.0 and hello-2.0 ran side by side"
echo "behind nginx, 'main' switched from one to the other, and everything was stopped."
echo "Look around: $work (etc/camus2.yaml, deploys/, log/camus2.log)"
