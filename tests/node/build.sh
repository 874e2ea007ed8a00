#!/usr/bin/env bash
# Builds (or reuses) everything a local Kubernetes node needs for tests/node_test.ts, besides
# containerd (Debian's package):
#   - the kubelet, from the same k8s.io/kubernetes module and version as the apiserver
#     (tests/stack/build.sh --with-kubelet);
#   - runc, built with the seccomp tag (Debian's runc is too old for this kubelet's sandboxes,
#     and a runc without seccomp refuses the RuntimeDefault profile);
#   - the pause image: build/pause/linux/pause.c of the k8s.io/kubernetes module, linked static,
#     as an OCI layout archive;
#   - a DENO_DIR holding every npm package of deno.lock, for the tool's image (image.sh).
#
# Output folder: ${KTR_NODE_CACHE:-$HOME/.cache/kube-token-refresher/node}. Its node.json names
# every piece; it is also the last line printed on stdout. Needs: go, gcc, libseccomp-dev,
# containerd, deno, and the Go module proxy and npm registry for a cold build.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
runc_version=v1.5.3

log() { printf 'node/build.sh: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing ($2)"; }

need go "the Go toolchain"
need gcc "apt-get install gcc"
need containerd "apt-get install containerd"
need ctr "apt-get install containerd"
need deno "see .ci/run"
[[ -f /usr/include/seccomp.h ]] || die "libseccomp headers are missing (apt-get install libseccomp-dev)"

started=$SECONDS
cache="${KTR_NODE_CACHE:-${HOME:?HOME is not set}/.cache/kube-token-refresher/node}"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

# --- kubelet -------------------------------------------------------------------------------
stack_bin="$(bash "$repo/tests/stack/build.sh" --with-kubelet | tail -n1)"
[[ -x "$stack_bin/kubelet" ]] || die "tests/stack/build.sh did not produce a kubelet in $stack_bin"
k8s_version="$(cat "$stack_bin/.k8s-version" 2>/dev/null || awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$repo/tests/stack/go.mod")"

# --- runc ----------------------------------------------------------------------------------
runc_dir="$cache/runc-$runc_version"
runc_stamp="$(go env GOVERSION) seccomp"
if [[ ! -x "$runc_dir/runc" || "$(cat "$runc_dir/.stamp" 2>/dev/null)" != "$runc_stamp" ]]; then
  log "building runc $runc_version with seccomp"
  t=$SECONDS
  mkdir -p "$runc_dir"
  rm -f "$runc_dir/.stamp"
  # cgo for libseccomp; go install of a version ignores any local go.mod.
  CGO_ENABLED=1 GOBIN="$runc_dir" GOFLAGS=-trimpath \
    go install -tags seccomp -ldflags "-s -w -X main.version=${runc_version#v}" \
    "github.com/opencontainers/runc@$runc_version"
  printf '%s\n' "$runc_stamp" >"$runc_dir/.stamp"
  log "built runc in $((SECONDS - t))s"
fi
"$runc_dir/runc" --version | grep -q 'libseccomp' || die "runc $runc_dir/runc lacks seccomp support"

# --- pause image ---------------------------------------------------------------------------
# shellcheck source=tests/node/oci.sh
source "$here/oci.sh"
pause_tar="$cache/pause-$k8s_version.tar"
pause_image="registry.k8s.io/pause:ktr-$k8s_version"
if [[ ! -s "$pause_tar" ]]; then
  log "building the pause image from k8s.io/kubernetes@$k8s_version"
  k8s_dir="$(cd "$repo/tests/stack" && go mod download -json "k8s.io/kubernetes@$k8s_version" |
    sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  [[ -f "$k8s_dir/build/pause/linux/pause.c" ]] || die "pause.c not found in the k8s.io/kubernetes module"
  work="$(mktemp -d)"
  gcc -Os -Wall -Werror -static "-DVERSION=$k8s_version-ktr" -o "$work/pause" \
    "$k8s_dir/build/pause/linux/pause.c"
  mkdir -p "$work/rootfs"
  install -m 0755 "$work/pause" "$work/rootfs/pause"
  oci_archive "$work/rootfs" "$pause_image" '{"User":"65535:65535","Entrypoint":["/pause"]}' "$pause_tar"
  rm -rf "$work"
fi

# --- DENO_DIR for the tool's image -----------------------------------------------------------
deno_dir="$(bash "$here/image.sh" --deno-dir-only)"

cat >"$cache/node.json.tmp" <<JSON
{
  "kubernetesVersion": "$k8s_version",
  "kubelet": "$stack_bin/kubelet",
  "runc": "$runc_dir/runc",
  "containerd": "$(command -v containerd)",
  "ctr": "$(command -v ctr)",
  "pauseImage": "$pause_image",
  "pauseArchive": "$pause_tar",
  "denoDir": "$deno_dir"
}
JSON
mv -f "$cache/node.json.tmp" "$cache/node.json"
log "node ready in $((SECONDS - started))s: kubelet $k8s_version, runc $runc_version, $(containerd --version | awk '{print $3}') containerd"
echo "$cache/node.json"
