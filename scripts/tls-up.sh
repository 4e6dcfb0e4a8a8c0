#!/usr/bin/env bash
# What the TLS tests connect to (docs/security.md, "TLS"): a certificate authority made here, a
# RabbitMQ node that speaks only AMQPS and requires a client certificate (port 5771), and a
# PostgreSQL cluster that accepts only TLS (port 5433). The server certificates name `localhost`
# only, so a connection to 127.0.0.1 fails `verify-full` and passes `verify-ca`. Runs as root
# after scripts/deps-up.sh; does nothing that is already done. `scripts/tls-up.sh down` stops both.
set -euo pipefail

DIR=${HOOKWIRE_TEST_TLS_DIR:-/var/lib/hookwire-tls}
NODE=hwtls@localhost
AMQPS_PORT=5771
PG_PORT=5433
PG_CLUSTER=hwtls
DB_USER=${HOOKWIRE_DB_USER:-hookwire}
DB_PASS=${HOOKWIRE_DB_PASSWORD:-hookwire}

log() { printf '[tls] %s\n' "$*"; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
node_ctl() { as_root rabbitmqctl -q -n "$NODE" "$@"; }

if [[ ${1:-} == down ]]; then
  # `rabbitmqctl stop` of a node that is not running can hang: ask first.
  if timeout 20 rabbitmqctl -q -n "$NODE" status >/dev/null 2>&1; then
    as_root timeout 60 rabbitmqctl -q -n "$NODE" stop "$DIR/rabbitmq/mnesia/$NODE.pid" 2>/dev/null || true
  fi
  as_root pg_ctlcluster 15 "$PG_CLUSTER" stop 2>/dev/null || true
  exit 0
fi

# --- Certificates ---------------------------------------------------------------------------------
if ! command -v openssl >/dev/null; then
  log "installing openssl"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl >/dev/null
fi
as_root mkdir -p "$DIR"
# Guarded by the last file this step installs, so a run stopped half-way is finished next time.
if [[ ! -s $DIR/postgres/server.key ]]; then
  log "making a certificate authority and certificates in $DIR"
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    for ca in ca other-ca; do
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Hookwire test $ca" \
        -keyout "$ca.key" -out "$ca.pem" 2>/dev/null
    done
    sign() { # name, subject, extensions
      openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key.rsa" -out "$1.csr" 2>/dev/null
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
      # PKCS#8, the form the services read.
      openssl pkcs8 -topk8 -nocrypt -in "$1.key.rsa" -out "$1.key"
    }
    sign server localhost "subjectAltName=DNS:localhost
extendedKeyUsage=serverAuth"
    sign client hookwire "extendedKeyUsage=clientAuth"
  )
  as_root cp "$tmp"/{ca.pem,other-ca.pem,server.pem,server.key,client.pem,client.key} "$DIR/"
  rm -rf "$tmp"
  # The servers read their key as their own user; the tests (root) read everything.
  as_root install -d -o rabbitmq -g rabbitmq "$DIR/rabbitmq"
  as_root install -o rabbitmq -g rabbitmq -m 0600 "$DIR/server.key" "$DIR/rabbitmq/server.key"
  as_root install -d -o postgres -g postgres "$DIR/postgres"
  as_root install -o postgres -g postgres -m 0600 "$DIR/server.key" "$DIR/postgres/server.key"
  as_root chmod 0644 "$DIR"/*.pem
fi

# --- RabbitMQ: AMQPS only, client certificate required ----------------------------------------------
if ! node_ctl status >/dev/null 2>&1; then
  log "starting RabbitMQ node $NODE (AMQPS on $AMQPS_PORT)"
  R=$DIR/rabbitmq
  as_root install -d -o rabbitmq -g rabbitmq "$R/mnesia" "$R/log"
  as_root tee "$R/rabbitmq.conf" >/dev/null <<EOF
listeners.tcp = none
listeners.ssl.default = $AMQPS_PORT
ssl_options.cacertfile = $DIR/ca.pem
ssl_options.certfile = $DIR/server.pem
ssl_options.keyfile = $R/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
EOF
  echo '[].' | as_root tee "$R/enabled_plugins" >/dev/null
  as_root chown rabbitmq:rabbitmq "$R/rabbitmq.conf" "$R/enabled_plugins"
  # runuser's PAM session gives it the open-file limit scripts/deps-up.sh sets for `rabbitmq`.
  as_root runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq RABBITMQ_NODENAME="$NODE" \
    RABBITMQ_NODE_PORT=$((AMQPS_PORT + 1)) RABBITMQ_DIST_PORT=2$AMQPS_PORT \
    RABBITMQ_MNESIA_BASE="$R/mnesia" RABBITMQ_LOG_BASE="$R/log" RABBITMQ_CONFIG_FILE="$R/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$R/enabled_plugins" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none" \
    /usr/lib/rabbitmq/bin/rabbitmq-server -detached
  node_ctl wait "$R/mnesia/$NODE.pid" --timeout 60 >/dev/null
fi

# --- PostgreSQL: TLS only ---------------------------------------------------------------------------
if ! pg_lsclusters -h | awk -v c="$PG_CLUSTER" '$2==c' | grep -q .; then
  log "creating PostgreSQL cluster $PG_CLUSTER (TLS only, port $PG_PORT)"
  as_root pg_createcluster 15 "$PG_CLUSTER" -p "$PG_PORT" -d "$DIR/postgres/data" >/dev/null
  conf=/etc/postgresql/15/$PG_CLUSTER
  as_root mkdir -p "$conf/conf.d"
  as_root tee "$conf/conf.d/tls.conf" >/dev/null <<EOF
listen_addresses = 'localhost'
ssl = on
ssl_cert_file = '$DIR/server.pem'
ssl_key_file = '$DIR/postgres/server.key'
ssl_ca_file = '$DIR/ca.pem'
EOF
  as_root tee "$conf/pg_hba.conf" >/dev/null <<EOF
local all postgres peer
hostssl all all 127.0.0.1/32 scram-sha-256
hostssl all all ::1/128 scram-sha-256
EOF
fi
if ! pg_lsclusters -h | awk -v c="$PG_CLUSTER" '$2==c {print $4}' | grep -q online; then
  log "starting PostgreSQL cluster $PG_CLUSTER"
  as_root pg_ctlcluster 15 "$PG_CLUSTER" start
fi
psql_tls() { as_root runuser -u postgres -- psql -p "$PG_PORT" -qtAX -v ON_ERROR_STOP=1 "$@"; }
if [[ $(psql_tls -c "select 1 from pg_roles where rolname='${DB_USER}'") != 1 ]]; then
  psql_tls -c "create role ${DB_USER} login createdb password '${DB_PASS}'"
fi
log "AMQPS on localhost:$AMQPS_PORT and PostgreSQL (TLS only) on localhost:$PG_PORT are up"
