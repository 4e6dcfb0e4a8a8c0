# Hookwire. `make run` starts everything; `make test` runs every check. Both set up PostgreSQL
# and RabbitMQ first (Debian packages, as root) when they are missing or stopped.
.PHONY: run stop test deps-up deps-down fmt lint unit migrate ci

run:
	bash scripts/run.sh

stop:
	bash scripts/stop.sh

deps-up:
	bash scripts/deps-up.sh

deps-down:
	-rabbitmqctl stop
	-pg_ctlcluster 15 main stop

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

test: deps-up
	bash scripts/test-deps.sh
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	bash scripts/test.sh

migrate:
	cargo run --locked -p hookwire-registry -- migrate

ci: test
