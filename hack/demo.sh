#!/usr/bin/env bash
# `make demo`: the red/black story on this machine, against the sandbox.
#
# The sandbox is a SIMULATOR of a Kubernetes API server (DESIGN.md §4), for
# trying redblack and for tests; it is never a production cluster. The rest is
# real: the operator, the demo app's processes, the load, Prometheus.
#
# Acts, one function each, so the story can grow one act at a time:
#   setup: build → sandbox → Prometheus → operator → app v1 → load
#   act_red_black_v2   v2 beside v1, one switch, v1 kept warm
#   act_undo_redo      instant switch back to the warm v1, and forward again
#   (act_canary_v3     a bad v3 judged by canary analysis and reverted — when
#                      the CanaryAnalysis controller lands)
#   act_metrics        requests by version, from Prometheus's HTTP API
#
# Environment:
#   DEMO_NONINTERACTIVE=1  exit after the story (status 0 only if every step
#                          succeeded) instead of running until Ctrl-C
#   REDBLACK_BIN=PATH      use this redblack binary instead of building one
#   DEMO_WORKDIR=DIR       logs, Prometheus data, pids (default .cache/demo)
#   KUBECONFIG_FILE=PATH   where the sandbox writes its kubeconfig
#                          (default ./sandbox.kubeconfig)
#   DEMO_RPS=N             load on the Service (default 20 requests/s)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

NONINTERACTIVE="${DEMO_NONINTERACTIVE:-0}"
KUBECONFIG_FILE="${KUBECONFIG_FILE:-$ROOT/sandbox.kubeconfig}"
WORKDIR="${DEMO_WORKDIR:-$ROOT/.cache/demo}"
RPS="${DEMO_RPS:-20}"
TOOLS_BIN="$ROOT/.cache/tools/bin"
PIDFILE="$WORKDIR/pids"
PROMETHEUS="${REDBLACK_PROMETHEUS:-prometheus}" # as src/testing/prometheus.rs
APP=web

# shellcheck source=hack/demo-lib.sh
source "$ROOT/hack/demo-lib.sh"

BIN=""
INT_STATUS=130
KUBECONFIG_OWNED=0
LOAD_INDEX=-1
PROM_URL=""
PROM_PID=""
PROM_CONFIG=""
OPERATOR_PORT=""
SERVICE_URL=""
V1_HASH=""
V2_HASH=""

# ---------------------------------------------------------------- setup

setup_workdir() {
  mkdir -p "$WORKDIR"
  # A demo still running from this work directory owns it (and the kubeconfig).
  local name pid
  if [[ -f "$PIDFILE" ]]; then
    while read -r name pid; do
      if [[ "$name" != demo-app ]] && alive "$pid" && grep -qaE 'redblack|prometheus' "/proc/$pid/cmdline" 2>/dev/null; then
        die "another demo is still running from $WORKDIR ($name, pid $pid): stop it (Ctrl-C) first, or set DEMO_WORKDIR and KUBECONFIG_FILE"
      fi
    done <"$PIDFILE"
  fi
  # Only our own files: a previous run's logs, data and pid list.
  rm -rf "$WORKDIR/prometheus-data"
  rm -f "$WORKDIR"/*.log "$WORKDIR/pods.json" "$PIDFILE"
  : >"$PIDFILE"
  PROM_CONFIG="$WORKDIR/prometheus.yml"
  rm -f "$KUBECONFIG_FILE"
  KUBECONFIG_OWNED=1
  export KUBECONFIG="$KUBECONFIG_FILE"
  export PATH="$TOOLS_BIN:$PATH"
  local tool
  for tool in kubectl curl python3 "$PROMETHEUS" setsid; do
    command -v "$tool" >/dev/null || die "$tool not found: run hack/deps.sh (make deps) first"
  done
}

step_build() {
  if [[ -n "${REDBLACK_BIN:-}" ]]; then
    [[ -x "$REDBLACK_BIN" ]] || die "REDBLACK_BIN=$REDBLACK_BIN is not an executable"
    BIN="$REDBLACK_BIN"
    return
  fi
  # Debug, not release: on a fresh 2-core machine an optimised build of the
  # whole dependency tree takes several times longer, and the demo (20 req/s,
  # six small pods) needs no optimisation. Later runs rebuild incrementally.
  say "Building redblack (debug build: much faster to compile than release; the demo needs no speed)"
  cargo build --bin redblack
  BIN="$ROOT/target/debug/redblack"
}

# `redblack ARGS`, so that `show` prints the command as a person types it.
redblack() { "$BIN" "$@"; }

step_sandbox() {
  say "Starting the sandbox (a SIMULATOR of a Kubernetes API server, not a real cluster)"
  start_bg sandbox "$WORKDIR/sandbox.log" \
    "$BIN" sandbox --kubeconfig "$KUBECONFIG_FILE" --pod-ready-after 1s \
    --prometheus-sd-file "$WORKDIR/pods.json"
  wait_until 60 "the sandbox answering kubectl (log: $WORKDIR/sandbox.log)" \
    kubectl get namespaces
  ok "sandbox API at $(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}') — kubeconfig $KUBECONFIG_FILE"
  info "pods of image redblack/demo-app:<tag> run as real local processes of \`redblack demo-app\`"
}

# The same job as redblack::sandbox::prometheus_sd::scrape_config, plus the
# operator's own /metrics.
write_prometheus_config() {
  cat >"$PROM_CONFIG" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: "demo-pods"
  file_sd_configs:
  - files: ["$WORKDIR/pods.json"]
    refresh_interval: 1s
- job_name: "redblack-operator"
  static_configs:
  - targets: ["127.0.0.1:$OPERATOR_PORT"]
EOF
}

step_prometheus() {
  say "Starting Prometheus (the real server), scraping every demo pod each second"
  local port attempt
  read -r OPERATOR_PORT port < <(free_ports 2)
  write_prometheus_config
  for attempt in 1 2 3; do
    ((attempt == 1)) || port="$(free_ports 1 "$OPERATOR_PORT")"
    start_bg prometheus "$WORKDIR/prometheus.log" \
      "$PROMETHEUS" --config.file="$PROM_CONFIG" --storage.tsdb.path="$WORKDIR/prometheus-data" \
      --storage.tsdb.retention.time=1d --web.listen-address="127.0.0.1:$port" \
      --log.level=warn
    PROM_PID="${PIDS[-1]}"
    PROM_URL="http://127.0.0.1:$port"
    local deadline=$((SECONDS + 60))
    while ! http_ok "$PROM_URL/-/ready" && alive "${PIDS[-1]}" && ((SECONDS < deadline)); do
      sleep 0.5
    done
    http_ok "$PROM_URL/-/ready" && break
    # Another process may have taken the port between our probe and its bind.
    if ! alive "${PIDS[-1]}" && grep -q "address already in use" "$WORKDIR/prometheus.log" && ((attempt < 3)); then
      forget_last_bg
      continue
    fi
    log_tail "$WORKDIR/prometheus.log"
    die "Prometheus did not become ready at $PROM_URL within 60s (log: $WORKDIR/prometheus.log)"
  done
  ok "Prometheus at $PROM_URL (targets from $WORKDIR/pods.json, kept by the sandbox)"
}

step_operator() {
  say "Starting the redblack operator (\`redblack controller\`)"
  printf '   %s$ redblack crd | kubectl apply -f -%s\n' "$DIM" "$RESET"
  "$BIN" crd | kubectl apply -f - | sed 's/^/     /' || die "installing the CRDs failed"
  wait_until 30 "the CRDs becoming Established" \
    kubectl wait --for condition=Established --timeout 5s crd --all
  local attempt deadline
  for attempt in 1 2 3; do
    start_bg operator "$WORKDIR/operator.log" \
      "$BIN" controller --kubeconfig "$KUBECONFIG_FILE" \
      --metrics-addr "127.0.0.1:$OPERATOR_PORT" --health-addr "127.0.0.1:$OPERATOR_PORT"
    deadline=$((SECONDS + 5))
    while alive "${PIDS[-1]}" && ! http_ok "http://127.0.0.1:$OPERATOR_PORT/healthz" && ((SECONDS < deadline)); do
      sleep 0.2
    done
    alive "${PIDS[-1]}" && break
    # Its port was taken after we picked it: another port, and tell Prometheus.
    if grep -q "Address already in use" "$WORKDIR/operator.log" && ((attempt < 3)); then
      forget_last_bg
      OPERATOR_PORT="$(free_ports 1 "${PROM_URL##*:}")"
      write_prometheus_config
      kill -HUP "$PROM_PID" # Prometheus reloads its configuration
      continue
    fi
    break # wait_until below reports the exit, with the log
  done
  # /readyz: every cache has done its first list.
  wait_until 60 "the operator becoming ready (/readyz on 127.0.0.1:$OPERATOR_PORT; log: $WORKDIR/operator.log)" \
    http_ok "http://127.0.0.1:$OPERATOR_PORT/readyz"
  ok "operator ready; its log: $WORKDIR/operator.log, its metrics: http://127.0.0.1:$OPERATOR_PORT/metrics"
}

# The manifests are the shared examples (deploy/examples/): the Services web
# and web-preview, the Rollout web at v1, and the same Rollout at v2.
EXAMPLES="$ROOT/deploy/examples"

apply_examples() {
  local files=() f
  for f in "$@"; do
    [[ -f "$EXAMPLES/$f" ]] || die "deploy/examples/$f is missing"
    files+=(-f "deploy/examples/$f")
  done
  show kubectl apply "${files[@]}"
}

# True when the Rollout is Healthy on its current template, as observed.
rollout_healthy() {
  local phase stable current observed generation
  read -r phase stable current observed generation < <(rollout_state "$APP") || return 1
  [[ "$phase" == Healthy && "$stable" == "$current" && "$observed" == "$generation" ]]
}

current_changed() {
  local hash
  hash="$(current_hash)" && [[ "$hash" != "$V1_HASH" ]]
}

current_hash() {
  local _phase _stable current _rest
  read -r _phase _stable current _rest < <(rollout_state "$APP") || return 1
  [[ "$current" != - ]] && echo "$current"
}

step_app_v1() {
  say "Deploying v1: the Services web and web-preview, and a Rollout of redblack/demo-app:v1 (3 replicas)"
  apply_examples services.yaml rollout.yaml
  wait_until 30 "the Service $APP getting a proxy port from the sandbox" \
    test -n "$(proxy_port "$APP" 2>/dev/null)"
  SERVICE_URL="http://127.0.0.1:$(proxy_port "$APP")/"
  wait_until 120 "Rollout $APP becoming Healthy on v1 (see: redblack status $APP; $WORKDIR/operator.log)" \
    rollout_healthy
  V1_HASH="$(current_hash)"
  ok "Rollout $APP is Healthy on v1 (revision hash $V1_HASH)"
  show kubectl get rollouts,rs,pods
  show redblack status "$APP"
}

step_load() {
  say "Sending steady load through the Service: $RPS requests/s to $SERVICE_URL"
  local duration=1h
  [[ "$NONINTERACTIVE" == 1 ]] && duration=15m
  start_bg load "$WORKDIR/load.log" \
    "$BIN" demo-load --target "$SERVICE_URL" --rps "$RPS" --duration "$duration"
  LOAD_INDEX=$((${#PIDS[@]} - 1))
  info "\`redblack demo-load\` runs for at most $duration; its per-second report: $WORKDIR/load.log"
  wait_until 30 "Prometheus seeing v1 traffic (query: http_requests_total)" v1_traffic_seen
  ok "Prometheus sees the requests: $(traffic_summary)"
}

# ---------------------------------------------------------------- watching

# Requests per second by version over the last second of scrapes (irate of
# the last two 1 s samples per pod), as "v1=20 v2=0".
traffic_summary() {
  local out
  out="$(prom_query 'sum by (version) (irate(http_requests_total{job="demo-pods"}[5s]))' version 2>/dev/null)" || { echo "(Prometheus not answering)"; return 0; }
  [[ -n "$out" ]] || { echo "(no samples yet)"; return 0; }
  awk '{ printf "%s%s=%.0f", (NR > 1 ? " " : ""), $1, $2 } END { print "" }' <<<"$out"
}

version_rate() {
  prom_query "sum(irate(http_requests_total{job=\"demo-pods\",version=\"$1\"}[5s]))" version 2>/dev/null | awk '{ printf "%.0f\n", $2 }'
}

v1_traffic_seen() {
  local rate
  rate="$(version_rate v1)"
  ((${rate:-0} > 0))
}

# Only VERSION answers (of v1 and v2), as Prometheus saw it.
only_traffic_to() {
  local want="$1" other=v1 rate_want rate_other
  [[ "$want" == v1 ]] && other=v2
  rate_want="$(version_rate "$want")" rate_other="$(version_rate "$other")"
  [[ -n "$rate_want" ]] && ((rate_want > 0)) && ((${rate_other:-0} == 0))
}

# One compact line: phase, what the Service selects, the fleets, the traffic.
T0=0
progress_line() {
  local phase _stable _current _o _g svc preview fleet_text="" hash rev image desired ready _sd tag
  local selects="-" previews="-"
  read -r phase _stable _current _o _g < <(rollout_state "$APP") || phase="?"
  svc="$(service_hash "$APP" 2>/dev/null)" || svc="?"
  preview="$(service_hash "$APP-preview" 2>/dev/null)" || preview="?"
  while read -r hash rev image desired ready _sd; do
    [[ -n "$hash" ]] || continue
    tag="$(tag_of "$image")"
    [[ "$hash" == "$svc" ]] && selects="$tag (rev $rev)"
    [[ "$hash" == "$preview" ]] && previews="$tag"
    fleet_text+="${fleet_text:+, }$tag $ready/$desired ready"
  done < <(fleets "$APP" 2>/dev/null)
  printf '   [%3ds] %-11s web → %-10s preview → %-3s fleets: %-28s traffic/s: %s\n' \
    $((SECONDS - T0)) "$phase" "$selects" "$previews" "$fleet_text" "$(traffic_summary)"
}

# watch_until SECONDS WHAT CMD...: a progress line every second until CMD
# succeeds; dies with WHAT if it does not within SECONDS.
watch_until() {
  local limit="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + limit)) next
  T0=$SECONDS
  while true; do
    next=$(($(date +%s%N) / 1000000 + 1000))
    progress_line
    "$@" >/dev/null 2>&1 && return 0
    check_alive
    ((SECONDS < deadline)) || die "$what did not happen within ${limit}s"
    local now=$(($(date +%s%N) / 1000000))
    ((next > now)) && sleep "$(printf '0.%03d' $((next - now)))"
  done
}

scale_down_delay() {
  kubectl get rollouts.redblack.io "$APP" -o go-template='{{or .spec.strategy.redBlack.scaleDownDelay "30m (default)"}}'
}

service_on() { [[ "$(service_hash "$APP")" == "$1" ]]; }
service_on_v2_and_healthy() { service_on "$V2_HASH" && rollout_healthy; }

# Prints the Service selection and how long the switch took: undo / redo.
switch_and_time() {
  local target="$1" label="$2" start end
  start=$(date +%s%N)
  show redblack undo "$APP"
  wait_until 30 "the Service $APP switching to $label" service_on "$target"
  end=$(date +%s%N)
  ok "Service $APP selects $label again, $(((end - start) / 1000000)) ms after the undo command (no pod started: the fleet was warm)"
}

load_totals() {
  local line
  line="$(grep '^t=' "$WORKDIR/load.log" | tail -n 1)" || true
  echo "${line:-no report yet}"
}

# ---------------------------------------------------------------- acts

act_red_black_v2() {
  say "Red/black: deploying v2 beside v1, then switching the Service in one write"
  apply_examples rollout-v2.yaml
  wait_until 30 "the operator noticing the v2 template" current_changed
  V2_HASH="$(current_hash)"
  [[ "$V2_HASH" != "$V1_HASH" ]] || die "the Rollout's current revision did not change after applying v2"
  info "v2 is revision hash $V2_HASH. Every second: the Rollout's phase, the revisions the Services"
  info "web and web-preview select, ready pods per fleet, and requests/s answered per version as"
  info "Prometheus scraped them (1 s scrapes: it lags the switch by a second or two)."
  watch_until 120 "the Service $APP selecting v2 with the Rollout Healthy" service_on_v2_and_healthy
  ok "Service $APP now selects v2 ($V2_HASH); Rollout Healthy"
  info "Prometheus follows within a scrape or two:"
  watch_until 30 "Prometheus seeing only v2 answering" only_traffic_to v2
  ok "traffic moved to v2: $(traffic_summary)"

  say "The old fleet stays warm: rollback is one selector write"
  local hash rev image desired ready sd
  while read -r hash rev image desired ready sd; do
    [[ "$hash" == "$V1_HASH" ]] || continue
    ((ready == desired && desired > 0)) || die "the v1 fleet is not warm after the switch ($ready/$desired ready)"
    ok "v1 fleet $APP-$hash: $ready/$desired pods ready, receiving no traffic, kept until $sd (scaleDownDelay $(scale_down_delay))"
  done < <(fleets "$APP")
  show kubectl get rs -L rollouts.redblack.io/pod-template-hash
  show redblack status "$APP"
}

act_undo_redo() {
  say "Undo: back to the warm v1 in one switch (\`redblack undo $APP\`)"
  switch_and_time "$V1_HASH" v1
  watch_until 30 "Prometheus seeing only v1 answering again" only_traffic_to v1
  ok "traffic back on v1: $(traffic_summary)"
  say "Redo: forward to the still-warm v2 (\`redblack undo $APP\` again: the previous revision)"
  switch_and_time "$V2_HASH" v2
  watch_until 30 "Prometheus seeing only v2 answering again" only_traffic_to v2
  ok "traffic back on v2: $(traffic_summary)"
  wait_until 30 "Rollout $APP Healthy on v2 after the redo" rollout_healthy
  ok "Rollout $APP Healthy on v2; load so far: $(load_totals)"
}

# TODO(canary): act_canary_v3 — apply a bad v3 (DEMO_ERROR_RATE=0.2) with a
# canary; show the CanaryAnalysis report (`redblack report`) failing it, and
# the Service staying on v2.

act_metrics() {
  say "Metrics: requests by version and status code over the last minute (Prometheus HTTP API)"
  local query='sum by (version, code) (increase(http_requests_total{job="demo-pods"}[1m]))'
  printf '   %s$ curl -s %s/api/v1/query --data-urlencode '\''query=%s'\''%s\n' "$DIM" "$PROM_URL" "$query" "$RESET"
  local out
  out="$(curl -fsS --max-time 5 "$PROM_URL/api/v1/query" --data-urlencode "query=$query")" ||
    die "the Prometheus query failed at $PROM_URL"
  local rows
  rows="$(python3 -c '
import json, sys
doc = json.loads(sys.stdin.read())
for s in sorted(doc["data"]["result"], key=lambda s: (s["metric"].get("version", ""), s["metric"].get("code", ""))):
    m = s["metric"]
    print("version=%s code=%s requests=%.0f" % (m.get("version", "-"), m.get("code", "-"), float(s["value"][1])))
' <<<"$out")" || die "Prometheus answered something that is not a query result: $out"
  local row
  while read -r row; do info "  $row"; done <<<"$rows"
  grep -Eq '^version=v2 code=200 requests=[1-9]' <<<"$rows" ||
    die "Prometheus returned no v2 requests for the last minute"
  ok "Prometheus returned data for v2"
  local totals
  totals="$(load_totals)"
  info "load generator: $totals"
  if [[ "$totals" == *"errors={} transport_errors=0"* ]]; then
    ok "not one request failed, across three switches (v1→v2, undo, redo)"
  else
    info "some requests failed: see $WORKDIR/load.log"
  fi
}

usage_banner() {
  say "Look around"
  local KEEPS_RUNNING="Everything keeps running until Ctrl-C."
  [[ "$NONINTERACTIVE" == 1 ]] && KEEPS_RUNNING="(DEMO_NONINTERACTIVE=1: this run stops now; \`make demo\` keeps it running.)"
  cat <<EOT
   $KEEPS_RUNNING From another terminal:

     export KUBECONFIG=$KUBECONFIG_FILE
     kubectl get rollouts,rs,pods,svc
     $BIN status $APP --watch
     $BIN undo $APP
     curl -si $SERVICE_URL

   Kubeconfig:  $KUBECONFIG_FILE
   Service:     $SERVICE_URL   (the sandbox's local proxy for Service $APP)
   Prometheus:  $PROM_URL
                requests/s by version: $PROM_URL/graph?g0.expr=sum%20by%20(version)%20(rate(http_requests_total%5B30s%5D))&g0.tab=0
   Logs:        $WORKDIR/{sandbox,operator,prometheus,load}.log
   kubectl:     $(command -v kubectl)

   The sandbox is a SIMULATOR for trying redblack, never a production cluster.
EOT
}

# ---------------------------------------------------------------- main

cleanup() {
  local status=$?
  # Run to the end whatever fails here (e.g. writing to a terminal that closed).
  set +e
  trap - EXIT
  trap '' INT TERM HUP # a second Ctrl-C must not cut the cleanup short (it is bounded)
  if ((${#PIDS[@]})); then
    printf '\n== Stopping everything this demo started\n'
    record_pod_pids
    if stop_all; then
      echo "   all stopped (pids were in $PIDFILE)"
    else
      status=1
    fi
  fi
  ((KUBECONFIG_OWNED)) && rm -f "$KUBECONFIG_FILE"
  exit "$status"
}

main() {
  trap cleanup EXIT
  trap 'exit "$INT_STATUS"' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP # the terminal closed: the background processes have none to lose
  setup_workdir
  step_build
  step_sandbox
  step_prometheus
  step_operator
  step_app_v1
  step_load
  act_red_black_v2
  act_undo_redo
  act_metrics
  usage_banner
  if [[ "$NONINTERACTIVE" == 1 ]]; then
    printf '\ndemo: the story ran to the end (DEMO_NONINTERACTIVE=1: stopping now)\n'
    return 0
  fi
  echo
  echo "   Press Ctrl-C to stop."
  INT_STATUS=0 # after a complete story, Ctrl-C is the normal way out
  local load_done=0
  NOT_NEEDED=" load "
  while true; do
    check_alive
    if ((!load_done)) && ! alive "${PIDS[$LOAD_INDEX]}"; then
      load_done=1
      info "(the load generator finished its run: $(load_totals))"
    fi
    sleep 1
  done
}

main "$@"
