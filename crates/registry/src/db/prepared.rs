//! Hand-written SQL that PostgreSQL prepares once per connection.
//!
//! diesel never caches a `sql_query` (nor a query with a `sql` fragment): each run prepares it
//! anew, which is a round trip of its own before the one that runs it, and PostgreSQL parses and
//! plans it every time. A [`Prepared`] statement is static text whose `$n` placeholders are
//! bound by [`Binds`], so diesel-async keys its statement cache by the text and, from the second
//! run on a connection, sends only the bind and execute.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::Untyped;
use diesel::QueryResult;

/// Pushes the value of placeholder `$n` (from 1) of a [`Prepared`] statement.
pub trait Binds {
    fn bind<'b>(&'b self, n: usize, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

/// `sql`, its `$n` placeholders bound by `binds`; rows load with `QueryableByName`, as from
/// `sql_query`.
pub struct Prepared<B> {
    pub sql: &'static str,
    pub binds: B,
}

impl<B> QueryId for Prepared<B> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<B> Query for Prepared<B> {
    type SqlType = Untyped;
}

impl<B: Binds> QueryFragment<Pg> for Prepared<B> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut rest = self.sql;
        while let Some(at) = rest.find('$') {
            out.push_sql(&rest[..at]);
            let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
            let n: usize = rest[at + 1..at + 1 + digits].parse().map_err(|_| {
                diesel::result::Error::QueryBuilderError(format!("a `$` without a number in: {}", self.sql).into())
            })?;
            self.binds.bind(n, &mut out)?;
            rest = &rest[at + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::{Integer, Text};

    use super::*;

    struct Two(i32, &'static str);

    impl Binds for Two {
        fn bind<'b>(&'b self, n: usize, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            match n {
                1 => out.push_bind_param::<Integer, _>(&self.0),
                _ => out.push_bind_param::<Text, _>(self.1),
            }
        }
    }

    #[test]
    fn a_template_is_cached_text_with_each_placeholder_bound() {
        let q = Prepared {
            sql: "SELECT $1 + $1, $2",
            binds: Two(7, "x"),
        };
        let shown = diesel::debug_query::<Pg, _>(&q).to_string();
        assert_eq!(shown, r#"SELECT $1 + $2, $3 -- binds: [7, 7, "x"]"#);
        assert!(q.is_safe_to_cache_prepared(&Pg).unwrap(), "diesel caches it");
        // What it replaces: diesel prepares a `sql_query` anew at every run.
        let plain = diesel::sql_query("SELECT $1").bind::<Integer, _>(7);
        assert!(!plain.is_safe_to_cache_prepared(&Pg).unwrap());
        let broken = Prepared {
            sql: "SELECT $x",
            binds: Two(7, "x"),
        };
        assert!(broken.is_safe_to_cache_prepared(&Pg).is_err(), "a `$` without a number");
    }
}
