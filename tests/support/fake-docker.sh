#!/bin/sh
# A stand-in for `docker`, `docker-compose` or a configured compose command,
# used by tests/it/docker_driver.rs. Each call appends one line to
# $FAKE_DOCKER_LOG: "<name> <args>", a tab, and the directory it ran in.
# It exits 0, or 1 when the call ("<name> <args>") starts with
# $FAKE_DOCKER_FAIL.
#
# With $FAKE_DOCKER_NGINX set, the `frontendproxy` container is a real
# nginx run from the directory compose runs in (the frontend-proxy
# directory) on its nginx.conf, its master's pid in nginx.pid: `up -d`
# starts it, or restarts it when the compose file changed since it started
# (as compose re-creates a container); `inspect` reports it; `kill
# --signal=SIGHUP` reloads it; `exec frontendproxy nginx -t -q` tests the
# config; `kill` (compose) stops it. Without it, no container ever runs.
call="$(basename "$0") $*"
printf '%s\t%s\n' "$call" "$(pwd -P)" >> "$FAKE_DOCKER_LOG"
if [ -n "${FAKE_DOCKER_FAIL:-}" ]; then
  case "$call" in
    "$FAKE_DOCKER_FAIL"*) exit 1 ;;
  esac
fi
[ -n "${FAKE_DOCKER_NGINX:-}" ] || exit 0

dir="$(pwd -P)"
nginx() {
  /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/fake-container.log" \
    -g "pid $dir/nginx.pid;" "$@"
}
master() { cat "$dir/nginx.pid" 2>/dev/null; }
running() { pid="$(master)" && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
stop() {
  if running; then
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
  fi
}
case "$call" in
  "docker inspect -f {{.State.Running}} {{.State.Pid}} frontendproxy")
    if running; then echo "true $pid"; else echo "Error: No such object: frontendproxy" >&2; exit 1; fi ;;
  "docker kill --signal=SIGHUP frontendproxy")
    if running; then kill -HUP "$pid"; else echo "Error: frontendproxy is not running" >&2; exit 1; fi ;;
  "docker exec frontendproxy nginx -t -q")
    running || { echo "Error: frontendproxy is not running" >&2; exit 1; }
    nginx -t -q ;;
  "docker compose version") ;;
  *" up -d")
    if ! running || ! cmp -s docker-compose.yml fake-container.yml; then
      stop
      cp docker-compose.yml fake-container.yml
      nginx
    fi ;;
  *" kill") stop ;;
esac
