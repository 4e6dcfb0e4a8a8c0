#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod resources;

/// The API's types, re-exported so a program needs this one dependency.
pub use hookwire_api as api;

use bytes::Bytes;
use hookwire_api::Problem;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// An HTTP/1 client for http and https URLs (webpki roots): the API's, and `listen`'s to the
/// local receiver.
pub type HttpClient = Hyper<Connector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    // Idle connections are dropped before a server's keep-alive ends (Hookwire's: 5 s), so a
    // request never goes out on a connection the server is closing.
    Hyper::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(3))
        .build(connector)
}

/// How a request proves who sends it.
#[derive(Debug, Clone)]
pub enum Auth {
    ApiKey(String),
    /// The admin token or a producer token.
    Bearer(String),
    None,
}

/// A failed call: what the server said, or why it could not be reached.
#[derive(Debug)]
pub enum ApiError {
    Answer {
        status: u16,
        problem: Option<Problem>,
        text: String,
    },
    Unreachable(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Answer {
                status,
                problem: Some(p),
                ..
            } => {
                write!(f, "{status} {} ({}): {}", p.title, p.code(), p.detail)?;
                for e in p.errors.iter().flatten() {
                    write!(f, "\n  {}: {}", e.field, e.message)?;
                }
                Ok(())
            }
            Self::Answer { status, text, .. } => write!(f, "{status}: {text}"),
            Self::Unreachable(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// The HTTP status of an answer; None when the server was not reached.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Answer { status, .. } => Some(*status),
            Self::Unreachable(_) => None,
        }
    }

    /// The problem's stable code (`validation_failed`, `not_found` …), when the answer had one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Answer { problem: Some(p), .. } => Some(p.code()),
            _ => None,
        }
    }
}

/// One service's API: its base URL and credential.
#[derive(Clone)]
pub struct Client {
    http: HttpClient,
    base: String,
    auth: Auth,
    user_agent: String,
}

impl Client {
    /// A client of the service at `base` (`https://hookwire.example.com`), sending `auth`.
    pub fn new(base: &str, auth: Auth) -> Self {
        Self {
            http: http_client(),
            base: base.trim_end_matches('/').to_owned(),
            auth,
            user_agent: concat!("hookwire-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// Names the program in `User-Agent` (default `hookwire-client/<version>`).
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Sends `method path` with a JSON `body`; the answer's body, unparsed, on a 2xx.
    pub async fn raw(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<(u16, Incoming), ApiError> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header("accept", "application/json")
            .header("user-agent", &self.user_agent);
        req = match &self.auth {
            Auth::ApiKey(key) => req.header("x-api-key", key),
            Auth::Bearer(token) => req.header("authorization", format!("Bearer {token}")),
            Auth::None => req,
        };
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ApiError::Unreachable(format!("{url}: {e}")))?;
        let res = self
            .http
            .request(req)
            .await
            .map_err(|e| ApiError::Unreachable(format!("cannot reach {url}: {}", root_cause(&e))))?;
        let status = res.status().as_u16();
        if (200..300).contains(&status) {
            return Ok((status, res.into_body()));
        }
        let bytes = res
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Err(ApiError::Answer {
            status,
            problem: serde_json::from_slice(&bytes).ok(),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// `method path` with `body`, its answer parsed as `T` (an empty answer parses as null).
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ApiError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("serializes"));
        let (_, incoming) = self.raw(method, path, body).await?;
        let bytes = incoming
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| ApiError::Unreachable(e.to_string()))?;
        let bytes = if bytes.is_empty() {
            Bytes::from_static(b"null")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            let start: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
            ApiError::Unreachable(format!("an answer this client cannot read ({e}): {start}"))
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.call(method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ApiError> {
        self.call(method::POST, path, Some(body)).await
    }

    pub async fn patch<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ApiError> {
        self.call(method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), ApiError> {
        self.call::<serde_json::Value>(method::DELETE, path, None::<&()>)
            .await
            .map(drop)
    }
}

pub mod method {
    pub const GET: &str = "GET";
    pub const POST: &str = "POST";
    pub const PATCH: &str = "PATCH";
    pub const DELETE: &str = "DELETE";
}

/// The innermost error of a chain: what a connection failure really was.
pub fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `path?query` with the pairs whose value is set, encoded.
pub fn with_query(path: &str, pairs: &[(&str, Option<String>)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
