#!/usr/bin/env bash
# The crate boundaries of docs/architecture.md, checked from Cargo's own
# dependency graph (normal edges only: tests may use anything).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail=0
# deps PACKAGE [CARGO_TREE_FLAGS...]: the package names in its normal graph.
deps() {
  local pkg=$1
  shift
  cargo tree --offline -q -p "$pkg" -e normal --prefix none "$@" | awk '{print $1}' | sort -u
}
# forbid WHAT LIST FORBIDDEN...: fail when LIST names any of FORBIDDEN.
forbid() {
  local what=$1 list=$2
  shift 2
  for name in "$@"; do
    if grep -qx "$name" <<<"$list"; then
      echo "layering: $what depends on $name (see docs/architecture.md)" >&2
      fail=1
    fi
  done
}

# The operator alone carries nothing of the simulator.
forbid "redblack --no-default-features" "$(deps redblack --no-default-features)" \
  redblack-sandbox redblack-demo cel-interpreter uuid
# The judge is pure: no Kubernetes, no async runtime, no HTTP.
forbid "redblack-judge" "$(deps redblack-judge)" \
  kube kube-client k8s-openapi tokio hyper reqwest redblack
# The duration grammar is a leaf every crate may use.
forbid "redblack-duration" "$(deps redblack-duration)" \
  redblack redblack-judge redblack-sandbox redblack-demo kube tokio
# The sandbox and the demo app never depend on the operator.
forbid "redblack-sandbox" "$(deps redblack-sandbox)" redblack redblack-judge
forbid "redblack-demo" "$(deps redblack-demo)" redblack redblack-judge redblack-sandbox

exit "$fail"
