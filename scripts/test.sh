#!/usr/bin/env bash
# The full test run (what CI runs):
#   1. a debug build with -Wall -Wextra -Werror: unit tests, the header check
#      (every public header alone, as C and as C++), stress in short mode;
#   2. the same with WEFT_SMALL_QUEUES (ring of 4: overflow and wrap paths);
#   3. a release build (NDEBUG, -O3) of the same;
#   4. ASan + UBSan;
#   5. TSan.
# Each variant builds in build-test/<variant>. Stops at the first failure.
# Select variants with arguments, e.g. `scripts/test.sh debug tsan`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
weft_ensure_deps test

jobs=$(weft_jobs)
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(debug small release asan tsan)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

run_variant() {
    local name=$1
    shift
    local dir=build-test/$name
    echo "=== $name: configure + build"
    cmake -S . -B "$dir" -DWEFT_WERROR=ON -DWEFT_BUILD_TESTS=ON \
        -DWEFT_BUILD_STRESS=ON -DWEFT_BUILD_EXAMPLES=ON -DWEFT_BUILD_BENCH=ON \
        "$@" >/dev/null
    cmake --build "$dir" -j"$jobs" >/dev/null
    if (cd "$dir" && ctest -N | grep -q "Total Tests: 0"); then
        echo "=== $name: no test was set up (is cmocka installed?)" >&2
        exit 1
    fi
    echo "=== $name: tests"
    (cd "$dir" && ctest --output-on-failure -j"$jobs")
}

start=$(date +%s)
for v in "${variants[@]}"; do
    case $v in
    debug) run_variant debug -DCMAKE_BUILD_TYPE=Debug ;;
    small) run_variant small -DCMAKE_BUILD_TYPE=Debug -DWEFT_SMALL_QUEUES=ON ;;
    release) run_variant release -DCMAKE_BUILD_TYPE=Release ;;
    asan) run_variant asan -DCMAKE_BUILD_TYPE=Debug -DWEFT_SANITIZE=address ;;
    tsan) run_variant tsan -DCMAKE_BUILD_TYPE=Debug -DWEFT_SANITIZE=thread ;;
    *) echo "unknown variant: $v (debug small release asan tsan)" >&2; exit 2 ;;
    esac
done
echo "=== all variants passed (${variants[*]}) in $(( $(date +%s) - start )) s"
