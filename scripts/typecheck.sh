#!/usr/bin/env bash
# mypy over the installed package: ramble2post = pipeline/ramble2post/, ramble2post.experiments =
# experiments/ramble2post/experiments/. The two source roots hold one package, so mypy is run on a
# tree of symlinks that joins them as installed; paths in its report are written back as the
# checkout's paths. Config: [tool.mypy] in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/ramble2post"
for entry in pipeline/ramble2post/*; do ln -s "$root/$entry" "$tree/ramble2post/$(basename "$entry")"; done
ln -s "$root/experiments/ramble2post/experiments" "$tree/ramble2post/experiments"
MYPY=${MYPY:-.venv/bin/mypy}
set +e
(cd "$tree" && "$root/$MYPY" --config-file "$root/pyproject.toml" --cache-dir "$root/.mypy_cache" -p ramble2post "$@") \
  | sed -e "s#^ramble2post/experiments/#experiments/ramble2post/experiments/#" -e "s#^ramble2post/#pipeline/ramble2post/#"
rc=${PIPESTATUS[0]}
exit "$rc"
