#!/usr/bin/env bash
# Assembles the tool's container image for the node tests, without network and without a
# container engine, as an OCI layout archive that `ctr images import` loads:
#
#   image.sh OUT.tar [IMAGE_NAME]   the image, from the working tree's sources
#   image.sh --deno-dir-only        only fill (or reuse) the cached DENO_DIR; prints its path
#
# Like the published image (Dockerfile: distroless cc, non-root 65532, no shell), but the
# runtime is the Deno binary of .deno-version running the sources, not a `deno compile` binary
# (compile needs to download its runtime). The root filesystem holds only files of Debian
# packages installed on this machine (libc6, libgcc-s1, tzdata, the CA bundle of
# ca-certificates), a passwd/group with 65532, the Deno binary, the sources as the Dockerfile's
# build context lets them through (deno.json, deno.lock, main.ts, src/), and a DENO_DIR with
# every npm package of deno.lock, so that `deno run --cached-only` needs no registry.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
log() { printf 'node/image.sh: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

command -v deno >/dev/null 2>&1 || die "deno is not on PATH (see .ci/run)"
deno_version="$(tr -d '[:space:]' <"$repo/.deno-version")"
[[ "$(deno --version | awk 'NR==1{print $2}')" == "$deno_version" ]] ||
  die "deno on PATH is not $deno_version (.deno-version)"

# --- the DENO_DIR, cached per lock file and Deno version ----------------------------------------
cache="${KTR_NODE_CACHE:-${HOME:?HOME is not set}/.cache/kube-token-refresher/node}"
key="$(cat "$repo/deno.lock" "$repo/deno.json" <(echo "$deno_version") | sha256sum | cut -c1-16)"
deno_dir="$cache/deno-dir/$key"
if [[ ! -f "$deno_dir/.complete" ]]; then
  log "filling DENO_DIR $deno_dir from deno.lock"
  rm -rf "$deno_dir"
  mkdir -p "$deno_dir"
  (cd "$repo" && DENO_DIR="$deno_dir" deno cache --frozen --quiet main.ts) ||
    die "deno cache failed (the npm registry is needed once per deno.lock)"
  touch "$deno_dir/.complete"
fi
if [[ "${1:-}" == "--deno-dir-only" ]]; then
  echo "$deno_dir"
  exit 0
fi

out="${1:?usage: image.sh OUT.tar [IMAGE_NAME] | --deno-dir-only}"
name="${2:-docker.io/library/kube-token-refresher:node-test}"

rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
chmod 0755 "$rootfs"

# Merged /usr, as in Debian 12 and distroless: the packages' /lib64/... paths land in usr/.
mkdir -p "$rootfs"/usr/{bin,lib,lib64,sbin} "$rootfs"/{etc,tmp,app,home/nonroot,proc,sys,dev}
for d in bin lib lib64 sbin; do ln -s "usr/$d" "$rootfs/$d"; done
chmod 1777 "$rootfs/tmp"

# Files (and symlinks) of the packages, without documentation; the directory symlinks made
# above are kept, so /lib/... of a package lands in usr/lib/.
for pkg in libc6 libgcc-s1 tzdata; do
  dpkg-query -W "$pkg" >/dev/null 2>&1 || die "Debian package $pkg is not installed"
  dpkg -L "$pkg" | while IFS= read -r f; do
    case "$f" in /usr/share/doc/* | /usr/share/man/* | /usr/share/lintian/* | /usr/share/locale/*) continue ;; esac
    if [[ -L "$f" || -f "$f" ]]; then printf '%s\n' "${f#/}"; fi
  done
done | tar -C / --no-recursion -cf - -T - | tar -C "$rootfs" --keep-directory-symlink -xf -
# The bundle update-ca-certificates makes from the ca-certificates package (what distroless ships).
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || die "no CA bundle (apt-get install ca-certificates)"
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"

# Users as in distroless: no login shell exists, so none is named.
cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
GROUP

install -m 0755 "$(readlink -f "$(command -v deno)")" "$rootfs/usr/bin/deno"
cp "$repo/deno.json" "$repo/deno.lock" "$repo/main.ts" "$rootfs/app/"
cp -r "$repo/src" "$rootfs/app/src"
cp -r "$deno_dir" "$rootfs/deno-dir"
rm -f "$rootfs/deno-dir/.complete"
chmod -R a+rX "$rootfs/app" "$rootfs/deno-dir"

# shellcheck source=tests/node/oci.sh
source "$here/oci.sh"
# --frozen: a lock file that would change is an error instead of a write to a read-only root.
oci_archive "$rootfs" "$name" "$(
  cat <<'CONFIG' | tr -d '\n '
{"User":"65532:65532","WorkingDir":"/app",
"Env":["PATH=/usr/bin","DENO_DIR=/deno-dir","DENO_NO_UPDATE_CHECK=1","DENO_NO_PROMPT=1",
"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
"Entrypoint":["/usr/bin/deno","run","--quiet","--cached-only","--frozen","--permission-set=incluster",
"/app/main.ts"]}
CONFIG
)" "$out"
log "image $name: $(du -h "$out" | cut -f1) ($out)"
