//! What a webhook's create or update sets: read against the schema, then checked against what
//! the schema cannot say (the URL's destination, the catalog, headers Hookwire sets itself).

use std::net::IpAddr;

use hookwire_core::config::Profile;
use hookwire_core::patterns;
use hookwire_core::retry::RetryPolicy;
use serde_json::{json, Value};

use crate::db::models::{EventType, Webhook};
use crate::AppState;
use hookwire_api::webhooks as api;
use hookwire_http::error::{ApiError, FieldError};
use hookwire_http::typed;

/// Headers the platform sets itself; a webhook's custom headers may not replace them.
const RESERVED_HEADERS: [&str; 9] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "traceparent",
    "transfer-encoding",
];

/// Checks a webhook URL: syntax, scheme, and in production https and a public destination
/// (resolved now; the dispatcher checks the resolved address again on every delivery).
pub(super) async fn check_url(raw: &str, profile: Profile) -> Result<String, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("is not a valid URL ({e})"))?;
    match (url.scheme(), profile) {
        ("https", _) | ("http", Profile::Development) => {}
        ("http", Profile::Production) => return Err("must use https".into()),
        _ => return Err("must be an http or https URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; use header_name and auth_secret".into());
    }
    let Some(host) = url.host_str() else {
        return Err("must have a host".into());
    };
    if profile == Profile::Production {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| "has a host name that does not resolve".to_owned())?
                .map(|a| a.ip())
                .collect(),
        };
        if addrs.iter().any(|ip| hookwire_core::net::is_forbidden(*ip)) {
            return Err("must not point to a private, loopback or link-local address".into());
        }
    }
    Ok(url.to_string())
}

/// What is wrong with `list` as a webhook's patterns, against the catalog: each must match a
/// live type (a pattern the webhook has already, `current`, stays whatever was archived since).
async fn check_events(state: &AppState, current: &[String], list: &[String]) -> Result<Option<FieldError>, ApiError> {
    let mut conn = state.pool.get().await?;
    let catalog = EventType::all_values(&mut conn).await?;
    let matching = |p: &str, archived_too: bool| {
        catalog
            .iter()
            .any(|(t, archived)| (archived_too || !archived) && patterns::matches(p, t))
    };
    let mut bad = Vec::new();
    for p in list {
        if let Err(e) = patterns::validate_pattern(p) {
            bad.push(format!("`{p}` {e}"));
        } else if current.contains(p) || matching(p, false) {
        } else if matching(p, true) {
            bad.push(format!("`{p}` matches only archived event types"));
        } else {
            bad.push(format!("`{p}` matches no event type in the catalog"));
        }
    }
    Ok((!bad.is_empty()).then(|| FieldError::new("events", bad.join("; "))))
}

/// A body its schema refused, read as `T` or refused with every bad field: what the schema
/// names, and what the URL and the patterns have wrong where the schema took them.
pub(super) async fn read_or_refuse<T>(
    state: &AppState,
    current: impl AsyncFnOnce() -> Result<Vec<String>, ApiError>,
    body: Value,
) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + utoipa::ToSchema + 'static,
{
    let mut errors = typed::errors::<T>(&body);
    if errors.is_empty() {
        return typed::read(body);
    }
    if let (Some(url), false) = (body["url"].as_str(), typed::names(&errors, "url")) {
        if let Err(msg) = check_url(url, state.config.profile).await {
            errors.push(FieldError::new("url", msg));
        }
    }
    let list: Option<Vec<String>> = serde_json::from_value(body["events"].clone()).ok();
    if let (Some(list), false) = (list, typed::names(&errors, "events")) {
        errors.extend(check_events(state, &current().await?, &list).await?);
    }
    Err(ApiError::Validation(errors))
}

/// Applies a create's or an update's fields onto `w`: what the schema cannot say (the URL's
/// destination, patterns against the catalog, headers Hookwire sets itself) is checked here,
/// and every bad field is reported.
pub(super) async fn apply(state: &AppState, p: api::WebhookPatch, w: &mut Webhook) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if let Some(url) = p.url {
        match check_url(&url, state.config.profile).await {
            Ok(u) => w.url = u,
            Err(msg) => errors.push(FieldError::new("url", msg)),
        }
    }
    if let Some(mut list) = p.events {
        match check_events(state, &w.events, &list).await? {
            Some(e) => errors.push(e),
            None => {
                list.dedup();
                w.events = list;
            }
        }
    }
    if let Some(v) = p.name {
        w.name = v.unwrap_or_default();
    }
    if let Some(v) = p.description {
        w.description = v.unwrap_or_default();
    }
    if let Some(v) = p.channels {
        w.channels = v.unwrap_or_default();
    }
    if let Some(v) = p.is_active {
        if v && !w.is_active {
            w.disabled_reason = None;
            w.failing_since = None;
        }
        w.is_active = v;
    }
    if let Some(v) = p.is_test {
        w.is_test = v;
    }
    match p.header_name {
        Some(Some(h)) if RESERVED_HEADERS.contains(&h.to_ascii_lowercase().as_str()) => errors.push(FieldError::new(
            "header_name",
            "is set by Hookwire itself and cannot be used",
        )),
        Some(h) => w.header_name = h,
        None => {}
    }
    if let Some(v) = p.prefix {
        w.prefix = v.filter(|p| !p.is_empty());
    }
    match p.auth_secret {
        Some(Some(s)) => {
            let chars: Vec<char> = s.chars().collect();
            w.auth_secret_last4 = Some(chars[chars.len().saturating_sub(4)..].iter().collect());
            w.auth_secret_sealed = Some(state.secrets.keyring.seal(&s));
        }
        Some(None) => {
            w.auth_secret_sealed = None;
            w.auth_secret_last4 = None;
        }
        None => {}
    }
    if w.auth_secret_sealed.is_some() != w.header_name.is_some() {
        errors.push(FieldError::new(
            "auth_secret",
            "header_name and auth_secret go together: set both or neither",
        ));
    }
    if let Some(h) = p.headers {
        let h = h.unwrap_or_default();
        for k in h.keys() {
            if RESERVED_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                errors.push(FieldError::new(
                    format!("headers.{k}"),
                    "is set by Hookwire itself and cannot be overridden",
                ));
            }
        }
        w.headers = json!(h);
    }
    if let Some(t) = p.timeout_seconds {
        w.timeout_seconds = t as i32;
    }
    if let Some(r) = p.rate_limit_per_second {
        w.rate_limit_per_second = r.map(|r| r as i32);
    }
    if let Some(o) = p.ordering {
        w.ordering = o.as_str().to_owned();
    }
    if p.retry_policy.is_some() || p.retry_count.is_some() {
        let current: RetryPolicy =
            serde_json::from_value(w.retry_policy.clone()).unwrap_or(state.config.webhooks.default_retry_policy);
        let mut policy = p.retry_policy.unwrap_or_default().apply(current);
        if let Some(n) = p.retry_count {
            policy.max_retries = n;
        }
        w.retry_policy = serde_json::to_value(policy).expect("a retry policy serializes");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// A webhook as the API shows it; `secret` only where the contract allows it.
pub fn view(state: &AppState, w: &Webhook, with_secret: bool) -> Result<api::Webhook, ApiError> {
    let secret = with_secret
        .then(|| state.secrets.keyring.open(&w.secret_sealed))
        .transpose()
        .map_err(ApiError::internal)?;
    Ok(api::Webhook {
        id: w.id,
        name: w.name.clone(),
        description: w.description.clone(),
        url: w.url.clone(),
        events: w.events.clone(),
        channels: w.channels.clone(),
        is_active: w.is_active,
        is_test: w.is_test,
        header_name: w.header_name.clone(),
        prefix: w.prefix.clone(),
        masked_auth_secret: w.auth_secret_last4.as_ref().map(|l| format!("****{l}")),
        // Written by `apply` as a map of strings, and the policy as a whole policy.
        headers: serde_json::from_value(w.headers.clone()).map_err(ApiError::internal)?,
        timeout_seconds: w.timeout_seconds.max(0) as u32,
        retry_policy: serde_json::from_value(w.retry_policy.clone())
            .unwrap_or(state.config.webhooks.default_retry_policy),
        rate_limit_per_second: w.rate_limit_per_second.map(|r| r.max(0) as u32),
        ordering: api::DeliveryOrder::parse(&w.ordering).unwrap_or_default(),
        failure_count: w.failure_count.max(0) as u32,
        last_triggered_at: w.last_triggered_at,
        last_success_at: w.last_success_at,
        last_failure_at: w.last_failure_at,
        disabled_reason: w.disabled_reason.clone(),
        created_at: w.created_at,
        modified_at: w.modified_at,
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn production_refuses_plain_http_and_internal_destinations() {
        for url in [
            "http://example.com/hook",
            "https://127.0.0.1/hook",
            "https://10.1.2.3/hook",
            "https://169.254.169.254/latest",
            "https://[::1]/hook",
            "https://localhost/hook",
            "https://user:pw@example.com/",
        ] {
            assert!(check_url(url, Profile::Production).await.is_err(), "{url} was accepted");
        }
        assert!(check_url("https://93.184.216.34/hook", Profile::Production)
            .await
            .is_ok());
        // Development allows plain http to loopback, for local receivers.
        assert!(check_url("http://127.0.0.1:9999/hook", Profile::Development)
            .await
            .is_ok());
        assert!(check_url("ftp://example.com/", Profile::Development).await.is_err());
    }
}
