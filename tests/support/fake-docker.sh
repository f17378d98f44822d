#!/bin/sh
# A stand-in for `docker`, `docker-compose` or a configured compose command,
# used by tests/it/docker_driver.rs. Each call appends one line to
# $FAKE_DOCKER_LOG: "<name> <args>", a tab, and the directory it ran in.
# It exits 0, or 1 when the call ("<name> <args>") starts with
# $FAKE_DOCKER_FAIL.
call="$(basename "$0") $*"
printf '%s\t%s\n' "$call" "$(pwd -P)" >> "$FAKE_DOCKER_LOG"
if [ -n "${FAKE_DOCKER_FAIL:-}" ]; then
  case "$call" in
    "$FAKE_DOCKER_FAIL"*) exit 1 ;;
  esac
fi
exit 0
