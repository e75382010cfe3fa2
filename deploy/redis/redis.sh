#!/usr/bin/env bash
# Redis (Debian's redis-server) for Lanyard: start, run, wait, stop.
#
#   redis.sh install   apt-get install redis-server when it is missing
#   redis.sh start     start in the background and wait until PING answers
#   redis.sh run       in the foreground (make run)
#   redis.sh stop      SHUTDOWN (AOF is flushed), bounded, then SIGKILL
#
# Environment: REDIS_PORT (26379), REDIS_DATA_DIR (.var/redis), REDIS_WAIT_S (20).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
port=${REDIS_PORT:-26379}
data=${REDIS_DATA_DIR:-$root/.var/redis}
wait_s=${REDIS_WAIT_S:-20}
pidfile="$data/redis.pid"

install() {
  command -v redis-server >/dev/null && return 0
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
}

configure() {
  mkdir -p "$data"
  sed -e "s#@PORT@#$port#g" -e "s#@DATA_DIR@#$data#g" "$here/redis.conf.in" > "$data/redis.conf"
}

wait_ready() {
  local deadline=$(( $(date +%s) + wait_s ))
  until [ "$(redis-cli -p "$port" ping 2>/dev/null)" = "PONG" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "redis: no PONG on $port after ${wait_s}s" >&2; return 1; fi
    sleep 0.1
  done
}

case "${1:-}" in
  install) install ;;
  start)
    install; configure
    if ! { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
      redis-server "$data/redis.conf" > "$data/redis.out" 2>&1 &
      echo $! > "$pidfile"
    fi
    wait_ready && echo "redis: ready on 127.0.0.1:$port (data $data)" ;;
  run) install; configure; exec redis-server "$data/redis.conf" ;;
  wait) wait_ready ;;
  stop)
    [ -f "$pidfile" ] || exit 0
    pid=$(cat "$pidfile")
    redis-cli -p "$port" shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$pidfile" ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
