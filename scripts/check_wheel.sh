#!/usr/bin/env bash
# Build the wheel, install it (not editable) into a fresh venv, and use it from outside the checkout.
# Dependencies come from the set-up venv (.venv): a .pth file puts its site-packages on the fresh
# venv's path. Only site-packages folders run .pth files, so .venv's editable-install hook does not
# run there: the ramble2post found is the wheel's, and nothing called `pipeline` is importable.
#   ./scripts/check_wheel.sh          # needs ./scripts/setup.sh first
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { printf '\n==> %s\n' "$*"; }

step "build the wheel"
.venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$work/dist" . \
  2>&1 | { grep -v "^WARNING: Location '" || true; }
wheel=$(ls "$work"/dist/ramble2post-*.whl)
echo "$(basename "$wheel"): $(du -k "$wheel" | cut -f1) KiB"
python_files=$(.venv/bin/python -m zipfile -l "$wheel" | awk '{print $1}')
for need in ramble2post/prompts/structure_system.txt ramble2post/blog/templates/post.md.j2 \
            ramble2post/blog/skeleton/package.json ramble2post/blog/skeleton/package-lock.json \
            ramble2post/blog/skeleton/astro.config.mjs ramble2post/blog/skeleton/src/content.config.ts \
            'ramble2post/blog/skeleton/src/pages/posts/[...slug].astro' ramble2post/blog/skeleton/src/styles/global.css \
            ramble2post/blog/skeleton/src/layouts/Base.astro ramble2post/samples/explain-format-ramble-1min.m4a \
            ramble2post/experiments/base.py ramble2post/py.typed ramble2post/structure/role_weights.json \
            ramble2post/structure/domain_terms.json; do
  grep -qxF "$need" <<<"$python_files" || { echo "Error: the wheel lacks $need" >&2; exit 1; }
done
if grep -qE '/(node_modules|dist|\.astro)/' <<<"$python_files"; then
  echo "Error: the wheel carries npm or Astro build output" >&2; exit 1
fi
if grep -qE '^(pipeline|experiments)/' <<<"$python_files"; then
  echo "Error: the wheel installs a top-level 'pipeline' or 'experiments'" >&2; exit 1
fi

step "install it into a fresh venv"
.venv/bin/python -m venv "$work/venv"
site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site/setup-venv-deps.pth"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$wheel" \
  2>&1 | { grep -v "^WARNING: Location '" || true; }

cd "$work"  # away from the checkout: nothing may come from it
export RAMBLE2POST_HOME="$work/home"
step "ramble2post --help"
"$work/venv/bin/ramble2post" --help | head -3
step "ramble2post experiments list"
"$work/venv/bin/ramble2post" experiments list
step "ramble2post structure (bundled 1-minute transcript)"
"$work/venv/bin/ramble2post" structure "$root/tests/data/transcript-1min.json" -o "$work/post.json"
"$work/venv/bin/python" - "$work/post.json" <<'PY'
import json, sys
import ramble2post
post = json.load(open(sys.argv[1]))
assert post["title"]["text"] and post["layers"]["focus"], "empty post"
assert "site-packages" in ramble2post.__file__, ramble2post.__file__
print("post:", post["title"]["text"], "| from", ramble2post.__file__)
PY
step "no top-level 'pipeline' module"
if "$work/venv/bin/python" -c "import pipeline" 2>/dev/null; then
  echo "Error: 'import pipeline' works in the wheel's venv" >&2; exit 1
fi
echo "import pipeline: ModuleNotFoundError (as it should)"
echo
echo "wheel check passed"
