//! docs/operations.md names every configuration key each service reads, with its default: an
//! operator reads that page, not the services' `default.toml`.

use std::collections::{HashMap, HashSet};

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
            Err(_) => {
                // A list reads as `[a, b]`.
                let text = match value.clone().into_array() {
                    Ok(items) => format!(
                        "[{}]",
                        items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    ),
                    Err(_) => value.to_string(),
                };
                out.push((prefix.to_owned(), text));
            }
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

/// The repository's root, from this crate's manifest.
fn repository() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Every Markdown file a reader meets: the README, CONTRIBUTING, docs/, bench/, proto/ and the
/// crates' READMEs.
fn markdown_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("a readable folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut files = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    for dir in ["docs", "bench", "proto"] {
        walk(&root.join(dir), &mut files);
    }
    for entry in std::fs::read_dir(root.join("crates")).expect("crates/").flatten() {
        let readme = entry.path().join("README.md");
        if readme.exists() {
            files.push(readme);
        }
    }
    files
}

/// The lines of a Markdown text outside its code blocks.
fn prose_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut in_code = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            return false;
        }
        !in_code
    })
}

/// The targets of the Markdown links `[text](target)` outside code blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(text) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                targets.push(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
    }
    targets
}

/// The anchors GitHub gives a Markdown file's headings (outside code blocks): lower case,
/// punctuation dropped, spaces as hyphens.
fn heading_anchors(text: &str) -> HashSet<String> {
    let mut anchors = HashSet::new();
    for line in prose_lines(text) {
        let title = line.trim_start_matches('#');
        if title.len() == line.len() || !title.starts_with(' ') {
            continue;
        }
        let anchor = title
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        anchors.insert(anchor);
    }
    anchors
}

#[test]
fn every_link_in_the_docs_resolves_to_a_file_and_heading_in_the_repository() {
    let root = repository();
    let mut broken = Vec::new();
    for file in markdown_files(&root) {
        let text = std::fs::read_to_string(&file).expect("a readable Markdown file");
        let name = file
            .strip_prefix(&root)
            .expect("inside the repository")
            .display()
            .to_string();
        if text.contains("../shared/") {
            broken.push(format!("{name}: names ../shared/, which users do not have"));
        }
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target
                .split_once('#')
                .map_or((target.as_str(), None), |(p, a)| (p, Some(a)));
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().expect("a file's folder").join(path)
            };
            let real = match resolved.canonicalize() {
                Ok(real) if real.starts_with(&root) => real,
                Ok(_) => {
                    broken.push(format!("{name}: {target} is outside the repository"));
                    continue;
                }
                Err(_) => {
                    broken.push(format!("{name}: {target} does not exist"));
                    continue;
                }
            };
            if let Some(anchor) = anchor.filter(|_| real.extension().is_some_and(|e| e == "md")) {
                let headings = heading_anchors(&std::fs::read_to_string(&real).expect("a readable Markdown file"));
                if !headings.contains(anchor) {
                    broken.push(format!("{name}: {target}: no heading has that anchor"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}
