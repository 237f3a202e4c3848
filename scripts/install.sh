#!/usr/bin/env bash
# Installs latentsem and what its tests need on a fresh Debian machine.
# torch 2.13.0 (CPU) goes first, so that no install step can pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet torch==2.13.0
python -m pip install --quiet -e ".[test,bench]"
if [ "${1:-}" = "--with-system" ]; then
  # R + lavaan for the live cross-checks, graphviz's dot for diagrams (REFERENCE.md section 5).
  need=""
  Rscript -e 'library(lavaan)' >/dev/null 2>&1 || need="$need r-base-core r-cran-lavaan"
  command -v dot >/dev/null 2>&1 || need="$need graphviz"
  if [ -n "$need" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
  fi
fi
