#!/usr/bin/env bash
# One-shot GPU check: every transcription and experiment figure of issue 13 on a CUDA machine,
# written into one results folder. Aimed at < 8 min on one H100/H200 (setup with a warm pip
# cache included); each step is timed and a failing step does not stop the others.
#
#   ./scripts/gpu_check.sh                       # CUDA: setup, 13-min sample, base, full experiments
#   ./scripts/gpu_check.sh --dry-run             # CPU: same steps, tiny.en, 1-min sample, --quick (1-4 min, 2 cores)
#   ./scripts/gpu_check.sh --out DIR --skip-setup
#
# No GPU was lent to the session that wrote this script: the CUDA path is untested; --dry-run
# is tested by tests/test_gpu_check.py. STEP_TIMEOUT (s, default 300) bounds each step (setup:
# 900 s). The budget risk is setup: on a machine with nvcc, llama-cpp-python compiles with CUDA
# when pip has no cached wheel (minutes); on a lease, run setup ahead or pass --skip-setup.
#
# Steps (results under $OUT, default gpu-check/<UTC time>):
#   0 setup          ./scripts/setup.sh --no-run + requirements-bench.txt   (skipped by --skip-setup)
#   1 machine        nvidia-smi, torch/CUDA versions                       -> machine.txt
#   2 transcribe     ramble2post transcribe --engine batched and sequential -> transcribe-*.json, wer.tsv
#   3 bench          scripts/bench_transcribe.py (ours + faster-whisper)   -> bench/, bench.txt
#   4 batching       ramble2post experiments run batching-speedup          -> batching-speedup/
#   5 quantization   ramble2post experiments run quantization-loss         -> quantization-loss/
#   6 cpu-draft      ramble2post SAMPLE --device cpu (whole pipeline, CPU)  -> cpu-draft.log (JSON last)
#   summary.tsv: step, exit status, seconds; SUMMARY.md: the figures gathered in one place.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
SETUP=1
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --skip-setup) SETUP=0 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,/^set /{/^#/p;}' "$0"; exit 0 ;;
    *) echo "Error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
OUT=${OUT:-gpu-check/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if [ "$DRY" = 1 ]; then
  DEVICE=cpu; MODEL=tiny.en; QUICK=--quick
  # smallest settings that still run every code path (two schemes, two batch sizes, no LLM part)
  BATCH_PARAMS=(--param 'parts=["whisper","roofline"]' --param 'batches=[1,2]' --param 'roofline_batches=[1,8]')
  QUANT_PARAMS=(--param 'schemes=["int8"]' --param 'wer_schemes=["int8"]' --param 'max_windows=1')
  AUDIO=samples/explain-format-ramble-1min.m4a; REF=samples/explain-format-ramble-1min.txt; SAMPLE=1min
  BENCH_ENGINES=ours-int8,fw-batch-int8  # one of each project: the CI budget is minutes
else
  DEVICE=cuda; MODEL=base; QUICK=
  BATCH_PARAMS=(); QUANT_PARAMS=()
  AUDIO=../shared/audio/explain-format-ramble.m4a; REF=../shared/audio/explain-format-ramble.txt; SAMPLE=13min
  BENCH_ENGINES=ours-seq,ours-int8,fw-int8,fw-batch-int8
  [ -f "$AUDIO" ] || { AUDIO=samples/explain-format-ramble-1min.m4a; REF=samples/explain-format-ramble-1min.txt; SAMPLE=1min; }
fi
# every stage cache and draft repo of this check lives in the results folder: nothing is reused
export RAMBLE2POST_HOME="$OUT/home"
PY=.venv/bin/python
R2P=.venv/bin/ramble2post
printf 'step\tstatus\tseconds\n' >"$OUT/summary.tsv"

STEP_TIMEOUT=${STEP_TIMEOUT:-300}  # s; a step that hangs (e.g. a compile) is stopped and the others still run
step() {  # step NAME COMMAND...: run, log to $OUT/NAME.log, record status and seconds
  local name=$1; shift
  local t0=$SECONDS
  printf '\n==> %s: %s\n' "$name" "$*"
  if [ "$(type -t "$1")" = function ]; then "$@"; else timeout "$STEP_TIMEOUT" "$@"; fi >"$OUT/$name.log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >>"$OUT/summary.tsv"
  [ "$rc" = 0 ] && echo "    ok ($((SECONDS - t0)) s)" || { echo "    FAILED ($rc), see $OUT/$name.log"; tail -5 "$OUT/$name.log"; }
  return 0
}

if [ "$SETUP" = 1 ]; then
  STEP_TIMEOUT=900 step setup bash -c "./scripts/setup.sh --no-run && $PY -m pip install -q -r requirements-bench.txt"
fi
[ -x "$PY" ] || { echo "Error: no .venv (run without --skip-setup)" >&2; exit 1; }

machine() {
  date -u +%FT%TZ
  nvidia-smi || echo "no nvidia-smi"
  $PY -c 'import torch, platform; print("python", platform.python_version(), "torch", torch.__version__,
"cuda", torch.version.cuda, "available", torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")'
  nproc; free -g
  if [ "$DEVICE" = cuda ]; then $PY -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; fi
}
step machine machine
if [ "$DEVICE" = cuda ] && ! grep -q "available True" "$OUT/machine.log"; then
  echo "Error: torch sees no CUDA GPU (see $OUT/machine.log); use --dry-run on a CPU machine" >&2
  exit 1
fi
cp "$OUT/machine.log" "$OUT/machine.txt"

transcribe() {  # both engines, then WER of each against the reference
  for engine in batched sequential; do
    $R2P transcribe "$AUDIO" --engine "$engine" --device "$DEVICE" --model "$MODEL" --no-cache \
      -o "$OUT/transcribe-$engine.json" || return 1
  done
  $PY - "$OUT" "$REF" <<'EOF'
import json, sys
from pathlib import Path
from ramble2post.transcribe.wer import word_error_rate
out, ref = Path(sys.argv[1]), Path(sys.argv[2]).read_text()
rows = ["engine\tdevice\tmodel\twer\ttranscribe_s\trtf\tsegments"]
for engine in ("batched", "sequential"):
    t = json.loads((out / f"transcribe-{engine}.json").read_text())
    wer = word_error_rate(reference=ref, hypothesis=t["text"])
    rows.append(f"{engine}\t{t['device']}\t{t['model']['name']}\t{wer:.4f}\t{t['timing']['transcribe_s']}"
                f"\t{t['timing']['real_time_factor']}\t{len(t['segments'])}")
(out / "wer.tsv").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
EOF
}
step transcribe transcribe

step bench $PY scripts/bench_transcribe.py --device "$DEVICE" --samples "$SAMPLE" --models "$MODEL" \
  --engines "$BENCH_ENGINES" --repeat 1 --out "$OUT/bench"

step batching $R2P experiments run batching-speedup --device "$DEVICE" --model "$MODEL" $QUICK \
  "${BATCH_PARAMS[@]}" -o "$OUT/batching-speedup"
step quantization $R2P experiments run quantization-loss --device "$DEVICE" --model "$MODEL" $QUICK \
  "${QUANT_PARAMS[@]}" -o "$OUT/quantization-loss"

# the CPU draft: the whole pipeline still works on CPU on this machine (tiny.en, 1-min sample)
step cpu-draft $R2P samples/explain-format-ramble-1min.m4a --device cpu --model tiny.en --experiments none --json

{
  echo "# GPU check $(date -u +%FT%TZ) ($([ "$DRY" = 1 ] && echo 'dry run: CPU, tiny.en, 1-min sample, --quick' || echo "CUDA, $MODEL, $SAMPLE sample"))"
  echo; echo '## Steps (exit status, seconds)'; echo; echo '```'; cat "$OUT/summary.tsv"; echo '```'
  echo; echo '## Machine'; echo; echo '```'; tail -n 12 "$OUT/machine.txt"; echo '```'
  for f in wer.tsv; do [ -f "$OUT/$f" ] && { echo; echo "## $f"; echo; echo '```'; cat "$OUT/$f"; echo '```'; }; done
  echo; echo '## bench (ours vs faster-whisper)'; echo; echo '```'
  sed -n '/^sample\/model/,/^wrote/p' "$OUT/bench.log"; echo '```'
  for name in batching quantization; do
    echo; echo "## $name"; echo; echo '```'; grep -v '^  ' "$OUT/$name.log" | tail -n 40; echo '```'
  done
} >"$OUT/SUMMARY.md"
echo
echo "Results: $OUT (SUMMARY.md, summary.tsv)"
failed=$(awk -F'\t' 'NR > 1 && $2 != 0 {print $1}' "$OUT/summary.tsv" | tr '\n' ' ')
[ -z "$failed" ] || { echo "Failed steps: $failed" >&2; exit 1; }
