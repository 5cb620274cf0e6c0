#!/usr/bin/env bash
# Screenshots of the dashboard's three pages at 1280x800 into docs/images/
# (docs/dashboard.md, README), with headless Chromium.
#
#   hack/screenshots.sh                 runs the demo (hack/demo.sh, the sandbox
#                                       SIMULATOR) to the end of its story,
#                                       shoots, and stops it
#   hack/screenshots.sh URL             shoots a running dashboard (e.g. the URL
#                                       `make demo` printed)
#
# Pages: the fleet (/), the first Rollout, and its newest Failed canary report
# (else its newest report).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
OUT="$ROOT/docs/images"
CHROMIUM="${CHROMIUM:-chromium}"
mkdir -p "$OUT"

DEMO_PID=""
DEMO_LOG=""
cleanup() {
  if [[ -n "$DEMO_PID" ]]; then
    kill -TERM "$DEMO_PID" 2>/dev/null || true # the demo traps it and stops what it started
    wait "$DEMO_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

URL="${1:-}"
if [[ -z "$URL" ]]; then
  DEMO_LOG="$(mktemp)"
  echo "running the demo (log: $DEMO_LOG) ..."
  hack/demo.sh >"$DEMO_LOG" 2>&1 &
  DEMO_PID=$!
  deadline=$((SECONDS + 900))
  until grep -q "Press Ctrl-C to stop" "$DEMO_LOG"; do
    kill -0 "$DEMO_PID" 2>/dev/null || { tail -20 "$DEMO_LOG"; echo "the demo failed" >&2; exit 1; }
    ((SECONDS < deadline)) || { echo "the demo did not finish within 15 minutes" >&2; exit 1; }
    sleep 2
  done
  URL="$(grep -o 'Dashboard: *http://[^ ]*' "$DEMO_LOG" | head -1 | awk '{print $2}')"
fi
URL="${URL%/}"

shoot() { # NAME URL
  local profile
  profile="$(mktemp -d)"
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
    --window-size=1280,800 --screenshot="$OUT/$1" "$2" >/dev/null 2>&1
  rm -rf "$profile"
  echo "  $OUT/$1  ← $2"
}

fleet="$(curl -sf "$URL/")"
rollout="$(grep -o 'href="/rollouts/[^"]*"' <<<"$fleet" | head -1 | cut -d'"' -f2)"
[[ -n "$rollout" ]] || { echo "no Rollout on $URL" >&2; exit 1; }
page="$(curl -sf "$URL$rollout")"
# The Analyses list is newest first: the newest Failed one, else the newest.
report="$(grep -o '<li><a href="/analyses/[^"]*">[^<]*</a> Failed' <<<"$page" | head -1 | cut -d'"' -f2 || true)"
[[ -n "$report" ]] || report="$(grep -o 'href="/analyses/[^"]*"' <<<"$page" | head -1 | cut -d'"' -f2)"

shoot dashboard-fleet.png "$URL/"
shoot dashboard-rollout.png "$URL$rollout"
[[ -n "$report" ]] && shoot dashboard-report.png "$URL$report"
