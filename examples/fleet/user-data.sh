#!/bin/sh
# EC2 user-data for a machine of a c2 fleet.
#
# The image already holds c2 (/opt/bin/c2), its config and
# c2-slave.service (in /etc/systemd/system). At boot, fetch the instance's
# context (S3 objects, Secrets Manager secrets), waiting for sources the
# same provisioning run may still be writing, but not forever; then hand
# over to systemd, which runs `c2 slave-update --repeat 30` from then on.
#
# Settings (environment): C2 (the c2 binary), CONTEXT_TIMEOUT (how long to
# wait for the context, default 15m).
set -eu
C2=${C2:-/opt/bin/c2}
CONTEXT_TIMEOUT=${CONTEXT_TIMEOUT:-15m}

if ! "$C2" fetch-context --retry --timeout "$CONTEXT_TIMEOUT"; then
  echo "user-data: the instance context is incomplete (see above); c2-slave not started" >&2
  exit 1
fi
systemctl daemon-reload
systemctl enable --now c2-slave.service
echo "user-data: c2-slave started"
