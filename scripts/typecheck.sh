#!/usr/bin/env bash
# mypy over the installed package layout: ramble2post = pipeline/, ramble2post.experiments = experiments/.
# mypy maps files to modules by folder names, so it is run on a tree of symlinks that has
# the installed names (the setuptools package-dir mapping is invisible to it); paths in its
# report are written back as the checkout's paths. Config: [tool.mypy] in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/ramble2post"
for entry in pipeline/*; do ln -s "$root/$entry" "$tree/ramble2post/$(basename "$entry")"; done
ln -s "$root/experiments" "$tree/ramble2post/experiments"
MYPY=${MYPY:-.venv/bin/mypy}
set +e
(cd "$tree" && "$root/$MYPY" --config-file "$root/pyproject.toml" --cache-dir "$root/.mypy_cache" -p ramble2post "$@") \
  | sed -e "s#^ramble2post/experiments/#experiments/#" -e "s#^ramble2post/#pipeline/#"
rc=${PIPESTATUS[0]}
exit "$rc"
