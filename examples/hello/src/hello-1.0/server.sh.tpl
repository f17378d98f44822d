#!/bin/sh
# Rendered by c2 for one deploy: serves www/ over HTTP on the port c2 gave
# this deploy ({{ports.http}}), on the loopback only; nginx, the frontend
# proxy, is what clients talk to.
#   sh server.sh start|stop
set -eu
port={{ports.http}}

# Whether the server this directory started still runs (a recycled pid or
# a zombie does not count).
running() {
  [ -s server.pid ] &&
    tr '\0' ' ' 2>/dev/null <"/proc/$(cat server.pid)/cmdline" | grep -q http.server
}

# Whether the port answers with this deploy's own page.
answers() {
  python3 -c '
import sys, urllib.request
page = urllib.request.urlopen("http://127.0.0.1:" + sys.argv[1] + "/", timeout=1).read()
sys.exit(page != open("www/index.html", "rb").read())' "$port" 2>/dev/null
}

case "${1:-}" in
start)
  mkdir -p www
  cp index.html www/index.html
  nohup python3 -m http.server "$port" --bind 127.0.0.1 --directory www >server.log 2>&1 &
  echo $! >server.pid
  # Started means answering: c2 may route traffic here as soon as this returns.
  tries=0
  until answers; do
    if ! running; then
      echo "hello: the server on port $port exited:" >&2
      cat server.log >&2
      exit 1
    fi
    tries=$((tries + 1))
    if [ "$tries" -ge 100 ]; then
      echo "hello: no answer on port $port after 10 s" >&2
      kill "$(cat server.pid)"
      exit 1
    fi
    sleep 0.1
  done
  ;;
stop)
  if running; then
    kill "$(cat server.pid)"
    # Gone, and its port free, before stop returns.
    tries=0
    while running; do
      tries=$((tries + 1))
      if [ "$tries" -ge 100 ]; then kill -9 "$(cat server.pid)" 2>/dev/null || true; fi
      sleep 0.1
    done
  fi
  rm -f server.pid
  ;;
*)
  echo "usage: sh server.sh start|stop" >&2
  exit 2
  ;;
esac
