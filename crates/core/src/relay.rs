//! The relay of `hookwire listen`: a webhook whose URL is `hookwire-relay://<listen id>` is not
//! posted to over HTTP. The dispatcher publishes the signed request to the relay exchange (routing
//! key: the listen id) with `reply_to` and `correlation_id`; the registry streams it to the CLI
//! that holds the listen session, and publishes the CLI's answer back to `reply_to`. Carried by
//! the broker, it works with any number of registries and dispatchers.

use serde::{Deserialize, Serialize};

/// The URL scheme of relayed webhooks. Only the registry makes such URLs (`POST /v1/listen`).
pub const SCHEME: &str = "hookwire-relay";

/// The listen id a relayed webhook's URL names, if it is one.
pub fn listen_id(url: &str) -> Option<&str> {
    url.strip_prefix(SCHEME)?
        .strip_prefix("://")
        .map(|rest| rest.trim_end_matches('/'))
}

/// The URL of the webhook that relays to listen session `id`.
pub fn url(id: &uuid::Uuid) -> String {
    format!("{SCHEME}://{id}")
}

/// `kind` of a [`RelayRequest`] (`proto/relay_request.v1.schema.json`).
pub const REQUEST_KIND: &str = "relay_request.v1";
/// `kind` of a [`RelayReply`] (`proto/relay_reply.v1.schema.json`).
pub const REPLY_KIND: &str = "relay_reply.v1";

/// A signed request, as the dispatcher would have sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayRequest {
    /// [`REQUEST_KIND`].
    pub kind: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// What the listening CLI made of a request: the local receiver's answer, or why there was none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayReply {
    /// [`REPLY_KIND`].
    pub kind: String,
    pub status: Option<u16>,
    pub body: Option<String>,
    /// `code: message`, as a dispatcher's failed attempt, e.g. `connect: connection refused`.
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_messages_carry_what_their_schemas_in_proto_require() {
        let request = RelayRequest {
            kind: REQUEST_KIND.into(),
            headers: vec![("webhook-id".into(), "x".into())],
            body: "{}".into(),
        };
        let reply = RelayReply {
            kind: REPLY_KIND.into(),
            status: Some(200),
            body: None,
            error: None,
            duration_ms: 1,
        };
        for (name, value) in [
            (REQUEST_KIND, serde_json::to_value(&request).unwrap()),
            (REPLY_KIND, serde_json::to_value(&reply).unwrap()),
        ] {
            let path = format!("{}/../../proto/{name}.schema.json", env!("CARGO_MANIFEST_DIR"));
            let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for field in schema["required"].as_array().unwrap() {
                assert!(value.get(field.as_str().unwrap()).is_some(), "{name} lacks {field}");
            }
            assert_eq!(value["kind"], name);
        }
    }

    #[test]
    fn only_relay_urls_name_a_listen_id() {
        let id = uuid::Uuid::nil();
        assert_eq!(super::listen_id(&super::url(&id)), Some(id.to_string().as_str()));
        assert_eq!(super::listen_id("https://example.com/hook"), None);
        assert_eq!(super::listen_id("hookwire-relayx://a"), None);
    }
}
