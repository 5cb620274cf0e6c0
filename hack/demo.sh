#!/usr/bin/env bash
# `make demo`: the canary-gated red/black story on this machine, against the
# sandbox.
#
# The sandbox is a SIMULATOR of a Kubernetes API server (docs/sandbox.md), for
# trying redblack and for tests; it is never a production cluster. The rest is
# real: the operator, the demo app's processes, the load, Prometheus, and the
# canary analysis that reads Prometheus.
#
# Acts, one function each, so the story can grow one act at a time:
#   setup: build → sandbox → Prometheus → operator (helm install of the
#          chart with prometheus.url; or, DEMO_INSTALL=process, `redblack
#          controller --prometheus-url`) → analysis template + app v1 →
#          notifications (a local Slack-compatible chat, hack/demo-receiver.py,
#          and a Notifier subscribing every Rollout; each act then prints
#          what the chat received) → load
#   act_canary_v2      v2 judged on a canary pod against a baseline pod of v1
#                      under live traffic, Passed, promoted: full v2 fleet
#                      beside v1, one switch, v1 kept warm; the report
#   act_undo_redo      instant switch back to the warm v1, and forward again
#                      (rollbacks: no canary)
#   act_canary_v3      a bad v3 (10% errors) judged Failed and reverted:
#                      traffic back on v2 alone; the report
#   act_metrics        requests by version and code from Prometheus's HTTP API;
#                      which requests failed, and whose they were
#
# Environment:
#   DEMO_NONINTERACTIVE=1  exit after the story (status 0 only if every step
#                          succeeded) instead of running until Ctrl-C
#   REDBLACK_BIN=PATH      use this redblack binary instead of building one
#   DEMO_WORKDIR=DIR       logs, Prometheus data, pids (default .cache/demo)
#   KUBECONFIG_FILE=PATH   where the sandbox writes its kubeconfig
#                          (default ./sandbox.kubeconfig)
#   DEMO_RPS=N             load on the Service (default 50 requests/s)
#   DEMO_INSTALL=helm      (default) install the operator as users do, with
#                          its Helm chart (charts/redblack: a Deployment whose
#                          pods the sandbox runs as `redblack controller`
#                          processes under the chart's ServiceAccount);
#                          =process starts `redblack controller` directly
#                          with the admin kubeconfig (~4 s faster: no pod
#                          readiness probes to wait for)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

NONINTERACTIVE="${DEMO_NONINTERACTIVE:-0}"
KUBECONFIG_FILE="${KUBECONFIG_FILE:-$ROOT/sandbox.kubeconfig}"
WORKDIR="${DEMO_WORKDIR:-$ROOT/.cache/demo}"
# 50/s: during a canary 1 pod of 5 (the canary) answers ~10/s, and as many
# the baseline: enough for a 10% error rate to be significant within an
# interval or two (as tests/canary_e2e.rs, which uses the same numbers).
RPS="${DEMO_RPS:-50}"
INSTALL="${DEMO_INSTALL:-helm}"
# The release and namespace of DEMO_INSTALL=helm (README, "Install").
RELEASE=redblack
OPERATOR_NS=redblack-system
TOOLS_BIN="$ROOT/.cache/tools/bin"
PIDFILE="$WORKDIR/pids"
PROMETHEUS="${REDBLACK_PROMETHEUS:-prometheus}" # as crates/sandbox/src/testing/prometheus.rs
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
DASHBOARD_URL=""
OPERATOR_PORT=""
# What Prometheus scrapes for the operator's /metrics ("127.0.0.1:PORT", ...).
OPERATOR_TARGETS=""
SERVICE_URL=""
V1_HASH=""
V2_HASH=""
V3_HASH=""
V2_ANALYSIS=""
V3_ANALYSIS=""
ANALYSIS=""
ANALYSIS_PROGRESS=""
ANALYSIS_SCORE=""
LOAD_BEFORE_V3=""
LOAD_STARTED_AT=0

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
  case "$INSTALL" in
    process | helm) ;;
    *) die "DEMO_INSTALL=$INSTALL: use helm (the default) or process" ;;
  esac
  local tool tools=(kubectl curl python3 "$PROMETHEUS" setsid)
  [[ "$INSTALL" == helm ]] && tools+=(helm)
  for tool in "${tools[@]}"; do
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

# The same job as redblack_sandbox::prometheus_sd::scrape_config, plus the
# operator's own /metrics.
#
# Scrapes every 500 ms: the canary analysis (deploy/examples/analysis-template.yaml)
# asks for one point per second (`step: 1s`), each point a rate() or
# increase() over `[1s]`, and such a window needs at least two samples of a
# counter. 500 ms gives two per window; 1 s scrapes would give one (no point at
# all), and would force `step: 2s`: half the points per interval, a weaker
# judge. (tests/canary_e2e.rs scrapes every 250 ms for four samples; 500 ms
# leaves more room for a debug-build pod answering /metrics on a busy machine.)
write_prometheus_config() {
  cat >"$PROM_CONFIG" <<EOF
global:
  scrape_interval: 500ms
  scrape_timeout: 500ms
  evaluation_interval: 1s
scrape_configs:
- job_name: "demo-pods"
  file_sd_configs:
  - files: ["$WORKDIR/pods.json"]
    refresh_interval: 1s
- job_name: "redblack-operator"
  static_configs:
  - targets: [${OPERATOR_TARGETS:-"127.0.0.1:$OPERATOR_PORT"}]
EOF
}

step_prometheus() {
  say "Starting Prometheus (the real server), scraping every demo pod twice a second"
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
  say "Starting the redblack operator (\`redblack controller --prometheus-url $PROM_URL\`)"
  printf '   %s$ redblack crd | kubectl apply -f -%s\n' "$DIM" "$RESET"
  "$BIN" crd | kubectl apply -f - | sed 's/^/     /' || die "installing the CRDs failed"
  wait_until 30 "the CRDs becoming Established" \
    kubectl wait --for condition=Established --timeout 5s crd --all
  local attempt deadline
  for attempt in 1 2 3; do
    start_bg operator "$WORKDIR/operator.log" \
      "$BIN" controller --kubeconfig "$KUBECONFIG_FILE" \
      --metrics-addr "127.0.0.1:$OPERATOR_PORT" --health-addr "127.0.0.1:$OPERATOR_PORT" \
      --prometheus-url "$PROM_URL"
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
  info "it judges canaries with the Prometheus at $PROM_URL (CanaryAnalyses that name none)"
}

# DEMO_INSTALL=helm: the operator as users install it (README, "Install"):
# the real chart with the real helm; the sandbox runs the Deployment's pods
# (image redblack/redblack:<tag>) as processes of this build, each with the
# pod's args and env and a kubeconfig of the chart's ServiceAccount.
step_operator_helm() {
  say "Installing the redblack operator with its Helm chart (the sandbox runs its pods as \`redblack controller\` processes)"
  show helm install "$RELEASE" charts/redblack --namespace "$OPERATOR_NS" --create-namespace \
    --set prometheus.url="$PROM_URL" --set logging.format=pretty
  show kubectl -n "$OPERATOR_NS" rollout status "deployment/$RELEASE" --timeout=120s
  wait_until 60 "an operator pod holding the leader Lease (kubectl -n $OPERATOR_NS get lease,pods)" operator_leader
  local leader
  leader="$(operator_leader)"
  record_pod_pids
  # Prometheus scrapes every operator pod's /metrics, at the loopback port the
  # sandbox gave its container port 8080.
  OPERATOR_TARGETS="$(kubectl -n "$OPERATOR_NS" get pods -l "app.kubernetes.io/instance=$RELEASE" \
    -o go-template='{{range .items}}{{index .metadata.annotations "sandbox.redblack.io/ports"}}{{"\n"}}{{end}}' |
    sed -nE 's/.*(^|,)8080=([0-9]+).*/"127.0.0.1:\2"/p' | paste -sd, -)"
  if [[ -n "$OPERATOR_TARGETS" ]]; then
    write_prometheus_config
    kill -HUP "$PROM_PID" # Prometheus reloads its configuration
  fi
  ok "operator installed: 2 pods under ServiceAccount $RELEASE, $leader leads (the other stands by)"
  info "its log: kubectl -n $OPERATOR_NS logs $leader; the release: helm -n $OPERATOR_NS status $RELEASE"
  info "it judges canaries with the Prometheus at $PROM_URL (the chart's prometheus.url)"
}

# The operator pod whose process holds the leader Lease (its identity is the
# pod name and a random suffix).
operator_leader() {
  local holder pod
  holder="$(kubectl -n "$OPERATOR_NS" get lease redblack-controller -o jsonpath='{.spec.holderIdentity}')" || return 1
  for pod in $(kubectl -n "$OPERATOR_NS" get pods -l "app.kubernetes.io/instance=$RELEASE" -o name); do
    pod="${pod#pod/}"
    if [[ "$holder" == "$pod"-* ]]; then
      echo "$pod"
      return 0
    fi
  done
  return 1
}

# The manifests are the shared examples (deploy/examples/): the Services web
# and web-preview, the CanaryAnalysisTemplate web-latency-errors, the Rollout
# web at v1, the same Rollout at v2 and at a bad v3 (both with a canary judged
# by that template).
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

# current_changed_from HASH: the operator took up a template other than HASH.
current_changed_from() {
  local hash
  hash="$(current_hash)" && [[ "$hash" != "$1" ]]
}

current_hash() {
  local _phase _stable current _rest
  read -r _phase _stable current _rest < <(rollout_state "$APP") || return 1
  [[ "$current" != - ]] && echo "$current"
}

step_app_v1() {
  say "Deploying v1: the Services web and web-preview, the canary analysis template, and a Rollout of redblack/demo-app:v1 (3 replicas)"
  info "The first deploy runs no canary (nothing to compare it with); later versions name the"
  info "CanaryAnalysisTemplate web-latency-errors: error rate and p99 latency, canary vs baseline."
  apply_examples services.yaml analysis-template.yaml rollout.yaml
  wait_until 30 "the Service $APP getting a proxy port from the sandbox" \
    test -n "$(proxy_port "$APP" 2>/dev/null)"
  SERVICE_URL="http://127.0.0.1:$(proxy_port "$APP")/"
  wait_until 120 "Rollout $APP becoming Healthy on v1 (see: redblack status $APP; $WORKDIR/operator.log)" \
    rollout_healthy
  V1_HASH="$(current_hash)"
  record_pod_pids
  ok "Rollout $APP is Healthy on v1 (revision hash $V1_HASH)"
  show kubectl get rollouts,rs,pods
  show redblack status "$APP"
}

# The chat the Rollout's notifications go to: a local Slack-compatible
# receiver (hack/demo-receiver.py) and a Notifier whose default subscription
# covers every Rollout of the namespace (docs/notifications.md).
step_notifications() {
  say "Notifications: a Slack-compatible chat (a local receiver) hears of every step"
  : >"$WORKDIR/chat.txt"
  rm -f "$WORKDIR/chat.port"
  start_bg chat "$WORKDIR/chat.log" python3 "$ROOT/hack/demo-receiver.py" "$WORKDIR/chat.port" "$WORKDIR/chat.txt"
  wait_until 15 "the chat receiver listening" test -s "$WORKDIR/chat.port"
  local url
  url="http://127.0.0.1:$(cat "$WORKDIR/chat.port")/hooks/demo"
  kubectl create secret generic demo-chat --from-literal=url="$url" --dry-run=client -o yaml |
    kubectl apply -f - >/dev/null || die "creating the Secret demo-chat failed"
  show kubectl apply -f - <<'YAML'
apiVersion: redblack.io/v1alpha1
kind: Notifier
metadata: {name: demo-chat}
spec:
  slack: {urlSecretRef: {name: demo-chat, key: url}}
  subscribe: {rolloutSelector: {}}
YAML
  wait_until 30 "Notifier demo-chat Ready" notifier_ready demo-chat
  CHAT_SHOWN=0
  ok "Notifier demo-chat is Ready; the chat's messages: $WORKDIR/chat.txt"
}

notifier_ready() {
  [[ "$(kubectl get notifier "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

chat_has() { grep -qF -- "$1" "$WORKDIR/chat.txt"; }

# Prints the chat's messages that arrived since the last call, once it has
# one containing TEXT (delivery is asynchronous: it may lag the status).
show_chat() {
  wait_until 30 "the chat hearing: $1" chat_has "$1"
  local n
  n="$(wc -l <"$WORKDIR/chat.txt")"
  info "The chat received (hack/demo-receiver.py; the Notifier demo-chat):"
  tail -n "+$((CHAT_SHOWN + 1))" "$WORKDIR/chat.txt" | head -n "$((n - CHAT_SHOWN))" | sed 's/^/     💬 /'
  CHAT_SHOWN="$n"
}

step_load() {
  say "Sending steady load through the Service: $RPS requests/s to $SERVICE_URL"
  local duration=1h
  [[ "$NONINTERACTIVE" == 1 ]] && duration=15m
  start_bg load "$WORKDIR/load.log" \
    "$BIN" demo-load --target "$SERVICE_URL" --rps "$RPS" --duration "$duration"
  LOAD_STARTED_AT=$SECONDS
  LOAD_INDEX=$((${#PIDS[@]} - 1))
  info "\`redblack demo-load\` runs for at most $duration; its per-second report: $WORKDIR/load.log"
  wait_until 30 "Prometheus seeing v1 traffic (query: http_requests_total)" v1_traffic_seen
  ok "Prometheus sees the requests: $(traffic_summary)"
}

# ---------------------------------------------------------------- watching

# Requests per second by version over the last two seconds of scrapes (four
# samples per pod at 500 ms: steadier than the last two, a second behind), as
# "v1=50 v2=0". Prometheus discovers a new pod within about 5 s (its service
# discovery batches updates), so a new fleet's traffic shows up that late.
traffic_summary() {
  local out
  out="$(prom_query 'sum by (version) (rate(http_requests_total{job="demo-pods"}[2s]))' version 2>/dev/null)" || { echo "(Prometheus not answering)"; return 0; }
  [[ -n "$out" ]] || { echo "(no samples yet)"; return 0; }
  awk '{ printf "%s%s=%.0f", (NR > 1 ? " " : ""), $1, $2 } END { print "" }' <<<"$out"
}

# The same by version AND role (the pods' rollouts.redblack.io/role label, as
# Prometheus's labelmap names it): "v1=30 v1/baseline=10 v2/canary=10". The
# revision fleets' pods carry no role.
traffic_by_role() {
  local out
  out="$(prom_query 'sum by (version, rollouts_redblack_io_role) (rate(http_requests_total{job="demo-pods"}[2s]))' version,rollouts_redblack_io_role 2>/dev/null)" || { echo "(Prometheus not answering)"; return 0; }
  [[ -n "$out" ]] || { echo "(no samples yet)"; return 0; }
  awk '{ key = $1; sub(/\/-$/, "", key); printf "%s%s=%.0f", (NR > 1 ? " " : ""), key, $2 } END { print "" }' <<<"$out"
}

version_rate() {
  prom_query "sum(rate(http_requests_total{job=\"demo-pods\",version=\"$1\"}[2s]))" version 2>/dev/null | awk '{ printf "%.0f\n", $2 }'
}

# Requests/s answered by every version but $1.
other_versions_rate() {
  prom_query "sum(rate(http_requests_total{job=\"demo-pods\",version!=\"$1\"}[2s]))" version 2>/dev/null | awk '{ printf "%.0f\n", $2 }'
}

v1_traffic_seen() {
  local rate
  rate="$(version_rate v1)"
  ((${rate:-0} > 0))
}

# Only VERSION answers, as Prometheus saw it.
only_traffic_to() {
  local rate_want rate_other
  rate_want="$(version_rate "$1")" rate_other="$(other_versions_rate "$1")"
  [[ -n "$rate_want" ]] && ((rate_want > 0)) && ((${rate_other:-0} == 0))
}

# One compact line: phase, what the Service selects, the fleets, the traffic.
# Start of the current watch, in ms; elapsed() is the time since, to the
# nearest second (bash's SECONDS ticks on wall-clock seconds: two lines a
# second apart could show the same value).
T0_MS=0
now_ms() { echo $(($(date +%s%N) / 1000000)); }
elapsed() { echo $((($(now_ms) - T0_MS + 500) / 1000)); }
progress_line() {
  local phase _stable _current _o _g svc preview fleet_text="" hash rev image desired ready _sd _role tag
  local selects="-" previews="-"
  read -r phase _stable _current _o _g < <(rollout_state "$APP") || phase="?"
  svc="$(service_hash "$APP" 2>/dev/null)" || svc="?"
  preview="$(service_hash "$APP-preview" 2>/dev/null)" || preview="?"
  while read -r hash rev image desired ready _sd _role; do
    [[ -n "$hash" ]] || continue
    tag="$(tag_of "$image")"
    [[ "$hash" == "$svc" ]] && selects="$tag (rev $rev)"
    [[ "$hash" == "$preview" ]] && previews="$tag"
    fleet_text+="${fleet_text:+, }$tag $ready/$desired ready"
  done < <(fleets "$APP" 2>/dev/null)
  printf '   [%3ds] %-11s web → %-10s preview → %-3s fleets: %-28s traffic/s: %s\n' \
    "$(elapsed)" "$phase" "$selects" "$previews" "$fleet_text" "$(traffic_summary)"
}

# The canary's line: the Rollout's phase and its canary's, the canary's share
# of the traffic (status.canary.trafficPercent), what the Service selects
# ("all" = every fleet of the app: the canary's replica-count split), the
# fleets (canary and baseline named), requests/s by version and role from
# Prometheus, and the analysis: its phase, judged/total intervals and the
# interval scores so far. Remembers the analysis' name in CANARY_ANALYSIS.
CANARY_ANALYSIS=""
CANARY_PODS_RECORDED=0
canary_progress_line() {
  local phase="?" cphase="?" pct=0 name="-" _rev svc fleet_text="" analysis="-"
  local hash _r image desired ready _sd role label selects="-"
  read -r phase cphase pct name _rev < <(canary_state "$APP") || true
  [[ "$name" != - && -n "$name" ]] && CANARY_ANALYSIS="$name"
  if [[ "$cphase" == Analysing ]] && ((!CANARY_PODS_RECORDED)); then
    record_pod_pids # the canary's and the baseline's pods, gone by the end
    CANARY_PODS_RECORDED=1
  fi
  svc="$(service_hash "$APP" 2>/dev/null)" || svc="?"
  [[ "$svc" == - ]] && selects="all"
  while read -r hash _r image desired ready _sd role; do
    [[ -n "$hash" ]] || continue
    label="$(tag_of "$image")"
    [[ "$role" != - ]] && label+="-$role"
    [[ "$hash" == "$svc" ]] && selects="$label"
    fleet_text+="${fleet_text:+, }$label $ready/$desired"
  done < <(fleets "$APP" 2>/dev/null)
  if [[ -n "$CANARY_ANALYSIS" ]]; then
    local aphase progress _score scores
    if read -r aphase progress _score scores < <(analysis_state "$CANARY_ANALYSIS" 2>/dev/null); then
      analysis="$aphase $progress"
      [[ "$scores" != - ]] && analysis+=" scores $scores"
    fi
  fi
  printf '   [%3ds] %-11s canary %-11s %3s%%  web → %-4s  %-37s  req/s %-32s  analysis %s\n' \
    "$(elapsed)" "$phase" "${cphase:--}" "${pct:-0}" "$selects" "$fleet_text" "$(traffic_by_role)" "$analysis"
}

# watch_until SECONDS WHAT CMD...: a progress line ($PROGRESS, progress_line
# unless set) every second until CMD succeeds; dies with WHAT if it does not
# within SECONDS.
PROGRESS=progress_line
watch_until() {
  local limit="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + limit)) next
  T0_MS=$(now_ms)
  while true; do
    next=$(($(now_ms) + 1000))
    "$PROGRESS"
    "$@" >/dev/null 2>&1 && return 0
    check_alive
    ((SECONDS < deadline)) || die "$what did not happen within ${limit}s"
    local now
    now=$(now_ms)
    ((next > now)) && sleep "$(printf '0.%03d' $((next - now)))"
  done
}

# watch_canary SECONDS WHAT CMD...: watch_until with the canary's line, and
# one more line once CMD succeeded (the state it waited for).
watch_canary() {
  CANARY_ANALYSIS=""
  CANARY_PODS_RECORDED=0
  PROGRESS=canary_progress_line
  watch_until "$@"
  canary_progress_line
  PROGRESS=progress_line
}

scale_down_delay() {
  kubectl get rollouts.redblack.io "$APP" -o go-template='{{or .spec.strategy.redBlack.scaleDownDelay "30m (default)"}}'
}

service_on() { [[ "$(service_hash "$APP")" == "$1" ]]; }
service_on_v2_and_healthy() { service_on "$V2_HASH" && rollout_healthy; }

# canary_of HASH PHASE_REGEX: the canary of revision HASH is in a phase
# matching PHASE_REGEX (status.canary may still describe the previous one).
canary_of() {
  local _phase cphase _pct _name revision
  read -r _phase cphase _pct _name revision < <(canary_state "$APP") || return 1
  [[ "$revision" == "$1" && "$cphase" =~ ^($2)$ ]]
}

# The canary of v2 ended without a Passed verdict (held or failed): the
# promotion will not happen, no use waiting for it.
v2_promoted_or_stopped() {
  service_on_v2_and_healthy || canary_of "$V2_HASH" 'Failed|Marginal|Inconclusive|Error'
}

# The bad canary was reverted: canary Failed, Rollout Degraded, traffic on v2
# alone again.
v3_reverted() {
  local phase _rest
  read -r phase _rest < <(canary_state "$APP") || return 1
  canary_of "$V3_HASH" Failed && [[ "$phase" == Degraded ]] && service_on "$V2_HASH"
}

# ... or its canary got a verdict other than Failed (then nothing reverts).
v3_reverted_or_stopped() {
  v3_reverted || canary_of "$V3_HASH" 'Passed|Promoted|Marginal|Inconclusive|Error'
}

# The analysis of the canary of revision HASH: from status.canary while it is
# there (remembered by the progress line), else by its labels.
analysis_of() {
  local hash="$1" name
  if [[ -n "$CANARY_ANALYSIS" ]]; then
    echo "$CANARY_ANALYSIS"
    return 0
  fi
  name="$(kubectl get canaryanalyses.redblack.io -l "rollouts.redblack.io/rollout=$APP,rollouts.redblack.io/pod-template-hash=$hash" \
    -o go-template='{{range .items}}{{.metadata.name}}{{"\n"}}{{end}}' | tail -n 1)" || return 1
  [[ -n "$name" ]] && echo "$name"
}

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

# Shows `redblack report NAME` (the CanaryAnalysis as a canary report), and
# keeps its text in REPORT.
REPORT=""
show_report() {
  printf '   %s$ redblack report %s%s\n' "$DIM" "$1" "$RESET"
  REPORT="$(redblack report "$1" 2>&1)" || { printf '%s\n' "$REPORT" | sed 's/^/     /'; die "redblack report $1 failed"; }
  printf '%s\n' "$REPORT" | sed 's/^/     /'
}

# ---------------------------------------------------------------- acts

# expect_verdict HASH PHASE CHECK WHAT OUTCOME: the canary of revision HASH
# (version WHAT) must have ended in OUTCOME (CHECK succeeds) with its
# CanaryAnalysis in PHASE; otherwise its report is shown and the demo stops.
# Sets ANALYSIS, ANALYSIS_PROGRESS (judged/total) and ANALYSIS_SCORE.
expect_verdict() {
  local hash="$1" want="$2" check="$3" what="$4" outcome="$5" aphase _scores
  ANALYSIS="$(analysis_of "$hash")" || die "no CanaryAnalysis found for the canary of $what"
  if ! "$check"; then
    show_report "$ANALYSIS"
    die "the canary of $what was not $outcome (see the report above, and: redblack status $APP)"
  fi
  read -r aphase ANALYSIS_PROGRESS ANALYSIS_SCORE _scores < <(analysis_state "$ANALYSIS") ||
    die "cannot read CanaryAnalysis $ANALYSIS"
  [[ "$aphase" == "$want" ]] || die "$what was $outcome but its analysis $ANALYSIS is $aphase, not $want"
}

act_canary_v2() {
  say "Canary: v2 is judged against v1 on live traffic before it gets a fleet"
  apply_examples rollout-v2.yaml
  wait_until 30 "the operator noticing the v2 template" current_changed_from "$V1_HASH"
  V2_HASH="$(current_hash)"
  info "v2 is revision hash $V2_HASH. Its canary is 1 pod of v2 beside a baseline: 1 fresh pod of v1, so"
  info "that both are compared as equals (same age, same share of the load). Once both are ready the"
  info "Service selects every fleet of the app: 1 canary pod of 5 answers 20% of the requests. The"
  info "CanaryAnalysis compares canary with baseline every 10 s (error rate, p99 latency) over 40 s."
  info "Every second: the Rollout's phase, its canary's phase and share of the traffic, what the"
  info "Service web selects (all = every fleet), the fleets (ready/desired), requests/s by version/role"
  info "as Prometheus scraped them (it finds a new pod within ~5 s), and the analysis: its phase,"
  info "judged/total intervals and each judged interval's score (0-100; 95 passes, 75 or less fails)."
  watch_canary 240 "v2 promoted: the Service $APP selecting v2 with the Rollout Healthy" v2_promoted_or_stopped
  expect_verdict "$V2_HASH" Passed service_on_v2_and_healthy "v2" "promoted"
  V2_ANALYSIS="$ANALYSIS"
  ok "canary of v2 Passed (analysis $V2_ANALYSIS, score $ANALYSIS_SCORE, $ANALYSIS_PROGRESS intervals): promoted"
  record_pod_pids
  ok "Service web now selects v2 ($V2_HASH); Rollout Healthy"
  show_report "$V2_ANALYSIS"
  show_chat "traffic switched to revision $V2_HASH"
  info "Prometheus follows within a scrape or two (the canary and baseline pods are gone):"
  watch_until 30 "Prometheus seeing only v2 answering" only_traffic_to v2
  ok "traffic moved to v2: $(traffic_summary)"

  say "The old fleet stays warm: rollback is one selector write"
  local hash rev image desired ready sd role
  while read -r hash rev image desired ready sd role; do
    [[ "$hash" == "$V1_HASH" ]] || continue
    ((ready == desired && desired > 0)) || die "the v1 fleet is not warm after the switch ($ready/$desired ready)"
    ok "v1 fleet $APP-$hash: $ready/$desired pods ready, receiving no traffic, kept until $sd (scaleDownDelay $(scale_down_delay))"
  done < <(fleets "$APP")
  show kubectl get rs -L rollouts.redblack.io/pod-template-hash
  show redblack status "$APP"
}

act_undo_redo() {
  say "Undo: back to the warm v1 in one switch (\`redblack undo $APP\`: a rollback, so no canary)"
  switch_and_time "$V1_HASH" v1
  watch_until 30 "Prometheus seeing only v1 answering again" only_traffic_to v1
  ok "traffic back on v1: $(traffic_summary)"
  say "Redo: forward to the still-warm v2 (\`redblack undo $APP\` again: the previous revision)"
  switch_and_time "$V2_HASH" v2
  watch_until 30 "Prometheus seeing only v2 answering again" only_traffic_to v2
  ok "traffic back on v2: $(traffic_summary)"
  wait_until 30 "Rollout $APP Healthy on v2 after the redo" rollout_healthy
  LOAD_BEFORE_V3="$(load_totals)"
  ok "Rollout $APP Healthy on v2; load so far: $LOAD_BEFORE_V3"
  show_chat "traffic switched back to revision $V2_HASH"
}

act_canary_v3() {
  say "A bad v3: it answers 10% of requests with 500 — the canary analysis catches it, the operator reverts"
  apply_examples rollout-v3-bad.yaml
  wait_until 30 "the operator noticing the v3 template" current_changed_from "$V2_HASH"
  V3_HASH="$(current_hash)"
  info "v3 is revision hash $V3_HASH: a canary pod of v3 beside a baseline pod of v2. The warm v1 fleet is"
  info "scaled down first (the widened Service would select it too). The error rate is a critical metric,"
  info "judged sequentially (mode: sequential): the analysis looks at every 1 s step and fails the canary"
  info "as soon as the evidence is strong enough, without waiting for the end of an interval."
  watch_canary 240 "v3 reverted: its canary Failed, the Rollout Degraded, the Service $APP on v2 alone" v3_reverted_or_stopped
  expect_verdict "$V3_HASH" Failed v3_reverted "v3" "failed and reverted"
  V3_ANALYSIS="$ANALYSIS"
  ok "canary of v3 Failed (analysis $V3_ANALYSIS, score $ANALYSIS_SCORE, $(failed_after "$V3_ANALYSIS")): reverted"
  ok "traffic back on v2 alone: Service web selects v2 ($V2_HASH); Rollout Degraded"
  if [[ -n "$(fleets "$APP" | awk -v h="$V3_HASH" '$1 == h')" ]]; then
    die "a full v3 fleet ($APP-$V3_HASH) exists: a failed canary must never get one"
  fi
  ok "the full v3 fleet was never created"
  show_report "$V3_ANALYSIS"
  grep -Eq '^ *error-rate .*High' <<<"$REPORT" || die "the report of $V3_ANALYSIS does not classify error-rate High"
  ok "the report names the cause: error-rate High"
  show kubectl get rollouts,rbca
  show redblack status "$APP"
  watch_until 30 "Prometheus seeing only v2 answering after the revert" only_traffic_to v2
  ok "traffic on v2 alone: $(traffic_summary)"
  show_chat "revision $V3_HASH failed its canary analysis"
}

act_metrics() {
  say "Metrics: every request the pods answered, by version and status code (Prometheus HTTP API)"
  # Each pod's counter only grows (a pod is one process), so its largest value
  # over the run is what it answered; the sum covers pods already gone.
  local range=$((SECONDS - LOAD_STARTED_AT + 15))
  local query="sum by (version, code) (max_over_time(http_requests_total{job=\"demo-pods\"}[${range}s]))"
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
    die "Prometheus returned no v2 requests"
  ok "Prometheus returned data for v2"

  # Whose were the failures? 5xx by version and role, from Prometheus.
  local failed
  failed="$(prom_query "sum by (version, rollouts_redblack_io_role) (max_over_time(http_requests_total{job=\"demo-pods\",code=~\"5..\"}[${range}s]))" \
    version,rollouts_redblack_io_role)" || die "the Prometheus query of the 5xx answers failed"
  local key n v3_canary_5xx=0 other_5xx=""
  while read -r key n; do
    [[ -n "$key" ]] || continue
    n="$(printf '%.0f' "$n")"
    info "  5xx answered by ${key%/-}: $n"
    if [[ "$key" == v3/canary ]]; then
      v3_canary_5xx=$n
    elif ((n > 0)); then
      other_5xx+=" ${key%/-}=$n"
    fi
  done <<<"$failed"

  local totals
  totals="$(load_totals)"
  info "load generator before v3: $LOAD_BEFORE_V3"
  info "load generator now:       $totals"
  if [[ "$LOAD_BEFORE_V3" == *"errors={} transport_errors=0"* ]]; then
    ok "not one request failed before v3: across the v1→v2 canary and promotion, the undo and the redo"
  else
    info "some requests failed before v3: see $WORKDIR/load.log"
  fi
  local load_500
  load_500="$(sed -nE 's/.*errors=\{([^}]*)\}.*/\1/p' <<<"$totals" | tr ',' '\n' | awk -F: '$1 == 500 { print $2 }')"
  if [[ -z "$other_5xx" && "$totals" =~ errors=\{(500:[0-9]+)?\}\ transport_errors=0 ]] && ((v3_canary_5xx > 0)); then
    ok "the only failed requests were v3's, from its canary pod during its analysis: ${load_500:-0} answered 500 (the load generator), $v3_canary_5xx counted by Prometheus; by design: DEMO_ERROR_RATE=0.1"
  else
    info "failures not only from v3's canary: Prometheus 5xx of v3's canary=$v3_canary_5xx, others:${other_5xx:- none}; load: $totals (see $WORKDIR/load.log)"
  fi
}

usage_banner() {
  say "Look around"
  local KEEPS_RUNNING="Everything keeps running until Ctrl-C."
  [[ "$NONINTERACTIVE" == 1 ]] && KEEPS_RUNNING="(DEMO_NONINTERACTIVE=1: this run stops now; \`make demo\` keeps it running.)"
  local by_role errors LOGS_LINE="$WORKDIR/{sandbox,operator,prometheus,load}.log"
  [[ "$INSTALL" == helm ]] && LOGS_LINE="$WORKDIR/{sandbox,prometheus,load}.log; the operator: kubectl -n $OPERATOR_NS logs deploy/$RELEASE"
  by_role="$PROM_URL/graph?g0.expr=sum%20by%20(version%2C%20rollouts_redblack_io_role)%20(rate(http_requests_total%5B30s%5D))&g0.tab=0&g0.range_input=15m"
  errors="$PROM_URL/graph?g0.expr=sum%20by%20(version)%20(rate(http_requests_total%7Bcode%3D~%225..%22%7D%5B30s%5D))&g0.tab=0&g0.range_input=15m"
  cat <<EOT
   $KEEPS_RUNNING From another terminal:

     export KUBECONFIG=$KUBECONFIG_FILE
     kubectl get rollouts,rbca            # rbca: the CanaryAnalyses, one per canary (its report)
     kubectl get rs,pods,svc
     $BIN report $V3_ANALYSIS     # why v3 was reverted
     $BIN report $V2_ANALYSIS     # why v2 was promoted
     $BIN status $APP --watch
     curl -si $SERVICE_URL

   Kubeconfig:  $KUBECONFIG_FILE
   Service:     $SERVICE_URL   (the sandbox's local proxy for Service $APP)
   Dashboard:   $DASHBOARD_URL
   Prometheus:  $PROM_URL
                requests/s by version and role: $by_role
                5xx/s by version:               $errors
   Logs:        $LOGS_LINE
   kubectl:     $(command -v kubectl)

   The sandbox is a SIMULATOR for trying redblack, never a production cluster.
EOT
}

# The web dashboard (`redblack dashboard`, docs/dashboard.md), read-only: the
# whole story — v2 promoted, v3 reverted — can be followed in a browser.
step_dashboard() {
  say "Starting the dashboard (\`redblack dashboard\`): open its URL to follow the story in a browser"
  local port log="$WORKDIR/dashboard.log"
  port="$(free_ports 1 "${PROM_URL##*:}" "$OPERATOR_PORT")"
  start_bg dashboard "$log" "$BIN" dashboard --kubeconfig "$KUBECONFIG_FILE" \
    --listen "127.0.0.1:$port" --prometheus-url "$PROM_URL"
  wait_until 30 "the dashboard serving (see $log)" curl -sf -o /dev/null "http://127.0.0.1:$port/"
  DASHBOARD_URL="http://127.0.0.1:$port/"
  ok "Dashboard: $DASHBOARD_URL   (fleet → Rollout $APP → each canary's report, live)"
}

# ---------------------------------------------------------------- main

STOPPING=0

# Stops everything and exits with STATUS. Every way out comes here: the end of
# the story, a failure (the EXIT trap), Ctrl-C, SIGTERM, SIGHUP, and a closed
# stdout (`make demo | tee demo.log`, then Ctrl-C: bash runs the EXIT trap on
# SIGPIPE). A signal that arrives while it runs — even before its first line,
# e.g. the Ctrl-C that follows the SIGPIPE — calls it again, and the second
# call either returns at once (the first one carries on) or, if the first had
# not started yet, does the whole job itself: never a half-done cleanup.
stop_and_exit() {
  local status=$1
  ((STOPPING)) && return 0
  STOPPING=1
  # Run to the end whatever fails here (e.g. writing to a terminal that closed).
  set +e
  trap '' INT TERM HUP # a second Ctrl-C must not cut the cleanup short (it is bounded)
  # stdout may be a closed pipe: a write then fails instead of killing us.
  trap '' PIPE
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
  trap 'stop_and_exit $?' EXIT
  trap 'stop_and_exit "$INT_STATUS"' INT
  trap 'stop_and_exit 143' TERM
  trap 'stop_and_exit 129' HUP # the terminal closed: the background processes have none to lose
  setup_workdir
  step_build
  step_sandbox
  step_prometheus
  if [[ "$INSTALL" == helm ]]; then step_operator_helm; else step_operator; fi
  step_dashboard
  step_app_v1
  step_notifications
  step_load
  act_canary_v2
  act_undo_redo
  act_canary_v3
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
