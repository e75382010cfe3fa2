#!/usr/bin/env bash
# `make run`: the whole local stack in the foreground with readable, prefixed logs.
# Kafka, Redis, the four services, the admin console and the gateway; then (unless DEMO=0) the demo enterprise,
# seeded on first start only through the gateway's admin APIs (secrets in .var/demo.json), and
# the demo relying party rover-demo beside the stack. Ctrl-C (or SIGTERM) stops all of it in
# reverse order and waits for each process it started (only those: it tracks their pids).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:29092}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:26379/0}
export LANYARD_PUBLIC_BASE_URL=${LANYARD_PUBLIC_BASE_URL:-http://127.0.0.1:8480}
for svc in IDP SESSION POLICY AUDIT CONSOLE; do export "LANYARD_${svc}_LOG_JSON=${LOG_JSON:-false}"; done
for svc in IDP SESSION POLICY AUDIT; do
  # Static group membership: a service restarted after a crash gets its partitions back at once.
  instance="LANYARD_${svc}_CONSUMER_INSTANCE"
  export "$instance=${!instance:-${svc,,}@$(hostname)}"
done
SERVICES=(policy session idp audit)
DEMO=${DEMO:-1}
DEMO_FILE=${LANYARD_DEMO_FILE:-$root/.var/demo.json}
ROVER_DEMO_PORT=${ROVER_DEMO_PORT:-8490}
names=() pids=()

start() {  # name command...: start in the background, every output line prefixed with the name
  local name=$1; shift
  # Ctrl-C signals the whole foreground process group. The prefixer ignores it and ends when its
  # process closes the pipe: one that died with the Ctrl-C would drop every shutdown line and
  # leave the process writing to a broken pipe while it stops.
  "$@" > >(trap '' INT; exec sed -u "s/^/$(printf '%-8s' "$name")| /") 2>&1 &
  names+=("$name"); pids+=($!)
}

stopping=0
stop_all() {
  [ "$stopping" = 1 ] && return; stopping=1
  trap '' INT TERM
  echo "run: stopping…"
  local i pid
  for (( i=${#pids[@]}-1; i>=0; i-- )); do
    pid=${pids[$i]}
    case "${names[$i]}" in
      gateway) kill -QUIT "$pid" 2>/dev/null ;;  # nginx: graceful
      *) kill -TERM "$pid" 2>/dev/null ;;
    esac
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "run: ${names[$i]} did not stop in 10 s; killing it"; kill -KILL "$pid" 2>/dev/null
    fi
  done
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

start kafka "$here/kafka/kafka.sh" run
start redis "$here/redis/redis.sh" run
KAFKA_PORT=${KAFKA_BOOTSTRAP_SERVERS##*:} KAFKA_WAIT_S=90 "$here/kafka/kafka.sh" wait || stop_all
"$here/redis/redis.sh" wait || stop_all
for svc in "${SERVICES[@]}"; do
  # exec: the pid we track is the service itself, not a wrapper.
  start "$svc" "$root/.venv/bin/python" -m "lanyard.$svc"
done
start console "$root/.venv/bin/python" -m lanyard.console
start gateway "$here/gateway/gateway.sh" run
up=1
for svc in "${SERVICES[@]}"; do wait_http "http://127.0.0.1:8480/_health/$svc" 120 || up=0; done
wait_http "http://127.0.0.1:8480/console/health/ready" 120 || up=0
if [ "$up" = 1 ]; then
  echo "run: stack is up — gateway http://127.0.0.1:8480 (health: /_health/<service>); Ctrl-C stops it"
  echo "run: admin console ${LANYARD_PUBLIC_BASE_URL}/console/ (sign in as a superadmin with password and TOTP; see docs/console.md)"
else
  echo "run: some services are not ready (see above); Ctrl-C stops the stack"
fi
if [ "$up" = 1 ] && [ "$DEMO" != 0 ]; then
  # First start only: `demo seed` finds a complete seed and does nothing (it also finishes one
  # that a stop interrupted). The demo relying party needs the seed's client credentials.
  if "$root/.venv/bin/lanyard" demo seed --quiet --file "$DEMO_FILE" --gateway "$LANYARD_PUBLIC_BASE_URL" \
       --rover-demo-url "http://127.0.0.1:$ROVER_DEMO_PORT"; then
    start rover-demo "$root/.venv/bin/python" -m lanyard.rover_demo --demo-file "$DEMO_FILE" --port "$ROVER_DEMO_PORT"
    wait_http "http://127.0.0.1:$ROVER_DEMO_PORT/health" 30 || echo "run: rover-demo did not start (see above)"
    "$root/.venv/bin/lanyard" demo info --file "$DEMO_FILE" | sed "s/^/run     | /"
  else
    echo "run: the demo seed failed (see above); the stack runs without it (DEMO=0 skips the seed)"
  fi
fi
while true; do wait -n 2>/dev/null || sleep 1; done
