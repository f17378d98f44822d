#!/bin/sh
# A stand-in for `docker`, used by tests/it/certificates.rs. Unlike
# fake-docker.sh it keeps argument boundaries: each call appends to
# $FAKE_DOCKER_LOG a line "@ <directory it ran in>", then the command's
# name, then each argument on a line of its own. It always exits 0.
{
  printf '@ %s\n' "$(pwd -P)"
  basename "$0"
  for arg in "$@"; do
    printf '%s\n' "$arg"
  done
} >> "$FAKE_DOCKER_LOG"
exit 0
