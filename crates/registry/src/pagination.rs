//! Collections: `limit`/`offset` or `page`/`page_size`, answered as
//! `{"count", "next", "previous", "results"}` with `next`/`previous` as URLs or null.

use std::collections::BTreeMap;

use actix_web::HttpRequest;
use serde::Serialize;

use crate::db::models::Page;
use hookwire_http::error::{ApiError, FieldError};
use hookwire_http::input::parse_param;

/// The query parameters pagination owns, to add to each endpoint's own.
pub const PARAMS: [&str; 4] = ["limit", "offset", "page", "page_size"];

/// How the caller asked to page, so links keep their style.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    Offset,
    Pages,
}

#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub page: Page,
    style: Style,
}

impl Paging {
    /// Reads the paging parameters; `default` and `max` are the endpoint's limits.
    pub fn from_params(params: &BTreeMap<String, String>, default: i64, max: i64) -> Result<Self, ApiError> {
        let invalid = |field: &str, message: String| ApiError::Validation(vec![FieldError::new(field, message)]);
        let limit = parse_param::<i64>(params, "limit", "an integer")?;
        let offset = parse_param::<i64>(params, "offset", "an integer")?;
        let page = parse_param::<i64>(params, "page", "an integer")?;
        let page_size = parse_param::<i64>(params, "page_size", "an integer")?;
        if (limit.is_some() || offset.is_some()) && (page.is_some() || page_size.is_some()) {
            return Err(invalid(
                "page",
                "use either limit/offset or page/page_size, not both".into(),
            ));
        }
        let check_size = |field: &str, n: i64| {
            if (1..=max).contains(&n) {
                Ok(n)
            } else {
                Err(invalid(field, format!("must be between 1 and {max}")))
            }
        };
        if page.is_some() || page_size.is_some() {
            let size = check_size("page_size", page_size.unwrap_or(default))?;
            let page = page.unwrap_or(1);
            if page < 1 {
                return Err(invalid("page", "must be 1 or more".into()));
            }
            return Ok(Self {
                page: Page {
                    limit: size,
                    offset: (page - 1).saturating_mul(size),
                },
                style: Style::Pages,
            });
        }
        let limit = check_size("limit", limit.unwrap_or(default))?;
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            return Err(invalid("offset", "must be 0 or more".into()));
        }
        Ok(Self {
            page: Page { limit, offset },
            style: Style::Offset,
        })
    }
}

#[derive(Debug, Serialize)]
pub struct Collection<T> {
    pub count: i64,
    /// Said by collections that stop counting past a bound (the delivery log): `false` when
    /// `count` is a lower bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count_exact: Option<bool>,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

impl<T> Collection<T> {
    pub fn new(req: &HttpRequest, public_url: &str, paging: Paging, count: i64, results: Vec<T>) -> Self {
        let Page { limit, offset } = paging.page;
        let link = |offset: i64| {
            let mut params: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
                .filter(|(k, _)| !crate::pagination::PARAMS.contains(&k.as_ref()))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            match paging.style {
                Style::Offset => {
                    params.push(("limit".into(), limit.to_string()));
                    params.push(("offset".into(), offset.to_string()));
                }
                Style::Pages => {
                    params.push(("page".into(), (offset / limit + 1).to_string()));
                    params.push(("page_size".into(), limit.to_string()));
                }
            }
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish();
            let base = if public_url.is_empty() {
                let info = req.connection_info();
                format!("{}://{}", info.scheme(), info.host())
            } else {
                public_url.trim_end_matches('/').to_owned()
            };
            format!("{base}{}?{query}", req.path())
        };
        Self {
            count,
            count_exact: None,
            // Saturating: `offset` may be anything up to i64::MAX (the fuzzer sends it).
            next: (offset.saturating_add(limit) < count).then(|| link(offset.saturating_add(limit))),
            previous: (offset > 0).then(|| link(offset.saturating_sub(limit).max(0))),
            results,
        }
    }

    /// Says whether `count` is exact.
    pub fn count_exact(self, exact: bool) -> Self {
        Self {
            count_exact: Some(exact),
            ..self
        }
    }
}
