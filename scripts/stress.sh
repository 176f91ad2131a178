#!/usr/bin/env bash
# stress.sh: the long reliability runs (make stress). Run from the repository
# root after `make c-tests`.
#
#   1. every C test with a collection at every allocation (GCPIN_STRESS=1); the
#      heavy workloads shrink by 100 there (check_size in c-tests/check.h);
#   2. the same with concurrent marking (GCPIN_CONCURRENT=1 GCPIN_STRESS=1):
#      every allocation asks for a concurrent cycle, which starts as soon as
#      the one running has ended;
#   3. the random-operation model test with 10^6 operations per test (1 and 4
#      threads), once normally, once under GCPIN_STRESS=50, and once under
#      GCPIN_CONCURRENT=1;
#
# Prints each pass's results and ends with one line "N passed, N failed";
# exits non-zero on any failure. GCPIN_MODEL_SEED fixes the model's seed
# (each run prints the one it used, to replay a failure).
set -uo pipefail
cd "$(dirname "$0")/.."

tests=(build/c-tests/test_*)
model_ops=${GCPIN_MODEL_OPS:-1000000}
rc=0
total_p=0
total_f=0
counts=$(mktemp)
trap 'rm -f "$counts"' EXIT

pass() { # pass <label> <env...> -- <binaries...>
    local label=$1
    shift
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    env "${envs[@]}" bash scripts/run-c-tests.sh --label "$label" --counts "$counts" "$@" || rc=1
    read -r p f <"$counts"
    total_p=$((total_p + p))
    total_f=$((total_f + f))
}

start=$(date +%s)
pass "stress: GCPIN_STRESS=1" GCPIN_STRESS=1 CHECK_TIMEOUT=900 -- "${tests[@]}"
pass "stress: GCPIN_CONCURRENT=1 GCPIN_STRESS=1" GCPIN_CONCURRENT=1 GCPIN_STRESS=1 CHECK_TIMEOUT=900 -- "${tests[@]}"
pass "stress: model test, $model_ops ops" GCPIN_MODEL_OPS="$model_ops" CHECK_TIMEOUT=900 \
    -- build/c-tests/test_model
pass "stress: model test, $((model_ops / 5)) ops under GCPIN_STRESS=50" \
    GCPIN_MODEL_OPS="$((model_ops / 5))" GCPIN_STRESS=50 CHECK_TIMEOUT=900 -- build/c-tests/test_model
pass "stress: model test, $model_ops ops under GCPIN_CONCURRENT=1" GCPIN_MODEL_OPS="$model_ops" GCPIN_CONCURRENT=1 \
    CHECK_TIMEOUT=900 -- build/c-tests/test_model
echo "== stress: $(( $(date +%s) - start )) s"
echo "$total_p passed, $total_f failed"
exit $rc
