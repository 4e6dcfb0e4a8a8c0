# Hookwire. `make run` starts everything; `make test` runs every check. Both set up PostgreSQL
# and RabbitMQ first (Debian packages, as root) when they are missing or stopped.
.PHONY: run stop test bench fuzz deploy-check deps-up deps-down cluster-up cluster-down fmt lint unit migrate ci

run:
	bash scripts/run.sh

stop:
	bash scripts/stop.sh

bench:
	bash scripts/bench.sh

# The API fuzzed deeper than `make test` does: 1,000 examples per operation (docs/api-fuzzing.md).
fuzz: deps-up
	bash scripts/test-deps.sh
	HOOKWIRE_FUZZ_EXAMPLES=$${HOOKWIRE_FUZZ_EXAMPLES:-1000} cargo test --locked -p hookwire-test-support --test it -- fuzz --nocapture

deps-up:
	bash scripts/deps-up.sh

deps-down:
	-rabbitmqctl stop
	-pg_ctlcluster 15 main stop

# A three-node RabbitMQ cluster on this machine (ports 5701-5703), beside the system node.
cluster-up: deps-up
	bash scripts/cluster.sh up

cluster-down:
	bash scripts/cluster.sh down

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

deploy-check:
	bash scripts/deploy-check.sh

test: deps-up
	bash scripts/test-deps.sh
	bash scripts/deploy-check.sh
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	bash scripts/test.sh

migrate:
	cargo run --locked -p hookwire-registry -- migrate

ci: test
