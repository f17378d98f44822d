#!/bin/sh
# Quick start: build c2, then deploy the bundled example for real and show
# that it worked. Needs only the Rust toolchain and a POSIX shell.
#
#   sh examples/quickstart.sh
#
# Everything it creates lives under target/quickstart/.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)

echo "== Building c2"
cargo build --quiet --bin c2
c2="$root/target/debug/c2"

work="$root/target/quickstart"
rm -rf "$work"
mkdir -p "$work/etc"

# Infrastructure context: what this "machine" tells every release.
cat > "$work/site.json" <<JSON
{"title": "Hello from c2", "wwwDir": "$work/www",
 "links": [{"name": "Status", "url": "/status"}, {"name": "Docs", "url": "/docs"}]}
JSON

# The config an operator would keep in /opt/etc/camus2.yaml.
cat > "$work/etc/camus2.yaml" <<YAML
deploysDir: $work/deploys
contextCache: $work/config
logFile: $work/log/camus2.log
releases:
  localdir: $root/examples/hello/releases
configSources:
  site:
    file: $work/site.json
deployMode: noproxy
YAML
export CAMUS2_CONFIG="$work/etc/camus2.yaml"

echo "== Releases in the store"
"$c2" list-releases

echo "== c2 start hello-1.0.zip"
"$c2" start hello-1.0.zip
echo "== The live page"
cat "$work/www/index.html"

echo "== c2 start hello-2.0.zip (replaces hello-1.0)"
"$c2" start hello-2.0.zip
echo "== c2 status"
"$c2" status
echo "== The live page now"
cat "$work/www/index.html"
grep -q "Release 2.0 (green)" "$work/www/index.html"

echo "== c2 stop hello-2.0"
"$c2" stop hello-2.0
test ! -e "$work/www/index.html"
echo
echo "Quick start OK: hello-1.0 deployed, replaced by hello-2.0, then stopped."
echo "Look around: $work (deploys/, config/, log/camus2.log)"
