//! Collections: `limit`/`offset` or `page`/`page_size`, answered as
//! `{"count", "next", "previous", "results"}` with `next`/`previous` as URLs or null.
//! The delivery log, which grows to millions of rows, pages by [`Cursor`] too: its `next` links
//! carry one, so following them costs the same on every page (an offset walks that many index
//! entries first), and a delivery written meanwhile does not shift the pages.

use actix_web::HttpRequest;
use chrono::{DateTime, Utc};
use hookwire_api::Page as Answer;
use uuid::Uuid;

/// `limit` and `offset` of a page, already validated.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// How many rows a filter matches: exact, or, past a bound, at least `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub value: i64,
    pub exact: bool,
}

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
    /// The link to the page before this one, when it is read from an offset past the first.
    fn previous(&self, req: &HttpRequest, public_url: &str) -> Option<String> {
        let Page { limit, offset } = self.page;
        (offset > 0).then(|| link(req, public_url, self.params(offset.saturating_sub(limit).max(0))))
    }

    /// The parameters of the page at `offset`, in the caller's style.
    fn params(&self, offset: i64) -> Vec<(&'static str, String)> {
        let limit = self.page.limit;
        match self.style {
            Style::Offset => vec![("limit", limit.to_string()), ("offset", offset.to_string())],
            Style::Pages => vec![
                ("page", (offset / limit + 1).to_string()),
                ("page_size", limit.to_string()),
            ],
        }
    }

    /// The page a query asked for (its ranges checked by its schema); `default` is the
    /// collection's page size. `page` and `page_size` win over `limit` and `offset`.
    pub fn new(p: hookwire_api::page::PageParams, default: i64) -> Self {
        if p.page.is_some() || p.page_size.is_some() {
            let size = p.page_size.unwrap_or(default);
            return Self {
                page: Page {
                    limit: size,
                    offset: (p.page.unwrap_or(1) - 1).saturating_mul(size),
                },
                style: Style::Pages,
            };
        }
        Self {
            page: Page {
                limit: p.limit.unwrap_or(default),
                offset: p.offset.unwrap_or(0),
            },
            style: Style::Offset,
        }
    }
}

/// A place in a log ordered newest first by (`created_at`, `id`), and which way to read from it:
/// the rows older than the key (`older`), or the ones newer. Sent as an opaque token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
    pub older: bool,
}

impl Cursor {
    /// `o` (older) or `n` (newer), the row's time in microseconds, `.`, its id: the form the
    /// document's pattern for `cursor` describes (`hookwire_api::deliveries::DeliveryQuery`).
    pub fn encode(&self) -> String {
        let way = if self.older { 'o' } else { 'n' };
        format!("{way}{}.{}", self.at.timestamp_micros(), self.id.simple())
    }

    /// The cursor of a token made by [`Cursor::encode`]; `None` for anything else.
    pub fn decode(raw: &str) -> Option<Self> {
        let older = match raw.get(..1)? {
            "o" => true,
            "n" => false,
            _ => return None,
        };
        let (micros, id) = raw[1..].split_once('.')?;
        Some(Self {
            at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::try_parse(id).ok()?,
            older,
        })
    }
}

/// How a page of a log was read: from an offset (`cursor` none) or a cursor; whether rows follow
/// it the way it was read; and the (`created_at`, `id`) of its newest and oldest rows.
#[derive(Debug, Clone, Copy)]
pub struct LogPage {
    pub cursor: Option<Cursor>,
    pub more: bool,
    pub newest: Option<(DateTime<Utc>, Uuid)>,
    pub oldest: Option<(DateTime<Utc>, Uuid)>,
}

/// The URL of this request with its paging parameters replaced by `paging`.
fn link(req: &HttpRequest, public_url: &str, paging: Vec<(&str, String)>) -> String {
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| !PARAMS.contains(&k.as_ref()) && k != "cursor")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    params.extend(paging.into_iter().map(|(k, v)| (k.to_owned(), v)));
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{}{}?{query}", base_url(req, public_url), req.path())
}

/// This server's address as callers reach it: `http.public_url`, else from the request.
pub fn base_url(req: &HttpRequest, public_url: &str) -> String {
    if public_url.is_empty() {
        let info = req.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    } else {
        public_url.trim_end_matches('/').to_owned()
    }
}

/// Builds the pages of collections (`hookwire_api::Page`) with their links.
pub struct Collection;

impl Collection {
    pub fn page<T>(req: &HttpRequest, public_url: &str, paging: Paging, count: i64, results: Vec<T>) -> Answer<T> {
        let Page { limit, offset } = paging.page;
        let link = |offset: i64| link(req, public_url, paging.params(offset));
        Answer {
            count,
            count_exact: None,
            // Saturating: `offset` may be anything up to i64::MAX (the fuzzer sends it).
            next: (offset.saturating_add(limit) < count).then(|| link(offset.saturating_add(limit))),
            previous: paging.previous(req, public_url),
            results,
        }
    }

    /// A page of a log read newest first (see [`LogPage`]). `next` carries a cursor from the
    /// page's oldest row; `previous` one from its newest, or the offset before it.
    pub fn of_log<T>(
        req: &HttpRequest,
        public_url: &str,
        paging: Paging,
        read: LogPage,
        count: i64,
        results: Vec<T>,
        count_exact: bool,
    ) -> Answer<T> {
        let limit = paging.page.limit;
        let LogPage {
            cursor,
            more,
            newest,
            oldest,
        } = read;
        let to = |row: Option<(DateTime<Utc>, Uuid)>, older: bool| {
            // An empty page turns back from the cursor it was read from.
            let (at, id) = row.or(cursor.map(|c| (c.at, c.id)))?;
            let token = Cursor { at, id, older }.encode();
            Some(link(
                req,
                public_url,
                vec![("limit", limit.to_string()), ("cursor", token)],
            ))
        };
        let (next, previous) = match cursor {
            None => (
                more.then(|| to(oldest, true)).flatten(),
                paging.previous(req, public_url),
            ),
            Some(c) if c.older => (more.then(|| to(oldest, true)).flatten(), to(newest, false)),
            Some(_) => (to(oldest, true), more.then(|| to(newest, false)).flatten()),
        };
        Answer {
            count,
            count_exact: Some(count_exact),
            next,
            previous,
            results,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_it_was_made_and_nothing_else_reads_as_one() {
        for older in [true, false] {
            let c = Cursor {
                at: DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap(),
                id: hookwire_core::id::v7(),
                older,
            };
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        for bad in ["", "abc", "o1.1", "x1.00000000000000000000000000000000"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
