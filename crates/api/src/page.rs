//! Collections: one page of results with links to the pages around it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One page of a collection. Page with `limit` and `offset`, or `page` and `page_size`; the
/// delivery log's links carry a cursor instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// How many items the filters match. On the delivery log: exact up to the registry's
    /// `http.count_limit`, past it a lower bound (see `count_exact`).
    pub count: i64,
    /// The delivery log only: `false` when `count` is a lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_exact: Option<bool>,
    /// The next page's URL, or null on the last page.
    pub next: Option<String>,
    /// The previous page's URL, or null on the first page.
    pub previous: Option<String>,
    pub results: Vec<T>,
}

/// Declares a collection's query: the paging parameters every collection takes, then its own.
/// Page with `limit` and `offset`, or with `page` and `page_size` (these win when both are sent).
macro_rules! paged_query {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::IntoParams)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            /// Items per page (default 100; the delivery log 500).
            #[param(minimum = 1, maximum = 500)]
            pub limit: Option<i64>,
            /// Items to skip.
            #[param(minimum = 0)]
            pub offset: Option<i64>,
            /// The page to read, from 1.
            #[param(minimum = 1)]
            pub page: Option<i64>,
            /// Items per page with `page`.
            #[param(minimum = 1, maximum = 500)]
            pub page_size: Option<i64>,
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $crate::page::Paged for $name {
            fn paging(&self) -> $crate::page::PageParams {
                $crate::page::PageParams {
                    limit: self.limit,
                    offset: self.offset,
                    page: self.page,
                    page_size: self.page_size,
                }
            }
        }
    };
}
pub(crate) use paged_query;

/// The paging parameters a query carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageParams {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub page: Option<i64>,
    pub page_size: Option<i64>,
}

/// A collection's query.
pub trait Paged {
    fn paging(&self) -> PageParams;
}

paged_query! {
    /// The query of a collection with no filters.
    pub struct PageQuery {}
}
