#!/bin/sh
# Rebuilds releases/<name>.zip from each src/<name>/ deterministically
# (entries sorted, fixed timestamps, modes 644 or 755), so the same sources
# always give the same zips. tests/examples.rs checks that the committed
# zips hold exactly their sources: run this after editing src/.
#
#   sh examples/hello/build.sh
set -eu
cd "$(dirname "$0")"
python3 - <<'PY'
import os
import zipfile

for name in sorted(os.listdir("src")):
    src = os.path.join("src", name)
    out = os.path.join("releases", name + ".zip")
    with zipfile.ZipFile(out + ".tmp", "w") as z:
        for root, dirs, files in os.walk(src):
            dirs.sort()
            for f in sorted(files):
                path = os.path.join(root, f)
                info = zipfile.ZipInfo(os.path.relpath(path, src), (1980, 1, 1, 0, 0, 0))
                mode = 0o755 if os.access(path, os.X_OK) else 0o644
                info.external_attr = (0o100000 | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as data:
                    z.writestr(info, data.read())
    os.replace(out + ".tmp", out)
    print(out)
PY
