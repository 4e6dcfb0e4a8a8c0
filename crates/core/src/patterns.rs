//! Event-type names and the patterns webhooks subscribe with.
//!
//! A type is one or more dot-separated segments of `[a-z0-9_]` (`person.created`, `series_updated`).
//! A pattern is a type in which any segment may be `*` (`person.*`, `*.created`), or `*` alone,
//! which matches every type. A segment wildcard matches exactly one segment.
//!
//! Types whose first segment is `hookwire` are Hookwire's own operational events
//! ([`crate::operational`]): only a pattern that names `hookwire` as its first segment takes them
//! (`hookwire.*`, `hookwire.delivery_exhausted`), so a webhook on `*` or `*.created` does not
//! start receiving them, and producers cannot publish them.

/// Why a type name or a pattern was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 128 characters")]
    TooLong,
    #[error("`{0}` is not a valid segment: use lowercase letters, digits and underscores")]
    BadSegment(String),
}

fn check(value: &str, allow_wildcards: bool) -> Result<(), PatternError> {
    if value.is_empty() {
        return Err(PatternError::Empty);
    }
    if value.len() > 128 {
        return Err(PatternError::TooLong);
    }
    for segment in value.split('.') {
        let ok = (allow_wildcards && segment == "*")
            || (!segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        if !ok {
            return Err(PatternError::BadSegment(segment.to_owned()));
        }
    }
    Ok(())
}

/// Checks the syntax of an event-type name.
pub fn validate_type(value: &str) -> Result<(), PatternError> {
    check(value, false)
}

/// Checks the syntax of a subscription pattern.
pub fn validate_pattern(value: &str) -> Result<(), PatternError> {
    check(value, true)
}

/// The first segment of Hookwire's own event types.
pub const RESERVED_SEGMENT: &str = "hookwire";

/// Whether `event_type` (or a pattern) is in Hookwire's reserved namespace.
pub fn is_reserved(event_type: &str) -> bool {
    event_type.split('.').next() == Some(RESERVED_SEGMENT)
}

/// Whether `pattern` matches the event type `event_type`.
pub fn matches(pattern: &str, event_type: &str) -> bool {
    if is_reserved(event_type) && !is_reserved(pattern) {
        return false;
    }
    if pattern == "*" {
        return true;
    }
    let mut p = pattern.split('.');
    let mut t = event_type.split('.');
    loop {
        match (p.next(), t.next()) {
            (None, None) => return true,
            (Some(ps), Some(ts)) if ps == "*" || ps == ts => continue,
            _ => return false,
        }
    }
}

/// Whether any of `patterns` matches `event_type`.
pub fn any_matches<S: AsRef<str>>(patterns: &[S], event_type: &str) -> bool {
    patterns.iter().any(|p| matches(p.as_ref(), event_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_contract_patterns() {
        assert!(matches("person.created", "person.created"));
        assert!(!matches("person.created", "person.updated"));
        assert!(matches("person.*", "person.deleted"));
        assert!(!matches("person.*", "company.deleted"));
        assert!(!matches("person.*", "person"));
        assert!(matches("*.created", "task.created"));
        assert!(!matches("*.created", "task.updated"));
        assert!(matches("*", "series_updated"));
        assert!(matches("*", "person.created"));
        assert!(matches("series_updated", "series_updated"));
        assert!(!matches("*.*", "series_updated"));
        assert!(!matches("person.created.x", "person.created"));
    }

    #[test]
    fn only_a_pattern_that_names_hookwire_takes_its_operational_events() {
        for pattern in ["hookwire.*", "hookwire.delivery_exhausted"] {
            assert!(matches(pattern, "hookwire.delivery_exhausted"), "{pattern}");
        }
        for pattern in ["*", "*.delivery_exhausted", "*.*"] {
            assert!(!matches(pattern, "hookwire.delivery_exhausted"), "{pattern}");
        }
        assert!(!matches("hookwire.*", "person.created"));
        assert!(!matches("hookwire.*", "hookwire"));
        assert!(is_reserved("hookwire.webhook_disabled"));
        assert!(!is_reserved("hookwired.created"));
    }

    #[test]
    fn validates_names_and_patterns() {
        assert_eq!(validate_type("person.created"), Ok(()));
        assert_eq!(validate_type("incremental_update"), Ok(()));
        assert!(validate_type("person.*").is_err());
        assert!(validate_type("Person.created").is_err());
        assert!(validate_type("person..created").is_err());
        assert_eq!(validate_type(""), Err(PatternError::Empty));
        assert_eq!(validate_pattern("*.created"), Ok(()));
        assert_eq!(validate_pattern("*"), Ok(()));
        assert!(validate_pattern("pers*").is_err());
    }
}
