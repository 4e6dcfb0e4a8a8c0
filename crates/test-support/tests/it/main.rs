//! End-to-end tests: the three services against the real PostgreSQL and RabbitMQ.

mod delivery;
mod registry_api;
