//! The console's files (`crates/registry/console/`), built into the binary: the console needs
//! nothing from another host and works offline.

/// Each file's path under `/console/` and its bytes.
macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)) as &[u8])),*]
    };
}

pub const ASSETS: &[(&str, &[u8])] = assets![
    "index.html",
    "console.css",
    "js/main.js",
    "js/api.js",
    "js/dom.js",
    "js/chart.js",
    "js/audit.js",
    "js/portal/webhooks.js",
    "js/portal/webhook.js",
    "js/portal/deliveries.js",
    "js/portal/delivery.js",
    "js/portal/catalog.js",
    "js/operator/overview.js",
    "js/operator/tenants.js",
    "js/operator/catalog.js",
];

/// The file at `path`, with its content type.
pub fn find(path: &str) -> Option<(&'static [u8], &'static str)> {
    let (_, bytes) = ASSETS.iter().find(|(p, _)| *p == path)?;
    let kind = match path.rsplit('.').next()? {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        _ => "application/octet-stream",
    };
    Some((bytes, kind))
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    fn files(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_file_of_the_console_is_built_in() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = Vec::new();
        files(&root, &root, &mut on_disk);
        let mut built_in: Vec<String> = ASSETS.iter().map(|(p, _)| (*p).to_owned()).collect();
        on_disk.sort();
        built_in.sort();
        assert_eq!(on_disk, built_in, "list every file of console/ in ASSETS");
    }
}
