//! Hand-written SQL that PostgreSQL prepares once per connection.
//!
//! diesel never caches a `sql_query` (nor a query with a `sql` fragment): each run prepares it
//! anew, which is a round trip of its own before the one that runs it, and PostgreSQL parses and
//! plans it every time. A [`Prepared`] statement is static text whose `$n` placeholders are
//! bound by [`Prepared::bind`], as `sql_query`'s are, so diesel-async keys its statement cache
//! by the text and, from the second run on a connection, sends only the bind and execute.
//!
//! A prepared statement's result columns are fixed when it is prepared: one that reads a
//! table's `*` fails ("cached plan must not change result type") once a migration adds a column
//! under running registries. Name the columns.

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::QueryResult;

/// `sql`, its `$n` placeholders bound in order (a placeholder may appear more than once); rows
/// load with `QueryableByName`, as from `sql_query`.
pub struct Prepared<'a> {
    sql: &'static str,
    params: Vec<Box<dyn Param + 'a>>,
}

impl<'a> Prepared<'a> {
    pub fn new(sql: &'static str) -> Self {
        Self {
            sql,
            params: Vec::new(),
        }
    }

    /// Binds the next placeholder, `$1` first, as SQL type `ST`.
    pub fn bind<ST, T>(mut self, value: T) -> Self
    where
        Pg: HasSqlType<ST>,
        T: ToSql<ST, Pg> + Send + 'a,
        ST: 'a,
    {
        self.params.push(Box::new(Value(value, PhantomData)));
        self
    }
}

/// One bound value.
trait Param: Send {
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

struct Value<ST, T>(T, PhantomData<fn() -> ST>);

impl<ST, T> Param for Value<ST, T>
where
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg> + Send,
{
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, T>(&self.0)
    }
}

impl QueryId for Prepared<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared<'_> {
    type SqlType = Untyped;
}

impl QueryFragment<Pg> for Prepared<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let fail = |what: &str| diesel::result::Error::QueryBuilderError(format!("{what} in: {}", self.sql).into());
        let mut rest = self.sql;
        while let Some(at) = rest.find('$') {
            out.push_sql(&rest[..at]);
            let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
            let n: usize = rest[at + 1..at + 1 + digits]
                .parse()
                .map_err(|_| fail("a `$` without a number"))?;
            let param = n
                .checked_sub(1)
                .and_then(|i| self.params.get(i))
                .ok_or_else(|| fail(&format!("`${n}` has no value bound")))?;
            param.push(&mut out)?;
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

    #[test]
    fn a_template_is_cached_text_with_each_placeholder_bound() {
        let q = Prepared::new("SELECT $1 + $1, $2")
            .bind::<Integer, _>(7)
            .bind::<Text, _>("x");
        let shown = diesel::debug_query::<Pg, _>(&q).to_string();
        assert_eq!(shown, r#"SELECT $1 + $2, $3 -- binds: [7, 7, "x"]"#);
        assert!(q.is_safe_to_cache_prepared(&Pg).unwrap(), "diesel caches it");
        // What it replaces: diesel prepares a `sql_query` anew at every run.
        let plain = diesel::sql_query("SELECT $1").bind::<Integer, _>(7);
        assert!(!plain.is_safe_to_cache_prepared(&Pg).unwrap());
        let broken = Prepared::new("SELECT $x").bind::<Integer, _>(7);
        assert!(broken.is_safe_to_cache_prepared(&Pg).is_err(), "a `$` without a number");
        let unbound = Prepared::new("SELECT $1, $2").bind::<Integer, _>(7);
        let err = unbound.is_safe_to_cache_prepared(&Pg).unwrap_err().to_string();
        assert!(err.contains("`$2` has no value bound"), "{err}");
    }
}
