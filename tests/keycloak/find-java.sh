#!/usr/bin/env bash
# Prints the home of a Java 21 or newer on this machine: JAVA_HOME if it is one, else the
# newest found on PATH or in the JVM folders Debian and the Temurin packages install into.
# Fails with a message naming what was found when none is new enough.
set -euo pipefail

major() { # the feature version of a java binary, e.g. 25
  "$1" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -1
}

best=""
best_major=0
seen=()
consider() {
  local home=$1
  [ -x "$home/bin/java" ] || return 0
  local m
  m=$(major "$home/bin/java" || true)
  [ -n "$m" ] || return 0
  seen+=("$home ($m)")
  if [ "$m" -gt "$best_major" ]; then best=$home; best_major=$m; fi
}

if [ -n "${JAVA_HOME:-}" ]; then consider "$JAVA_HOME"; fi
if [ "$best_major" -ge 21 ]; then echo "$best"; exit 0; fi
if command -v java >/dev/null; then
  consider "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
fi
for home in /usr/lib/jvm/* /opt/java/* /opt/*jdk* /usr/local/*jdk*; do
  [ -d "$home" ] && consider "$home"
done
if [ "$best_major" -lt 21 ]; then
  echo "find-java: Keycloak needs Java 21 or newer; found: ${seen[*]:-none}" >&2
  exit 1
fi
echo "$best"
