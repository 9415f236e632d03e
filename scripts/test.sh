#!/usr/bin/env bash
# The full test suite against real PostgreSQL and a Kafka-protocol broker (started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/pytest "$@"
