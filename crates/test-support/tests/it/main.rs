//! End-to-end tests: the three services against the real PostgreSQL and RabbitMQ.

mod acks;
mod audit;
mod broker;
mod cli;
mod client;
mod cluster;
mod console;
mod credentials;
mod delivery;
mod delivery_ops;
mod docs;
mod fuzz;
mod groups;
mod isolation;
mod lanes;
mod observability;
mod ordering;
mod portal_sessions;
mod producer_tokens;
mod publisher;
mod registry_api;
mod scaling;
mod shards;
mod tls;
