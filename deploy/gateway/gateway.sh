#!/usr/bin/env bash
# nginx (Debian's package) as Lanyard's gateway.
#
#   gateway.sh install   apt-get install nginx when it is missing
#   gateway.sh run       in the foreground (make run)
#   gateway.sh start     in the background, then wait until /_health/gateway answers
#   gateway.sh stop      SIGQUIT (graceful), bounded, then SIGKILL
#
# Environment: GATEWAY_PORT (8480), GATEWAY_DATA_DIR (.var/gateway), GATEWAY_TEMP_BASE (/tmp), and
# the upstream ports LANYARD_IDP_HTTP_PORT (8101), LANYARD_SESSION_HTTP_PORT (8102),
# LANYARD_POLICY_HTTP_PORT (8103), LANYARD_AUDIT_HTTP_PORT (8104), LANYARD_CONSOLE_HTTP_PORT (8105).
# The apple-app-site-association lists LANYARD_AASA_APP_IDS (comma-separated TEAMID.bundle-id), by
# default the Locker SSO extension the IdP's .mobileconfig names:
# LANYARD_IDP_SSO_EXTENSION_TEAM_IDENTIFIER.LANYARD_IDP_SSO_EXTENSION_IDENTIFIER.
#
# nginx's temporary files (request bodies over its memory buffer, large upstream answers) are
# written by its workers, which run as `nobody` when nginx starts as root: a checkout inside a
# private (0700) directory is closed to them, and such requests failed with 500. They get a
# directory of their own instead, made per start under GATEWAY_TEMP_BASE (mktemp, then 0711 so the
# workers can enter it; nginx creates the subdirectories owned by the worker user, mode 0700), and
# removed again by `stop` (or by the next start, after `run` ends with the terminal).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
port=${GATEWAY_PORT:-8480}
data=${GATEWAY_DATA_DIR:-$root/.var/gateway}
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
temp_record="$data/temp_dir"

install() {
  [ -x "$nginx_bin" ] && return 0
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
}

aasa_apps() {  # the ids as a JSON list body; each must look like an Apple app id
  local ids=${LANYARD_AASA_APP_IDS:-${LANYARD_IDP_SSO_EXTENSION_TEAM_IDENTIFIER:-LANYARD000}.${LANYARD_IDP_SSO_EXTENSION_IDENTIFIER:-dev.lanyard.locker.ssoextension}}
  local out="" id
  IFS=, read -ra list <<< "$ids"
  for id in "${list[@]}"; do
    [[ "$id" =~ ^[A-Z0-9]{10}\.[A-Za-z0-9.-]+$ ]] || { echo "gateway: bad app id in LANYARD_AASA_APP_IDS: $id" >&2; exit 2; }
    out="$out${out:+,}\"$id\""
  done
  printf '%s' "$out"
}

drop_temp() {  # the temporary directory of the previous start, if it is still there
  [ -f "$temp_record" ] || return 0
  local old
  old=$(cat "$temp_record")
  case "$old" in */lanyard-gateway.*) rm -rf -- "$old" ;; esac
  rm -f "$temp_record"
}

configure() {
  mkdir -p "$data"
  local apps; apps=$(aasa_apps)
  drop_temp
  temp=$(mktemp -d "${GATEWAY_TEMP_BASE:-/tmp}/lanyard-gateway.XXXXXX")
  chmod 0711 "$temp"
  echo "$temp" > "$temp_record"
  sed -e "s#@PORT@#$port#g" -e "s#@DATA_DIR@#$data#g" -e "s#@TEMP_DIR@#$temp#g" -e "s#@AASA_APPS@#$apps#g" \
      -e "s#@IDP_PORT@#${LANYARD_IDP_HTTP_PORT:-8101}#g" \
      -e "s#@SESSION_PORT@#${LANYARD_SESSION_HTTP_PORT:-8102}#g" \
      -e "s#@POLICY_PORT@#${LANYARD_POLICY_HTTP_PORT:-8103}#g" \
      -e "s#@AUDIT_PORT@#${LANYARD_AUDIT_HTTP_PORT:-8104}#g" \
      -e "s#@CONSOLE_PORT@#${LANYARD_CONSOLE_HTTP_PORT:-8105}#g" \
      "$here/nginx.conf.in" > "$data/nginx.conf"
}

case "${1:-}" in
  install) install ;;
  run) install; configure; exec "$(command -v nginx || echo /usr/sbin/nginx)" -p "$data" -c "$data/nginx.conf" ;;
  start)
    install; configure
    "$(command -v nginx || echo /usr/sbin/nginx)" -p "$data" -c "$data/nginx.conf" > "$data/nginx.out" 2>&1 &
    for _ in $(seq 1 100); do
      curl -fsS "http://127.0.0.1:$port/_health/gateway" >/dev/null 2>&1 && { echo "gateway: ready on 127.0.0.1:$port"; exit 0; }
      sleep 0.1
    done
    echo "gateway: not answering on $port" >&2; exit 1 ;;
  stop)
    [ -f "$data/nginx.pid" ] || { drop_temp; exit 0; }
    pid=$(cat "$data/nginx.pid")
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" || true
    drop_temp ;;
  *) sed -n '2,18p' "$0"; exit 2 ;;
esac
