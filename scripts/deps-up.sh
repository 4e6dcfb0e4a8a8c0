#!/usr/bin/env bash
# Installs (Debian packages, as root) and starts PostgreSQL and RabbitMQ when missing or stopped,
# then makes sure the development role, database and vhost exist. Does nothing that is already done.
set -euo pipefail

PG_VERSION=${PG_VERSION:-15}
DB_USER=${HOOKWIRE_DB_USER:-hookwire}
DB_PASS=${HOOKWIRE_DB_PASSWORD:-hookwire}
DB_NAME=${HOOKWIRE_DB_NAME:-hookwire}

log() { printf '[deps] %s\n' "$*"; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [[ $apt_updated -eq 0 ]]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- PostgreSQL ---------------------------------------------------------------------------------
if ! command -v pg_ctlcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt_install postgresql
fi
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^${PG_VERSION} main$"; then
  PG_VERSION=$(pg_lsclusters -h | awk 'NR==1{print $1}')
  [[ -n $PG_VERSION ]] || { as_root pg_createcluster 15 main >/dev/null; PG_VERSION=15; }
fi
if ! pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main" {print $4}' | grep -q online; then
  log "starting PostgreSQL ${PG_VERSION}"
  as_root pg_ctlcluster "$PG_VERSION" main start
fi
for _ in $(seq 1 30); do
  as_root runuser -u postgres -- pg_isready -q && break
  sleep 0.5
done
psql_admin() { as_root runuser -u postgres -- psql -qtAX -v ON_ERROR_STOP=1 "$@"; }
if [[ $(psql_admin -c "select 1 from pg_roles where rolname='${DB_USER}'") != 1 ]]; then
  log "creating role ${DB_USER}"
  # CREATEDB lets the test suite create one scratch database per test run.
  psql_admin -c "create role ${DB_USER} login createdb password '${DB_PASS}'"
fi
if [[ $(psql_admin -c "select 1 from pg_database where datname='${DB_NAME}'") != 1 ]]; then
  log "creating database ${DB_NAME}"
  psql_admin -c "create database ${DB_NAME} owner ${DB_USER}"
fi

# --- RabbitMQ -----------------------------------------------------------------------------------
as_root mkdir -p /etc/rabbitmq
if ! command -v rabbitmqctl >/dev/null; then
  # A fixed node name keeps the node's data usable when the machine's hostname changes.
  grep -qs '^NODENAME=' /etc/rabbitmq/rabbitmq-env.conf ||
    echo 'NODENAME=rabbit@localhost' | as_root tee -a /etc/rabbitmq/rabbitmq-env.conf >/dev/null
  apt_install rabbitmq-server
fi
# The Erlang VM's schedulers spin while idle by default; on a machine whose cores are shared with
# the services (development, CI, the benchmarks) that spinning takes CPU from everything else.
# Takes effect at the node's next start (docs/operations.md, "PostgreSQL and RabbitMQ for development").
grep -qs '^SERVER_ADDITIONAL_ERL_ARGS=' /etc/rabbitmq/rabbitmq-env.conf ||
  echo 'SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none"' |
  as_root tee -a /etc/rabbitmq/rabbitmq-env.conf >/dev/null
# RabbitMQ runs as its user through su or runuser, whose PAM session sets the limit of open files
# (1,024 here unless told): every connection is a file, the test suite's many services come close
# to that, and a node out of them stops accepting and closing connections. So the `rabbitmq` user
# gets the machine's hard limit (the nodes of scripts/cluster.sh and tls-up.sh too) from their
# next start.
limits=/etc/security/limits.d/hookwire-rabbitmq.conf
want="rabbitmq - nofile $(ulimit -Hn)"
[[ $(cat "$limits" 2>/dev/null) == "$want" ]] || echo "$want" | as_root tee "$limits" >/dev/null
if ! as_root rabbitmqctl -q status >/dev/null 2>&1; then
  log "starting RabbitMQ"
  as_root rabbitmq-server -detached
  for _ in $(seq 1 60); do
    as_root rabbitmqctl -q await_startup >/dev/null 2>&1 && break
    sleep 1
  done
  as_root rabbitmqctl -q await_startup
fi
log "PostgreSQL and RabbitMQ are up"
