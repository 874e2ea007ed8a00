#!/usr/bin/env bash
# Installs the Keycloak server distribution the secretless tests run, once per version:
# fetched from Maven Central with `mvn dependency:get`, unpacked into
# ${KTR_KEYCLOAK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-token-refresher/keycloak}/<version>/,
# and started once with the features the tests use, so its one-time build (about half a minute)
# is paid here and not inside a test. Returns at once when that is done already.
#
# Prints the path of the distribution's folder (the one holding bin/kc.sh) on stdout.
# Keycloak needs Java 21 or newer: JAVA_HOME if it is one, else the newest JDK found on PATH or
# in the usual JVM folders (see find-java.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=$(tr -d '[:space:]' < "$here/VERSION")
cache="${KTR_KEYCLOAK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-token-refresher/keycloak}"
dest="$cache/$version"
dist="$dest/keycloak-$version"
# The features and build options every test start uses; the warm-up builds exactly these.
features=$(tr -d '[:space:]' < "$here/FEATURES")

log() { printf 'keycloak: %s\n' "$*" >&2; }

if [ -f "$dest/.ready" ] && [ "$(cat "$dest/.ready")" = "$features" ]; then
  echo "$dist"
  exit 0
fi

java_home=$(bash "$here/find-java.sh")
command -v mvn >/dev/null || { log "mvn not found (apt-get install maven)"; exit 1; }
command -v unzip >/dev/null || { log "unzip not found (apt-get install unzip)"; exit 1; }
for tool in curl python3 flock; do
  command -v "$tool" >/dev/null || { log "$tool not found"; exit 1; }
done

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$dest/.ready" ] && [ "$(cat "$dest/.ready")" = "$features" ]; then
  echo "$dist"
  exit 0
fi

start=$(date +%s)
if [ ! -x "$dist/bin/kc.sh" ]; then
  artifact="org.keycloak:keycloak-quarkus-dist:$version:zip"
  log "fetching $artifact"
  mvn -q -B dependency:get "-Dartifact=$artifact" -Dtransitive=false >&2
  repo=$(mvn -q -B help:evaluate -Dexpression=settings.localRepository -DforceStdout 2>/dev/null || true)
  [ -d "$repo" ] || repo="$HOME/.m2/repository"
  zip="$repo/org/keycloak/keycloak-quarkus-dist/$version/keycloak-quarkus-dist-$version.zip"
  [ -f "$zip" ] || { log "downloaded zip not found at the local repository"; exit 1; }
  tmp=$(mktemp -d "$cache/.unpack.XXXXXX")
  unzip -q "$zip" -d "$tmp"
  rm -rf "$dest"
  mkdir -p "$dest"
  mv "$tmp/keycloak-$version" "$dist"
  rmdir "$tmp"
  log "unpacked in $(($(date +%s) - start)) s"
fi

# One start with the test options builds the optimized server into lib/quarkus; later starts
# with the same options skip that step (about 35 s on two cores).
build_start=$(date +%s)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
warm_log="$dest/warm-up.log"
JAVA_HOME="$java_home" KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD=warm-up \
  "$dist/bin/kc.sh" start-dev --db=dev-mem --http-host=127.0.0.1 "--http-port=$port" "--features=$features" >"$warm_log" 2>&1 &
pid=$!
ok=false
for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$port/realms/master/.well-known/openid-configuration" >/dev/null 2>&1; then
    ok=true
    break
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 1
done
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if [ "$ok" != true ]; then
  log "warm-up start failed; last lines of $warm_log:"
  tail -20 "$warm_log" >&2
  exit 1
fi
rm -rf "$dist/data"
echo "$features" > "$dest/.ready"
log "built and started once in $(($(date +%s) - build_start)) s"
echo "$dist"
