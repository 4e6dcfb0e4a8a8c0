#!/usr/bin/env bash
# `make deploy-check`: renders the kustomize base and every overlay (kubectl kustomize, offline)
# and validates each rendered object against the Kubernetes schemas (kubernetes-validate, offline),
# and each custom resource (RabbitmqCluster, CloudNativePG Cluster, KEDA ScaledObject) against
# the schemas of the fields Hookwire uses (deploy/k8s/schemas/, scripts/validate-custom-resources.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "[deps] installing kubernetes-validate"
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate
fi
K8S_VERSION=${K8S_VERSION:-1.30.0}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for dir in deploy/k8s/base deploy/k8s/overlays/*; do
  name=$(echo "$dir" | tr '/' '_')
  kubectl kustomize "$dir" >"$out/$name.yaml"
  echo "[deploy-check] $dir: $(grep -c '^kind:' "$out/$name.yaml") objects"
  python3 scripts/validate-custom-resources.py "$out/$name.yaml" "$out/$name.k8s.yaml"
  kubernetes-validate --strict -k "$K8S_VERSION" "$out/$name.k8s.yaml"
done
echo "[deploy-check] every manifest is valid for Kubernetes $K8S_VERSION"
