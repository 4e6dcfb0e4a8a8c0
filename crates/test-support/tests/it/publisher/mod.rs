//! Event ingest as a producer meets it: validation, schemas, batches and every routing rule.

use std::collections::HashMap;
use std::time::Duration;

use hookwire_test_support::{eventually, Receiver, TestEnv, PRODUCER_TOKEN};
use serde_json::{json, Value};

mod catalog;
mod idempotency;
mod routing;
mod validation;
