#!/bin/sh
# Rendered by c2: publishes this release's page into the web root.
set -e
case "$1" in
  start) mkdir -p '{{{site.wwwDir}}}' && cp index.html '{{{site.wwwDir}}}/index.html' ;;
  stop) rm -f '{{{site.wwwDir}}}/index.html' ;;
esac
