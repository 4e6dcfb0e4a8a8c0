//! Rows and the queries over them. Tenant-owned rows are only ever read through functions that
//! take the tenant id, so an unscoped query is the hard one to write. One file per entity;
//! every type is re-exported here.

mod admin_token;
mod api_key;
mod audit_entry;
mod delivery;
mod event;
mod event_type;
mod listen_session;
mod portal_session;
mod producer_token;
mod tenant;
mod webhook;

pub use admin_token::*;
pub use api_key::*;
pub use audit_entry::*;
pub use delivery::*;
pub use event::*;
pub use event_type::*;
pub use listen_session::*;
pub use portal_session::*;
pub use producer_token::*;
pub use tenant::*;
pub use webhook::*;

pub use crate::pagination::{Count, Page};
