#!/usr/bin/env bash
# `make run`: the whole local stack in the foreground with readable, prefixed logs.
# Kafka, Redis, the four services and the gateway; Ctrl-C (or SIGTERM) stops all of it, in
# reverse order, and waits for each, so nothing is left running.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:29092}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:26379/0}
export LANYARD_PUBLIC_BASE_URL=${LANYARD_PUBLIC_BASE_URL:-http://127.0.0.1:8480}
export LANYARD_IDP_LOG_JSON=${LANYARD_IDP_LOG_JSON:-false} LANYARD_SESSION_LOG_JSON=${LANYARD_SESSION_LOG_JSON:-false}
export LANYARD_POLICY_LOG_JSON=${LANYARD_POLICY_LOG_JSON:-false} LANYARD_AUDIT_LOG_JSON=${LANYARD_AUDIT_LOG_JSON:-false}
SERVICES=(policy session idp audit)
pids=()

prefixed() {  # name command...: run a command with every output line prefixed by its name
  local name=$1; shift
  ( "$@" 2>&1 | sed -u "s/^/$(printf '%-8s' "$name")| /" ) &
  pids+=($!)
}

stop_all() {
  trap - INT TERM
  echo "run: stopping…"
  "$here/gateway/gateway.sh" stop >/dev/null 2>&1
  pkill -TERM -f "python -m lanyard\.(idp|session|policy|audit)" 2>/dev/null
  redis-cli -p "${REDIS_URL##*:}" shutdown >/dev/null 2>&1 || true
  pkill -TERM -f "kafka\.Kafka $root/.var/kafka" 2>/dev/null
  for _ in $(seq 1 150); do
    pgrep -f "python -m lanyard\.|kafka\.Kafka $root/.var/kafka|redis-server 127.0.0.1:${REDIS_URL##*:}" >/dev/null || break
    sleep 0.2
  done
  pkill -KILL -f "python -m lanyard\.|kafka\.Kafka $root/.var/kafka" 2>/dev/null
  wait 2>/dev/null
  echo "run: stopped"
  exit 0
}
trap stop_all INT TERM

wait_http() {  # url seconds
  local deadline=$(( $(date +%s) + $2 ))
  until curl -fsS "$1" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$deadline" ] && { echo "run: $1 did not answer within $2 s" >&2; return 1; }
    sleep 0.2
  done
}

prefixed kafka "$here/kafka/kafka.sh" run
prefixed redis "$here/redis/redis.sh" run
KAFKA_PORT=${KAFKA_BOOTSTRAP_SERVERS##*:} KAFKA_WAIT_S=90 "$here/kafka/kafka.sh" wait || stop_all
"$here/redis/redis.sh" wait || stop_all
for svc in "${SERVICES[@]}"; do
  prefixed "$svc" uv run --no-sync python -m "lanyard.$svc"
done
prefixed gateway "$here/gateway/gateway.sh" run
for svc in "${SERVICES[@]}"; do
  wait_http "http://127.0.0.1:8480/_health/$svc" 90 || true
done
echo "run: stack is up — gateway http://127.0.0.1:8480 (health: /_health/<service>); Ctrl-C stops it"
wait
