#!/usr/bin/env bash
# Build weft (release) and run the fork-join demo: a parallel computation
# whose per-worker statistics show work stealing at work.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
weft_ensure_deps demo

cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=Release \
    -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_STRESS=OFF -DWEFT_BUILD_BENCH=OFF \
    -DWEFT_BUILD_EXAMPLES=ON >/dev/null
cmake --build build-demo -j"$(weft_jobs)" --target weft-demo >/dev/null
exec ./build-demo/examples/weft-demo "$@"
