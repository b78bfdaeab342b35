#!/usr/bin/env bash
# The tools the chart's tests use, pinned and cached like the local stack's MinIO:
#   - helm, built once with `go install` into $RDQC_CACHE_DIR/bin/helm (rebuilt when the pin
#     changes);
#   - the CRDs of the custom kinds the chart renders (KEDA's ScaledObject and
#     TriggerAuthentication, the Prometheus operator's ServiceMonitor and PrometheusRule), taken
#     from their projects' Go modules at pinned versions into $RDQC_CACHE_DIR/crds/.
# Then writes $RDQC_CACHE_DIR/chart-tools.env, where the tests find both:
#   RDQC_HELM=<helm binary>  RDQC_CHART_CRDS=<folder of CRD files>
#
#   bash deploy/tools/install-chart-tools.sh     (make tools; make test runs it)
#
# Needs Go 1.24 or newer, once per machine.
set -euo pipefail

CACHE_DIR=${RDQC_CACHE_DIR:-$HOME/.cache/rdqc}

HELM_MODULE=helm.sh/helm/v4
HELM_VERSION=v4.3.2
HELM_BIN=$CACHE_DIR/bin/helm

KEDA_MODULE=github.com/kedacore/keda/v2
KEDA_VERSION=v2.21.0
KEDA_CRDS=(config/crd/bases/keda.sh_scaledobjects.yaml
    config/crd/bases/keda.sh_triggerauthentications.yaml)

PROMETHEUS_OPERATOR_MODULE=github.com/prometheus-operator/prometheus-operator
PROMETHEUS_OPERATOR_VERSION=v0.85.0
PROMETHEUS_OPERATOR_CRDS=(example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml
    example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml)

CRD_DIR=$CACHE_DIR/crds/keda-$KEDA_VERSION.prometheus-operator-$PROMETHEUS_OPERATOR_VERSION
ENV_FILE=$CACHE_DIR/chart-tools.env

say() { printf 'chart-tools: %s\n' "$*"; }
die() {
    printf 'chart-tools: error: %s\n' "$*" >&2
    exit 1
}

need_go() {
    command -v go >/dev/null || die "go not found: Go 1.24 or newer is needed once to $1"
}

helm_ready() {
    [[ -x $HELM_BIN ]] || return 1
    # The binary records the module version it was built from; rebuild when the pin changes.
    command -v go >/dev/null || return 0
    go version -m "$HELM_BIN" 2>/dev/null | awk -v m="$HELM_MODULE" -v v="$HELM_VERSION" '
        $1 == "mod" && $2 == m && $3 == v { found = 1 }
        END { exit !found }'
}

build_helm() {
    local tmp=$CACHE_DIR/bin.tmp.helm.$$
    need_go "build helm"
    say "building $HELM_MODULE/cmd/helm@$HELM_VERSION into $HELM_BIN (once, minutes)"
    rm -rf "$tmp"
    mkdir -p "$tmp" "$(dirname "$HELM_BIN")"
    GOBIN=$tmp go install "$HELM_MODULE/cmd/helm@$HELM_VERSION"
    mv -f "$tmp/helm" "$HELM_BIN"
    rm -rf "$tmp"
}

# The folder a module version lands in, downloaded into the Go module cache if it is not there.
module_dir() {
    # Outside any go.mod, so the download is of exactly this version.
    (cd / && go mod download -json "$1@$2") | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

copy_crds() {
    local module=$1 version=$2 dir file
    shift 2
    dir=$(module_dir "$module" "$version")
    [[ -d $dir ]] || die "could not download $module@$version"
    for file in "$@"; do
        [[ -f $dir/$file ]] || die "$module@$version has no $file"
        cp "$dir/$file" "$CRD_DIR.tmp/"
    done
}

fetch_crds() {
    need_go "download the CRD schemas"
    say "copying the KEDA $KEDA_VERSION and Prometheus operator $PROMETHEUS_OPERATOR_VERSION CRDs into $CRD_DIR"
    rm -rf "$CRD_DIR.tmp"
    mkdir -p "$CRD_DIR.tmp"
    copy_crds "$KEDA_MODULE" "$KEDA_VERSION" "${KEDA_CRDS[@]}"
    copy_crds "$PROMETHEUS_OPERATOR_MODULE" "$PROMETHEUS_OPERATOR_VERSION" "${PROMETHEUS_OPERATOR_CRDS[@]}"
    # Files in the module cache are read-only; the copies need not be.
    chmod -R u+w "$CRD_DIR.tmp"
    rm -rf "$CRD_DIR"
    mv "$CRD_DIR.tmp" "$CRD_DIR"
}

helm_ready || build_helm
[[ -d $CRD_DIR ]] || fetch_crds
printf 'RDQC_HELM=%s\nRDQC_CHART_CRDS=%s\n' "$HELM_BIN" "$CRD_DIR" >"$ENV_FILE"
say "helm $HELM_VERSION and the CRDs are ready ($ENV_FILE)"
