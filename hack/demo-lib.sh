# shellcheck shell=bash
# Helpers for hack/demo.sh: output, bounded waits, background processes and
# their cleanup, and small readers of the sandbox and Prometheus.
#
# Sourced, never run. Expects WORKDIR, PIDFILE, KUBECONFIG (exported) and BIN.

# ---------------------------------------------------------------- output

if [[ -t 1 ]]; then
  BOLD=$'\033[1m' DIM=$'\033[2m' GREEN=$'\033[32m' RED=$'\033[31m' RESET=$'\033[0m'
else
  BOLD='' DIM='' GREEN='' RED='' RESET=''
fi

STEP=0
say() { STEP=$((STEP + 1)); printf '\n%s== %d. %s%s\n' "$BOLD" "$STEP" "$*" "$RESET"; }
info() { printf '   %s\n' "$*"; }
ok() { printf '   %s✓ %s%s\n' "$GREEN" "$*" "$RESET"; }
# Shows a command, then runs it with its output indented.
show() {
  printf '   %s$ %s%s\n' "$DIM" "$*" "$RESET"
  if ! "$@" 2>&1 | sed 's/^/     /'; then
    die "command failed: $*"
  fi
}
die() {
  printf '\n%sdemo: ERROR: %s%s\n' "$RED" "$*" "$RESET" >&2
  exit 1
}

# ---------------------------------------------------------------- processes

# Every background process, as parallel arrays (oldest first).
PIDS=()
NAMES=()
LOGS=()

# start_bg NAME LOG CMD...: runs CMD in the background with its output in LOG,
# and records "NAME PID" in $PIDFILE (read by tests/demo_script.rs).
# In a session of its own (setsid execs, no fork: $! is CMD's pid), so a
# Ctrl-C in the terminal reaches only this script, which then stops
# everything in order (operator before sandbox) instead of all at once.
start_bg() {
  local name="$1" log="$2"
  shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  local pid=$!
  PIDS+=("$pid")
  NAMES+=("$name")
  LOGS+=("$log")
  echo "$name $pid" >>"$PIDFILE"
}

# Drops the newest background process (it exited; e.g. a port was taken).
forget_last_bg() {
  local n=$((${#PIDS[@]} - 1))
  PIDS=("${PIDS[@]:0:n}") NAMES=("${NAMES[@]:0:n}") LOGS=("${LOGS[@]:0:n}")
}

# True if PID exists and is not a zombie (an exited child nobody reaped yet).
alive() {
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}

log_tail() {
  echo "--- last lines of $1:" >&2
  tail -n 15 "$1" >&2 2>/dev/null || true
}

# Names of background processes that may end by themselves from now on.
NOT_NEEDED=" "

# Dies (with its log) if a background process we still need has exited.
check_alive() {
  local i
  for i in "${!PIDS[@]}"; do
    [[ "$NOT_NEEDED" == *" ${NAMES[i]} "* ]] && continue
    if ! alive "${PIDS[i]}"; then
      log_tail "${LOGS[i]}"
      die "${NAMES[i]} (pid ${PIDS[i]}) exited unexpectedly; its log is ${LOGS[i]}"
    fi
  done
}

# Pids of the processes behind the pods (demo-app; operator-pod for the
# operator's pods of DEMO_INSTALL=helm) (the sandbox started them and
# stops them with itself, or when their pod goes; recorded so that the cleanup
# can prove it). Called whenever new pods run (e.g. a canary's, which are gone
# by the end) and at cleanup; each pid is recorded once.
record_pod_pids() {
  local pods ns pid name
  pods="$(timeout 5 kubectl get pods -A -o go-template='{{range .items}}{{.metadata.namespace}} {{with .metadata.annotations}}{{index . "sandbox.redblack.io/pid"}}{{end}}{{"\n"}}{{end}}' 2>/dev/null)" || return 0
  while read -r ns pid; do
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    # DEMO_INSTALL=helm: the operator's own pods (redblack controller).
    name=demo-app
    [[ "$ns" == "${OPERATOR_NS:-}" ]] && name=operator-pod
    grep -qx "$name $pid" "$PIDFILE" || echo "$name $pid" >>"$PIDFILE"
  done <<<"$pods"
  return 0
}

# True if PID is alive and still one of ours (running redblack or
# prometheus), not a newcomer that reused the pid of one that ended long ago.
ours_alive() {
  alive "$1" && grep -qaE 'redblack|prometheus' "/proc/$1/cmdline" 2>/dev/null
}

# Stops everything this script started, newest first: SIGTERM, up to 10 s of
# grace, then SIGKILL. Then checks that no recorded process survived.
stop_all() {
  local i pid deadline
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null || true
  done
  deadline=$((SECONDS + 10))
  for pid in "${PIDS[@]}"; do
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  # The sandbox kills its pod processes; give them a moment, then verify.
  local survivors=()
  deadline=$((SECONDS + 5))
  while read -r _ pid; do
    while ours_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    ours_alive "$pid" && survivors+=("$pid")
  done <"$PIDFILE"
  if ((${#survivors[@]})); then
    echo "demo: processes still running after cleanup: ${survivors[*]}" >&2
    return 1
  fi
  return 0
}

# ---------------------------------------------------------------- waiting

# wait_until SECONDS WHAT CMD...: polls CMD every 0.5 s until it succeeds;
# dies with "WHAT did not happen within SECONDS s" otherwise. Also dies as soon
# as a background process exits.
wait_until() {
  local limit="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    check_alive
    ((SECONDS < deadline)) || die "$what did not happen within ${limit}s"
    sleep 0.5
  done
}

# free_ports N [EXCEPT...]: N distinct free loopback ports (all bound at once,
# so the kernel cannot hand out one twice), none of them in EXCEPT.
free_ports() {
  python3 - "$@" <<'PY'
import socket, sys
n, exclude = int(sys.argv[1]), set(sys.argv[2:])
held, ports = [], []
while len(ports) < n:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
    port = str(s.getsockname()[1])
    if port not in exclude:
        ports.append(port)
print(" ".join(ports))
PY
}

http_ok() { curl -fs --max-time 2 -o /dev/null "$1"; }

# ---------------------------------------------------------------- reading state

# The Rollout as "PHASE STABLE CURRENT GENERATION OBSERVED" ("-" when unset).
rollout_state() {
  local out
  out="$(kubectl get rollouts.redblack.io "$1" -o go-template='{{with .status}}{{or .phase "-"}} {{or .stableRevision "-"}} {{or .currentRevision "-"}} {{or .observedGeneration "0"}}{{else}}- - - 0{{end}} {{.metadata.generation}}')" || return 1
  echo "$out"
}

# The pod-template hash the Service selects ("-" if none).
service_hash() {
  local out
  out="$(kubectl get service "$1" -o go-template='{{with .spec.selector}}{{or (index . "rollouts.redblack.io/pod-template-hash") "-"}}{{else}}-{{end}}')" || return 1
  echo "$out"
}

# The Service's local proxy port (annotation written by the sandbox data plane).
proxy_port() {
  kubectl get service "$1" -o go-template='{{with .metadata.annotations}}{{index . "sandbox.redblack.io/proxy-port"}}{{end}}'
}

# One line per ReplicaSet of the app:
# "HASH REVISION IMAGE DESIRED READY SCALE_DOWN_AT ROLE", ROLE being canary or
# baseline for a canary's fleets (which carry no revision) and "-" otherwise.
fleets() {
  kubectl get replicasets -l "app=$1" -o go-template='{{range .items}}{{index .metadata.labels "rollouts.redblack.io/pod-template-hash"}} {{with .metadata.annotations}}{{or (index . "rollouts.redblack.io/revision") "-"}} {{else}}- {{end}}{{(index .spec.template.spec.containers 0).image}} {{or .spec.replicas 0}} {{with .status}}{{or .readyReplicas 0}}{{else}}0{{end}} {{with .metadata.annotations}}{{or (index . "rollouts.redblack.io/scale-down-at") "-"}}{{else}}-{{end}} {{or (index .metadata.labels "rollouts.redblack.io/role") "-"}}{{"\n"}}{{end}}'
}

# The Rollout's phase and its canary's, in one read, as
# "PHASE CANARY_PHASE TRAFFIC_PERCENT ANALYSIS REVISION" ("-" when unset).
canary_state() {
  local out
  out="$(kubectl get rollouts.redblack.io "$1" -o go-template='{{with .status}}{{or .phase "-"}} {{with .canary}}{{or .phase "-"}} {{or .trafficPercent 0}} {{or .analysisName "-"}} {{or .revision "-"}}{{else}}- 0 - -{{end}}{{else}}- - 0 - -{{end}}')" || return 1
  echo "$out"
}

# A CanaryAnalysis as "PHASE JUDGED/TOTAL SCORE SCORES": SCORE is the latest
# judgement's (the verdict's, once there is one), SCORES the judged
# intervals' scores, oldest first, comma-separated (a band instead of a score
# for an interval that had none, e.g. Inconclusive); "-" when unset.
analysis_state() {
  local out
  # Numbers come as %v (kubectl decodes 100 as an integer, 87.5 as a float)
  # and are rounded by awk. $i and $v are go-template variables:
  # shellcheck disable=SC2016
  out="$(kubectl get canaryanalyses.redblack.io "$1" -o go-template='{{with .status}}{{or .phase "-"}} {{or .intervalProgress "-"}} {{if eq (printf "%v" .score) "<nil>"}}-{{else}}{{.score}}{{end}} {{range $i, $v := .intervals}}{{if $i}},{{end}}{{if eq (printf "%v" $v.score) "<nil>"}}{{$v.band}}{{else}}{{$v.score}}{{end}}{{else}}-{{end}}{{else}}- - - -{{end}}')" || return 1
  awk '
    function num(v) { return v ~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/ }
    {
      if (num($3)) $3 = sprintf("%.1f", $3)
      n = split($4, s, ","); out = ""
      for (i = 1; i <= n; i++) out = out (i > 1 ? "," : "") (num(s[i]) ? sprintf("%.0f", s[i]) : s[i])
      $4 = out
      print
    }' <<<"$out"
}


# When analysis $1 ended, for people: "failed 9 s after judging started
# (1 of 4 intervals judged)".
failed_after() {
  local from="" done="" progress="" fields
  # jsonpath prints no trailing newline, which `read` would call a failure.
  fields="$(kubectl get canaryanalyses.redblack.io "$1" \
    -o jsonpath='{.status.window.judgedFrom} {.status.completedAt} {.status.intervalProgress}')" || true
  read -r from done progress <<<"$fields" || true
  if [[ -n "$from" && -n "$done" && -n "$progress" ]]; then
    echo "failed $(($(date -d "$done" +%s) - $(date -d "$from" +%s))) s after judging started ($progress intervals judged)"
  else
    echo "after $progress intervals"
  fi
}

# The version tag of an image: redblack/demo-app:v2 -> v2.
tag_of() { echo "${1##*:}"; }

# Runs an instant PromQL query; prints "LABELVALUE VALUE" per series, the
# label being $2 (e.g. version). With several labels ("version,code") the
# values are joined by "/", a missing label being "-" ("v2/-").
prom_query() {
  local query="$1" labels="$2" json
  json="$(curl -fsS --max-time 3 "$PROM_URL/api/v1/query" --data-urlencode "query=$query")" || return 1
  python3 -c '
import json, sys
labels = sys.argv[1].split(",")
doc = json.loads(sys.stdin.read())
if doc.get("status") != "success":
    sys.exit("prometheus: " + str(doc.get("error")))
rows = [("/".join(s["metric"].get(l, "-") for l in labels), s["value"][1]) for s in doc["data"]["result"]]
for key, value in sorted(rows):
    print(key, value)
' "$labels" <<<"$json"
}
