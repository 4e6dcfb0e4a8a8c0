#!/usr/bin/env bash
# What the test suite needs beyond PostgreSQL and RabbitMQ: the reference Standard Webhooks
# library (Python), which the end-to-end tests use to verify real deliveries; schemathesis,
# which fuzzes the management API from its OpenAPI document; and openapi-python-client, which
# generates the client a test scenario runs with; Chromium and its WebDriver, which the console's
# tests drive headless; the TLS-only RabbitMQ node and PostgreSQL cluster (scripts/tls-up.sh);
# and a three-node RabbitMQ cluster (scripts/cluster.sh).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "[deps] installing chromium and chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
if ! python3 -c 'import standardwebhooks' 2>/dev/null; then
  echo "[deps] installing the standardwebhooks Python library"
  python3 -m pip install --quiet --disable-pip-version-check standardwebhooks
fi
if ! command -v schemathesis >/dev/null 2>&1; then
  echo "[deps] installing schemathesis"
  python3 -m pip install --quiet --disable-pip-version-check schemathesis
fi
if ! command -v openapi-python-client >/dev/null 2>&1; then
  echo "[deps] installing openapi-python-client"
  python3 -m pip install --quiet --disable-pip-version-check openapi-python-client
fi
# The AMQPS-only RabbitMQ node and the TLS-only PostgreSQL cluster of the TLS tests, and the
# three-node RabbitMQ cluster of the cluster test.
bash "$(dirname "$0")/tls-up.sh"
bash "$(dirname "$0")/cluster.sh" up
