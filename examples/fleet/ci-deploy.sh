#!/bin/sh
# A CI deploy to a c2 fleet (remote state): publish a release directory,
# start it on every live slave, switch an endpoint to it, and roll back if
# the fleet does not follow.
#
#   sh ci-deploy.sh <release-dir> [endpoint]
#
# Settings (environment): C2 (the c2 binary, default c2), TIMEOUT (how long
# to wait for the fleet at each step, default 10m), MIN_SLAVES (fewer live
# slaves fails before anything changes, default 1).
#
# Exit 0: the endpoint serves the new release on every live slave. Exit 1:
# it does not, and the endpoint is back where it was (see the messages).
set -eu
C2=${C2:-c2}
TIMEOUT=${TIMEOUT:-10m}
MIN_SLAVES=${MIN_SLAVES:-1}
dir=${1:?usage: ci-deploy.sh <release-dir> [endpoint]}
endpoint=${2:-main}
release=$(basename "$dir").zip
deploy=${release%.zip}

say() { echo "ci-deploy: $*" >&2; }

# Does the master route $endpoint to $deploy?
connected() {
  "$C2" status --json-output |
    grep -q "\"connections\":{[^}]*\"$endpoint\":\"$deploy\""
}

"$C2" publish "$dir" --name "$release" >/dev/null

if ! "$C2" start "$release" "$deploy" --await-slaves --min-slaves "$MIN_SLAVES" --timeout "$TIMEOUT"; then
  say "$deploy did not start on every live slave; removing it"
  "$C2" stop "$deploy" || say "could not remove $deploy: run c2 stop $deploy"
  exit 1
fi

if ! "$C2" connect "$endpoint" "$deploy" --await-slaves --min-slaves "$MIN_SLAVES" --timeout "$TIMEOUT"; then
  # connect refuses before writing when a slave lacks the deploy: then
  # nothing moved. Otherwise the master already routes to it: roll back.
  if connected; then
    say "the fleet did not follow the switch to $deploy; rolling $endpoint back"
    if ! "$C2" rollback "$endpoint" --await-slaves --min-slaves "$MIN_SLAVES" --timeout "$TIMEOUT"; then
      say "rollback of $endpoint did not complete on every slave: check c2 status --show-slaves"
    fi
  fi
  exit 1
fi
say "$endpoint serves $deploy"
