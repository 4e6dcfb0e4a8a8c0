//! A real headless Chromium, driven over WebDriver (chromedriver), for the console's tests.
//! `scripts/test-deps.sh` installs both from Debian.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::{eventually, free_port};

/// How long a test waits for the page to show something.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A browser session: chromedriver, the Chromium it started, and a WebDriver client.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile, `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (scripts/test-deps.sh)");
        let profile = std::env::temp_dir().join(format!("hookwire-chromium-{}", uuid::Uuid::new_v4().simple()));
        let url = format!("http://127.0.0.1:{port}");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // Headless as root; and no calls to hosts this machine cannot reach.
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-quic", "--no-first-run", format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={width},{height}"),
                ],
            },
        });
        let caps = caps.as_object().expect("an object").clone();
        let client = eventually(PATIENCE, || {
            let (caps, url) = (caps.clone(), url.clone());
            async move {
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(caps)
                    .connect(&url)
                    .await
                    .ok()
            }
        })
        .await
        .expect("chromedriver starts a Chromium session");
        client.set_window_size(width, height).await.expect("window size");
        Self {
            client,
            driver,
            profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The first element matching `css`, once it is there.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} within {PATIENCE:?}: {e}"))
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// Clicks the button or link whose text is `text`.
    pub async fn click_text(&self, text: &str) {
        let xpath = format!("//*[self::button or self::a][normalize-space(.)='{text}']");
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button or link {text:?}: {e}"))
            .click()
            .await
            .expect("click");
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        el.clear().await.expect("clear");
        el.send_keys(text).await.expect("type");
    }

    /// The text of the page's main area.
    pub async fn main_text(&self) -> String {
        self.find("main").await.text().await.unwrap_or_default()
    }

    /// Waits until the main area's text contains `needle`; the text it ended with.
    pub async fn wait_text(&self, needle: &str) -> String {
        let found = eventually(PATIENCE, || async {
            let text = self.main_text().await;
            text.contains(needle).then_some(text)
        })
        .await;
        match found {
            Some(text) => text,
            None => panic!(
                "the page never showed {needle:?}; it shows:\n{}",
                self.main_text().await
            ),
        }
    }

    /// The text of the toast, once there is one containing `needle`.
    pub async fn wait_toast(&self, needle: &str) -> String {
        let found = eventually(PATIENCE, || async {
            let text = self.client.find(Locator::Css("#toast")).await.ok()?.text().await.ok()?;
            text.contains(needle).then_some(text)
        })
        .await;
        found.unwrap_or_else(|| panic!("no message {needle:?} appeared"))
    }

    /// Accepts the `confirm()` dialog that the last click opened.
    pub async fn accept_dialog(&self) {
        eventually(PATIENCE, || async { self.client.accept_alert().await.ok() })
            .await
            .expect("a dialog to accept");
    }

    /// The page's address now.
    pub async fn url(&self) -> String {
        self.client.current_url().await.expect("url").to_string()
    }

    /// Saves a PNG of the window as `target/console-screenshots/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    pub async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
