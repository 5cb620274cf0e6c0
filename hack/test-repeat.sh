#!/usr/bin/env bash
# `make test` N times in a row on a fresh clone of HEAD, beside B processes
# that keep the CPU busy: the evidence behind "the suite never flakes"
# (docs/reliability.md). Stops at the first red run and says which.
#
#   hack/test-repeat.sh [RUNS=5] [BURNERS=<cores>]
#
# CLONE_DIR: where to clone (default: a new temp dir, removed afterwards).
# CARGO_TARGET_DIR: set it to reuse a warm build; otherwise run 1 builds
# from scratch (the clone is fresh either way: no untracked file comes along).
set -euo pipefail
runs=${1:-5}
burners=${2:-$(nproc)}
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer, got '$runs'" >&2; exit 2; }
[[ "$burners" =~ ^[0-9]+$ ]] || { echo "BURNERS must be a number, got '$burners'" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
own_clone=0
if [[ -z "${CLONE_DIR:-}" ]]; then
  CLONE_DIR=$(mktemp -d /tmp/redblack-repeat.XXXXXX)
  own_clone=1
fi
burner_pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${burner_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if ((own_clone)); then rm -rf "$CLONE_DIR"; fi
}
trap stop EXIT
trap 'stop; exit 130' INT TERM

git clone --quiet --no-hardlinks "$repo" "$CLONE_DIR/redblack"
cd "$CLONE_DIR/redblack"
echo "clone of $(git rev-parse --short HEAD) in $PWD; $burners CPU burner(s); $runs run(s)"
for ((i = 0; i < burners; i++)); do
  ( while :; do :; done ) &
  burner_pids+=("$!")
done

for ((run = 1; run <= runs; run++)); do
  log="$CLONE_DIR/run-$run.log"
  start=$(date +%s)
  if CI=true make test >"$log" 2>&1; then verdict=passed; else verdict=FAILED; fi
  took=$(($(date +%s) - start))
  summary=$(grep -E '^\s+Summary \[' "$log" | tail -1 | sed 's/^ *//' || true)
  echo "run $run/$runs: $verdict in ${took}s — ${summary:-no nextest summary}"
  if [[ $verdict == FAILED ]]; then
    grep -E '^\s+(FAIL|TIMEOUT) \[' "$log" | sort -u || true
    cp "$log" "$repo/target/test-repeat-failed-run-$run.log" 2>/dev/null || true
    echo "the log: $repo/target/test-repeat-failed-run-$run.log" >&2
    exit 1
  fi
done
echo "$runs of $runs runs passed in a row beside $burners CPU burner(s)"
