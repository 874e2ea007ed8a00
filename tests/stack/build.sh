#!/usr/bin/env bash
# Builds (or reuses) the binaries of the local Kubernetes test stack:
# kube-apiserver, etcd and kubectl, from the Go module in this folder.
# With --with-kubelet also the kubelet of the same release (for tests/node/).
#
# Output folder: ${KTR_STACK_CACHE:-$HOME/.cache/kube-token-refresher/stack}/<k8s-version>/bin
# The last line printed on stdout is the folder that holds the binaries.
#
# Binaries brought by the user (envtest conventions) win and nothing is built:
#   TEST_ASSET_KUBE_APISERVER + TEST_ASSET_ETCD  (and optionally TEST_ASSET_KUBECTL)
#   KUBEBUILDER_ASSETS=<folder with kube-apiserver, etcd, kubectl>
#
# Needs: go (the version named in go.mod or newer, or GOTOOLCHAIN=auto) and the
# Go module proxy. The first build takes a long while on a small machine; later
# runs reuse the cached binaries, or the Go build cache when the inputs change.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

with_kubelet=false
case "${1:-}" in
  --with-kubelet) with_kubelet=true ;;
  "") ;;
  *)
    printf 'stack/build.sh: unknown argument %s (only --with-kubelet)\n' "$1" >&2
    exit 2
    ;;
esac

log() { printf 'stack/build.sh: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

is_exe() { [[ -n "${1:-}" && -f "$1" && -x "$1" ]]; }

# --- binaries provided from outside -----------------------------------------
if [[ -n "${TEST_ASSET_KUBE_APISERVER:-}" || -n "${TEST_ASSET_ETCD:-}" ]]; then
  if is_exe "${TEST_ASSET_KUBE_APISERVER:-}" && is_exe "${TEST_ASSET_ETCD:-}" &&
    { ! $with_kubelet || is_exe "$(dirname "$TEST_ASSET_KUBE_APISERVER")/kubelet"; }; then
    log "using TEST_ASSET_KUBE_APISERVER=$TEST_ASSET_KUBE_APISERVER"
    log "using TEST_ASSET_ETCD=$TEST_ASSET_ETCD"
    dirname "$TEST_ASSET_KUBE_APISERVER"
    exit 0
  fi
  log "TEST_ASSET_KUBE_APISERVER / TEST_ASSET_ETCD are set but do not both name executables; building instead"
fi
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  if is_exe "$KUBEBUILDER_ASSETS/kube-apiserver" && is_exe "$KUBEBUILDER_ASSETS/etcd" &&
    { ! $with_kubelet || is_exe "$KUBEBUILDER_ASSETS/kubelet"; }; then
    log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
    (cd "$KUBEBUILDER_ASSETS" && pwd)
    exit 0
  fi
  log "KUBEBUILDER_ASSETS is set but lacks kube-apiserver and etcd; building instead"
fi

# --- versions, taken from go.mod so there is one place to change them -------
mod_version() {
  awk -v m="$1" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$here/go.mod"
}
k8s_version="$(mod_version k8s.io/kubernetes)"
etcd_version="$(mod_version go.etcd.io/etcd/server/v3)"
[[ "$k8s_version" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+ ]] || die "cannot read the k8s.io/kubernetes version from go.mod"
k8s_major="${BASH_REMATCH[1]}"
k8s_minor="${BASH_REMATCH[2]}"
[[ -n "$etcd_version" ]] || die "cannot read the etcd server version from go.mod"

cache_root="${KTR_STACK_CACHE:-${HOME:?HOME is not set}/.cache/kube-token-refresher/stack}"
version_dir="$cache_root/$k8s_version"
bin_dir="$version_dir/bin"

command -v go >/dev/null 2>&1 || die "go is not installed (needed to build kube-apiserver, etcd and kubectl)"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum is missing (coreutils)"

ldflags_version() {
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
      "$pkg" "$k8s_version" "$pkg" "$k8s_major" "$pkg" "$k8s_minor" "$pkg"
  done
}
ldflags="-s -w $(ldflags_version)"

# A stamp records every input of a build: the Go version, the flags, and the exact module
# versions of the packages linked (not go.mod as a whole, so that a requirement added for another
# command, like the kubelet's, leaves the stack's binaries valid), plus each binary's size and
# time, so a binary replaced by another build is noticed. Same stamp: nothing to do.
deps_hash() {
  {
    printf 'go=%s\nldflags=%s\n' "$(go env GOVERSION)" "$ldflags"
    cat "$here/cmd/etcd/main.go"
    (cd "$here" && go list -mod=readonly -deps \
      -f '{{with .Module}}{{.Path}} {{.Version}}{{with .Replace}} => {{.Path}} {{.Version}}{{end}}{{end}}' "$@") |
      sort -u
  } | sha256sum | cut -d' ' -f1
}
files_id() { (cd "$bin_dir" 2>/dev/null && stat -c '%n %s %Y' "$@" 2>/dev/null); }

binaries=(kube-apiserver etcd kubectl)
stamp="$(deps_hash ./cmd/etcd k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl)" ||
  die "go list failed (is the module cache complete? run go mod download in $here)"
up_to_date() {
  local b
  for b in "${binaries[@]}"; do is_exe "$bin_dir/$b" || return 1; done
  [[ "$(cat "$bin_dir/.deps-stamp" 2>/dev/null)" == "$stamp $(files_id "${binaries[@]}")" ]]
}
# The kubelet has its own stamp: the stack alone never pays for it.
kubelet_stamp=""
kubelet_up_to_date() {
  [[ -n "$kubelet_stamp" ]] || kubelet_stamp="$(deps_hash k8s.io/kubernetes/cmd/kubelet)"
  is_exe "$bin_dir/kubelet" &&
    [[ "$(cat "$bin_dir/.kubelet.deps-stamp" 2>/dev/null)" == "$kubelet_stamp $(files_id kubelet)" ]]
}

mkdir -p "$version_dir"
# One build at a time per version (two test runs starting together share it).
exec 9>"$version_dir/.lock"
flock 9

stack_fresh=false
up_to_date && stack_fresh=true
if $stack_fresh && { ! $with_kubelet || kubelet_up_to_date; }; then
  log "reusing kubernetes $k8s_version / etcd $etcd_version binaries"
  echo "$bin_dir"
  exit 0
fi

staging="$(mktemp -d "$version_dir/.build.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

build() {
  local out="$1" pkg="$2" start
  start=$SECONDS
  log "go build $pkg"
  (
    cd "$here"
    CGO_ENABLED=0 go build -mod=readonly -trimpath -buildvcs=false \
      -ldflags "$ldflags" -o "$staging/$out" "$pkg"
  )
  log "built $out in $((SECONDS - start))s ($(du -h "$staging/$out" | cut -f1))"
}

if $with_kubelet && ! kubelet_up_to_date; then
  build kubelet k8s.io/kubernetes/cmd/kubelet
  "$staging/kubelet" --version >&2
  mkdir -p "$bin_dir"
  rm -f "$bin_dir/.kubelet.deps-stamp"
  mv -f "$staging/kubelet" "$bin_dir/kubelet"
  printf '%s %s\n' "$kubelet_stamp" "$(files_id kubelet)" >"$bin_dir/.kubelet.deps-stamp"
fi
if $stack_fresh; then
  log "reusing kubernetes $k8s_version / etcd $etcd_version binaries"
  echo "$bin_dir"
  exit 0
fi

log "building kubernetes $k8s_version (kube-apiserver, kubectl) and etcd $etcd_version into $bin_dir"
log "a cold build downloads about 1 GB of modules and takes many minutes on 2 cores"

build etcd ./cmd/etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl k8s.io/kubernetes/cmd/kubectl

"$staging/kube-apiserver" --version >&2
"$staging/etcd" --version | head -n1 >&2

mkdir -p "$bin_dir"
rm -f "$bin_dir/.deps-stamp" "$bin_dir/.stamp"
for b in "${binaries[@]}"; do mv -f "$staging/$b" "$bin_dir/$b"; done
printf '%s %s\n' "$stamp" "$(files_id "${binaries[@]}")" >"$bin_dir/.deps-stamp"
printf '%s\n' "$k8s_version" >"$bin_dir/.k8s-version"
printf '%s\n' "$etcd_version" >"$bin_dir/.etcd-version"

echo "$bin_dir"
