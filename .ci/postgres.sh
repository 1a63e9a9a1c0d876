#!/usr/bin/env bash
# Install (if needed) and start a throwaway PostgreSQL on 127.0.0.1; print its URL on stdout.
# Everything else goes to stderr so the caller can capture the URL.
set -euo pipefail
exec 3>&1 1>&2
port=${IMGCDN_CI_PG_PORT:-55432}
# Skip ports already taken (a developer's own server, an earlier run).
while (exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null
fi
bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
data=$(mktemp -d /tmp/imgcdn-pg.XXXXXX)
chown postgres: "$data" 2>/dev/null || true
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$bin/initdb" -D "$data" -U imgcdn --auth=trust -E UTF8 >/dev/null
as_pg "$bin/pg_ctl" -D "$data" -l "$data/log" -w -o "-c listen_addresses=127.0.0.1 -p $port -k $data" start >/dev/null
as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U imgcdn imgcdn_test
echo "postgresql://imgcdn@127.0.0.1:$port/imgcdn_test" >&3
