#!/usr/bin/env bash
# Run the whole test suite (slow tests with real models included).
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh -m "not slow"   # quick subset while developing
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "Error: run ./scripts/setup.sh first" >&2; exit 1; }
# torch/OpenMP threads sleep instead of spinning between parallel regions: on 2 cores the spinning
# threads of one library slow the other's (the CLI sets the same before torch loads)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec .venv/bin/python -m pytest "$@"
