#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this one machine (`make cluster-up`, `make cluster-down`), for
# the cluster tests and for trying failover by hand: nodes hw1@localhost, hw2@localhost and
# hw3@localhost on AMQP ports 5701, 5702 and 5703, beside the system node (5672), which is left
# alone. Quorum queues get a replica on each node; the `balanced` policy spreads their leaders.
# Runs as root after scripts/deps-up.sh. `up` does nothing that is already done; `down` stops the
# nodes and keeps their data; `reset` also deletes it.
#   bash scripts/cluster.sh up|down|reset|url
set -euo pipefail

BASE=${HOOKWIRE_CLUSTER_DIR:-/var/lib/hookwire-cluster}
NODES=(1 2 3)
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
log() { printf '[cluster] %s\n' "$*"; }
node() { echo "hw$1@localhost"; }
ctl() { local n=$1; shift; as_root rabbitmqctl -q -n "$(node "$n")" "$@"; }
pidfile() { echo "$BASE/hw$1/mnesia/$(node "$1").pid"; }
running() { ctl "$1" status >/dev/null 2>&1; }

start_node() {
  local n=$1 d=$BASE/hw$1
  as_root install -d -o rabbitmq -g rabbitmq "$d" "$d/mnesia" "$d/log"
  [[ -f $d/rabbitmq.conf ]] || {
    printf 'loopback_users = none\n' | as_root tee "$d/rabbitmq.conf" >/dev/null
    echo '[].' | as_root tee "$d/enabled_plugins" >/dev/null
    as_root chown rabbitmq:rabbitmq "$d/rabbitmq.conf" "$d/enabled_plugins"
  }
  # runuser's PAM session gives it the open-file limit scripts/deps-up.sh sets for `rabbitmq`.
  as_root runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq RABBITMQ_NODENAME="$(node "$n")" \
    RABBITMQ_NODE_PORT=570$n RABBITMQ_DIST_PORT=2570$n RABBITMQ_MNESIA_BASE="$d/mnesia" \
    RABBITMQ_LOG_BASE="$d/log" RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none" \
    /usr/lib/rabbitmq/bin/rabbitmq-server -detached
}

case ${1:-up} in
  up)
    started=()
    # Started together: a node of an existing cluster waits for its peers' tables.
    for n in "${NODES[@]}"; do
      running "$n" || { log "starting $(node "$n") on port 570$n"; start_node "$n"; started+=("$n"); }
    done
    for n in "${started[@]}"; do ctl "$n" wait "$(pidfile "$n")" --timeout 90 >/dev/null; done
    for n in 2 3; do
      if ! ctl 1 cluster_status --formatter json | grep -q "$(node "$n")"; then
        log "joining $(node "$n") to $(node 1)"
        ctl "$n" stop_app
        ctl "$n" join_cluster "$(node 1)"
        ctl "$n" start_app
      fi
    done
    ctl 1 set_policy --apply-to queues hookwire-balanced '.*' '{"queue-leader-locator":"balanced"}' >/dev/null
    log "three nodes up: $(bash "$0" url)"
    ;;
  down)
    for n in "${NODES[@]}"; do
      if running "$n"; then log "stopping $(node "$n")"; ctl "$n" stop "$(pidfile "$n")"; fi
    done
    ;;
  reset)
    bash "$0" down
    as_root rm -rf "$BASE"
    ;;
  url)
    echo "amqp://guest:guest@127.0.0.1:5701/%2f,amqp://guest:guest@127.0.0.1:5702/%2f,amqp://guest:guest@127.0.0.1:5703/%2f"
    ;;
  *)
    echo "usage: $0 up|down|reset|url" >&2
    exit 2
    ;;
esac
