#!/usr/bin/env bash
# The unit tier in a venv that holds nothing but pytest: proves that the domain, the handler
# rules on the in-memory store and the pure folds need no service library, and keeps it so.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv-unit/bin/python ] || "$PYTHON" -m venv .venv-unit
.venv-unit/bin/python -m pip install --quiet --disable-pip-version-check pytest pytest-timeout
PYTHONPATH=. exec .venv-unit/bin/pytest -q -p no:cacheprovider tests/unit "$@"
