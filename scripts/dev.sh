#!/usr/bin/env bash
# The whole system on embedded defaults: PostgreSQL, Tansu broker, API, relay. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/syncctl dev "$@"
