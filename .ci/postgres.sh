#!/usr/bin/env bash
# Install (if needed) and start a throwaway PostgreSQL on 127.0.0.1; print its URL on stdout,
# then on a second line a command that stops it and removes its files (run it at exit: each
# run used to leave a server behind). Everything else goes to stderr.
set -euo pipefail
exec 3>&1 1>&2
# Below the ephemeral range (32768+), so tests binding port 0 cannot take it meanwhile.
port=${IMGCDN_CI_PG_PORT:-25432}
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null
fi
bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
data=$(mktemp -d /tmp/imgcdn-pg.XXXXXX)
chown postgres: "$data" 2>/dev/null || true
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$bin/initdb" -D "$data" -U imgcdn --auth=trust -E UTF8 >/dev/null
# The server must not inherit fd 3 (the caller's $(...) pipe) or the caller never sees EOF.
# Try a few ports: one may be taken by a developer's own server or an earlier run.
for _ in 1 2 3 4 5 6 7 8; do
  if as_pg "$bin/pg_ctl" -D "$data" -l "$data/log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $data" start >/dev/null 2>&1 3>&-; then
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U imgcdn imgcdn_test
    echo "postgresql://imgcdn@127.0.0.1:$port/imgcdn_test" >&3
    {
      declare -f as_pg
      echo "as_pg '$bin/pg_ctl' -D '$data' -m immediate stop >/dev/null 2>&1 || true"
      echo "rm -rf '$data' '$data.stop'"
    } >"$data.stop"
    echo "bash $data.stop" >&3
    exit 0
  fi
  port=$((port + 1))
done
echo "could not start PostgreSQL; see $data/log"
exit 1
