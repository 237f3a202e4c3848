#!/usr/bin/env bash
# Installs everything the test suite needs, then runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --with-system
python -m pytest -q "$@"
