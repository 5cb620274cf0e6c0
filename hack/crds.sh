#!/usr/bin/env bash
# Regenerates the CRDs from the Rust types into crds/, lists them for
# kustomize (crds/Kustomization) and copies them into the Helm chart.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo run --quiet -- crd --out-dir crds

shopt -s nullglob
files=()
for f in crds/*.yaml; do
  [[ "$(basename "$f")" == Kustomization ]] || files+=("$(basename "$f")")
done
((${#files[@]})) || { echo "crds: 'redblack crd --out-dir crds' wrote no *.yaml" >&2; exit 1; }

{
  echo "# Lists the generated CRDs for \`kubectl kustomize deploy/\`."
  echo "# Rewritten by \`make crds\` (hack/crds.sh); do not edit by hand."
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  printf '  - %s\n' "${files[@]}"
} >crds/Kustomization

# Helm never deletes CRDs it installed, but a renamed file must not linger in
# the chart: replace the chart's copies wholesale.
rm -f charts/redblack/crds/*.yaml
for f in "${files[@]}"; do cp "crds/$f" charts/redblack/crds/; done
echo "crds: ${#files[@]} CRD file(s) in crds/ and charts/redblack/crds/"
