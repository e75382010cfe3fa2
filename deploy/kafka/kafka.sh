#!/usr/bin/env bash
# Apache Kafka (KRaft, one node) from Maven Central: fetch, start, wait, stop, and operator tools.
#
#   kafka.sh fetch                 jars into deploy/kafka/libs (skipped when already there)
#   kafka.sh start                 format the data dir if new, start in the background, wait
#   kafka.sh run                   same, in the foreground (make run); SIGTERM stops it cleanly
#   kafka.sh wait                  until a metadata request succeeds (bounded by KAFKA_WAIT_S)
#   kafka.sh stop                  SIGTERM, wait (bounded), then SIGKILL
#   kafka.sh tool CLASS ARGS...    run one of Kafka's own command-line tools
#
# Environment: KAFKA_PORT (29092), KAFKA_CONTROLLER_PORT (29093),
# KAFKA_DATA_DIR (.var/kafka), KAFKA_HEAP (512m), KAFKA_WAIT_S (60).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
port=${KAFKA_PORT:-29092}
cport=${KAFKA_CONTROLLER_PORT:-29093}
data=${KAFKA_DATA_DIR:-$root/.var/kafka}
heap=${KAFKA_HEAP:-512m}
wait_s=${KAFKA_WAIT_S:-60}
libs="$here/libs"
pidfile="$data/kafka.pid"

classpath() { echo "$libs/*"; }

fetch() {
  if [ -f "$libs/.complete" ] && [ "$(cat "$libs/.complete")" = "$(sha256sum "$here/pom.xml" | cut -d' ' -f1)" ]; then
    return 0
  fi
  rm -rf "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies
  sha256sum "$here/pom.xml" | cut -d' ' -f1 > "$libs/.complete"
}

java_opts() {
  echo "-Xms$heap -Xmx$heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile=$here/log4j2.yaml -Dkafka.logs.dir=$data/logs"
}

configure() {
  mkdir -p "$data/log" "$data/logs"
  sed -e "s#@DATA_DIR@#$data#g" -e "s#@PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$cport#g" \
    "$here/server.properties.in" > "$data/server.properties"
  if [ ! -f "$data/log/meta.properties" ]; then
    # A cluster id is 16 random bytes in base64url, 22 chars, and must not start with '-'.
    local id
    id=$(python3 -c 'import base64,os
while True:
    s=base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not s.startswith("-"): print(s); break')
    # shellcheck disable=SC2046
    java $(java_opts) -cp "$(classpath)" kafka.tools.StorageTool format \
      -t "$id" -c "$data/server.properties" >/dev/null
  fi
}

ready() {
  # A real request: a metadata round trip through the broker's listener.
  kcat -b "127.0.0.1:$port" -L -m 2 >/dev/null 2>&1
}

wait_ready() {
  local deadline=$(( $(date +%s) + wait_s ))
  until ready; do
    if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "kafka: the broker exited during start-up; see $data/kafka.out" >&2
      tail -20 "$data/kafka.out" >&2 || true
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "kafka: not ready on 127.0.0.1:$port after ${wait_s}s" >&2
      return 1
    fi
    sleep 0.2
  done
}

start() {
  fetch
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    wait_ready
    return 0
  fi
  configure
  # shellcheck disable=SC2046
  nohup java $(java_opts) -cp "$(classpath)" kafka.Kafka "$data/server.properties" \
    > "$data/kafka.out" 2>&1 &
  echo $! > "$pidfile"
  wait_ready
  echo "kafka: ready on 127.0.0.1:$port (data $data)"
}

run() {
  fetch
  configure
  # shellcheck disable=SC2046
  exec java $(java_opts) -cp "$(classpath)" kafka.Kafka "$data/server.properties"
}

stop() {
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pidfile"
}

tool() {
  fetch
  local cls=$1; shift
  # shellcheck disable=SC2046
  java -Xmx256m -Dlog4j2.configurationFile="$here/tools-log4j2.yaml" \
    -cp "$(classpath)" "$cls" "$@"
}

cmd=${1:-}; shift || true
case "$cmd" in
  fetch) fetch ;;
  start) start ;;
  run) run ;;
  wait) wait_ready ;;
  stop) stop ;;
  tool) tool "$@" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
