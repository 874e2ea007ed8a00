#!/usr/bin/env bash
# Lints the GitHub workflows (.github/workflows/*.yml) with actionlint, so a broken workflow never
# lands. Exits non-zero on any finding.
#
# actionlint is built from the Go module proxy on first use and kept, one file per version, in
#   ${KTR_TOOLS_CACHE:-$HOME/.cache/kube-token-refresher/tools}
# When shellcheck is on PATH, actionlint also checks every `run:` script with it.
set -euo pipefail

ACTIONLINT_VERSION=v1.7.12

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${KTR_TOOLS_CACHE:-${HOME:?HOME is not set}/.cache/kube-token-refresher/tools}"
bin="$tools/actionlint-$ACTIONLINT_VERSION"

log() { printf 'actionlint.sh: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

if [[ ! -x "$bin" ]]; then
  command -v go >/dev/null 2>&1 || die "go is needed to build actionlint $ACTIONLINT_VERSION"
  log "building actionlint $ACTIONLINT_VERSION"
  mkdir -p "$tools"
  staging="$(mktemp -d "$tools/.build.XXXXXX")"
  trap 'rm -rf "$staging"' EXIT
  GOBIN="$staging" CGO_ENABLED=0 go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" ||
    die "go install github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION failed"
  # A rename, so a run that stops half-way never leaves a broken binary behind.
  mv -f "$staging/actionlint" "$bin"
fi

cd "$root"
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
[[ ${#workflows[@]} -gt 0 ]] || die "no workflow files in .github/workflows"

if command -v shellcheck >/dev/null 2>&1; then
  log "actionlint $ACTIONLINT_VERSION with $(shellcheck --version | awk '/^version:/ { print "shellcheck " $2 }')"
else
  log "actionlint $ACTIONLINT_VERSION; shellcheck is not on PATH, so run: scripts are not checked"
fi

"$bin" -no-color "${workflows[@]}"
log "${#workflows[@]} workflow(s) clean"
