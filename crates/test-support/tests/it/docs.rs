//! docs/operations.md names every configuration key each service reads, with its default: an
//! operator reads that page, not the services' `default.toml`.

use std::collections::HashMap;

use config::{Config, File, FileFormat, Source as _, Value};

const OPERATIONS: &str = include_str!("../../../../docs/operations.md");

/// `key → default` of one `###` section's table. A row may name two keys of one table, as
/// `` `a.b.count` / `.period` `` with `` `5` / `1h` ``.
fn documented(section: &str) -> HashMap<String, String> {
    let heading = format!("### {section}\n");
    let start = OPERATIONS
        .find(&heading)
        .unwrap_or_else(|| panic!("no section {heading:?}"))
        + heading.len();
    let body = &OPERATIONS[start..];
    let body = &body[..body.find("\n#").unwrap_or(body.len())];
    let mut keys = HashMap::new();
    for row in body.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let names: Vec<&str> = cells[1].split(" / ").map(|n| n.trim_matches('`')).collect();
        let defaults: Vec<&str> = cells[2].split(" / ").collect();
        for (i, name) in names.iter().enumerate() {
            let name = match name.strip_prefix('.') {
                Some(last) => format!("{}.{last}", names[0].rsplit_once('.').expect("a dotted key").0),
                None => (*name).to_owned(),
            };
            let default = defaults
                .get(i)
                .unwrap_or_else(|| panic!("no default for {name} in {row}"));
            let default = match default.trim() {
                "empty" => String::new(),
                d => d.trim_matches('`').to_owned(),
            };
            keys.insert(name, default);
        }
    }
    keys
}

/// Every leaf of `defaults` as `(dotted key, value)`.
fn leaves(defaults: &str) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: Value, out: &mut Vec<(String, String)>) {
        match value.clone().into_table() {
            Ok(table) => {
                for (key, value) in table {
                    let key = if prefix.is_empty() {
                        key
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&key, value, out);
                }
            }
            Err(_) => out.push((prefix.to_owned(), value.to_string())),
        }
    }
    let root = Config::builder()
        .add_source(File::from_str(defaults, FileFormat::Toml))
        .build()
        .and_then(|c| c.collect())
        .expect("default.toml parses");
    let mut out = Vec::new();
    for (key, value) in root {
        walk(&key, value, &mut out);
    }
    out.sort();
    out
}

fn check(section: &str, defaults: &str) {
    let mut docs = documented("Shared keys (every service)");
    docs.extend(documented(section));
    let wrong: Vec<String> = leaves(defaults)
        .into_iter()
        .filter_map(|(key, value)| match docs.get(&key) {
            None => Some(format!("{key} is not named")),
            Some(d) if *d != value => Some(format!("{key}: the page says {d:?}, the default is {value:?}")),
            Some(_) => None,
        })
        .collect();
    assert!(wrong.is_empty(), "docs/operations.md, {section}: {wrong:#?}");
}

#[test]
fn the_operations_guide_names_every_registry_key_with_its_default() {
    check("Registry", include_str!("../../../registry/config/default.toml"));
}

#[test]
fn the_operations_guide_names_every_publisher_key_with_its_default() {
    check("Publisher", include_str!("../../../publisher/config/default.toml"));
}

#[test]
fn the_operations_guide_names_every_dispatcher_key_with_its_default() {
    check("Dispatcher", include_str!("../../../dispatcher/config/default.toml"));
}
