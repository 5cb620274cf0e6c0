#!/usr/bin/env bash
# `make demo`: the redblack story on this machine, against the sandbox.
#
# The sandbox is a SIMULATOR of a Kubernetes API server (DESIGN.md §4), for
# trying redblack and for tests; it is never a production cluster.
#
# Each step is a function so the story can grow one step at a time:
# sandbox → Prometheus → operator → demo app v1 → load → v2 red/black with
# canary analysis → promote or roll back.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

KUBECONFIG_FILE="${KUBECONFIG_FILE:-$PWD/sandbox.kubeconfig}"
TOOLS_BIN="$PWD/.cache/tools/bin"
BIN="$PWD/target/release/redblack"
PIDS=()

cleanup() {
  # Stop only what this script started, newest first.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[i]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step_build() {
  say "Building redblack (release)"
  cargo build --release --quiet
}

step_sandbox() {
  say "Starting the sandbox (a SIMULATOR, not a real cluster)"
  rm -f "$KUBECONFIG_FILE"
  "$BIN" sandbox --kubeconfig "$KUBECONFIG_FILE" &
  PIDS+=($!)
  local deadline=$((SECONDS + 30))
  until [[ -s "$KUBECONFIG_FILE" ]] && KUBECONFIG="$KUBECONFIG_FILE" kubectl get ns >/dev/null 2>&1; do
    if ! kill -0 "${PIDS[-1]}" 2>/dev/null; then
      echo "demo: the sandbox exited; see its messages above" >&2
      exit 1
    fi
    ((SECONDS < deadline)) || { echo "demo: sandbox not answering after 30s" >&2; exit 1; }
    sleep 0.5
  done
}

# TODO(demo): step_prometheus  — start the Debian prometheus scraping the demo pods.
# TODO(demo): step_operator    — run `redblack controller` against the sandbox.
# TODO(demo): step_app_v1      — kubectl apply a Rollout of the demo app (v1).
# TODO(demo): step_load        — `redblack demo-load` through the Service proxy.
# TODO(demo): step_red_black   — apply v2 (good, then bad), watch the canary report.

step_usage() {
  say "The sandbox is up"
  cat <<EOT
Use it from another terminal:

  export PATH="$TOOLS_BIN:\$PATH"      # kubectl 1.34 and helm v4 (hack/deps.sh)
  export KUBECONFIG=$KUBECONFIG_FILE
  kubectl get ns
  kubectl api-resources

Remember: this is a SIMULATOR for trying redblack and for tests, never a
production cluster. Press Ctrl-C here to stop it.
EOT
}

main() {
  export PATH="$TOOLS_BIN:$PATH"
  step_build
  step_sandbox
  step_usage
  # Keep running until Ctrl-C or until the sandbox exits on its own.
  wait "${PIDS[0]}"
}

main "$@"
