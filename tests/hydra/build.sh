#!/usr/bin/env bash
# Builds (or reuses) Ory Hydra for the jwt_bearer tests, from the Go module in this folder
# (a `tool` dependency pinned in go.mod; Hydra's own `replace` of pop is repeated there, since a
# dependency's replace lines are not applied).
#
# Output: ${KTR_HYDRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-token-refresher/hydra}/<version>/hydra
# The last line printed on stdout is the path of the binary. Needs go and a C compiler (Hydra's
# in-memory database is SQLite through cgo).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'hydra/build.sh: %s\n' "$*" >&2; }

version=$(awk '$1 == "github.com/ory/hydra/v2" { print $2; exit }' "$here/go.mod")
[ -n "$version" ] || { log "cannot read the Hydra version from go.mod"; exit 1; }
cache="${KTR_HYDRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-token-refresher/hydra}"
out="$cache/$version"
tags="sqlite,sqlite_omit_load_extension"
stamp=$({ go env GOVERSION; echo "$tags"; cat "$here/go.mod" "$here/go.sum"; } | sha256sum | cut -d' ' -f1)

if [ -x "$out/hydra" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$out/hydra"
  exit 0
fi
command -v go >/dev/null || { log "go is not installed"; exit 1; }
command -v gcc >/dev/null || { log "gcc is not installed (apt-get install gcc)"; exit 1; }
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ -x "$out/hydra" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$out/hydra"
  exit 0
fi
start=$(date +%s)
log "building Ory Hydra $version (a first build takes a few minutes)"
tmp=$(mktemp "$out/.hydra.XXXXXX")
(cd "$here" && CGO_ENABLED=1 go build -mod=readonly -trimpath -tags "$tags" \
  -ldflags "-s -w" -o "$tmp" github.com/ory/hydra/v2)
mv "$tmp" "$out/hydra"
echo "$stamp" > "$out/.stamp"
log "built in $(($(date +%s) - start)) s"
echo "$out/hydra"
