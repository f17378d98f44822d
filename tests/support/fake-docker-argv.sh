#!/bin/sh
# A stand-in for `docker`, used by tests/it/certificates.rs. Unlike
# fake-docker.sh it keeps argument boundaries: each call appends to
# $FAKE_DOCKER_LOG a line "@ <directory it ran in>", then the command's
# name, then each argument on a line of its own, all in one write (c2 runs
# some calls at once). It always exits 0.
record="@ $(pwd -P)
$(basename "$0")"
for arg in "$@"; do
  record="$record
$arg"
done
printf '%s\n' "$record" >> "$FAKE_DOCKER_LOG"
exit 0
