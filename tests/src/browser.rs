//! A headless Chromium driven over WebDriver (the W3C protocol, spoken to `chromedriver`
//! with reqwest): enough to sign in, type, click, read text and take screenshots in the
//! console's browser tests.
//!
//! `chromedriver` is a [`ChildGuard`] like every other process of the harness; [`Browser::close`]
//! ends the session (and Chromium with it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Value, json};

use crate::ports::free_addr;
use crate::process::{ChildGuard, Spawn, eventually, wait_for_port};
use crate::tools;

/// The key W3C WebDriver gives element references under.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long an element may take to appear, or a condition to hold, before a test fails.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// A laptop screen.
const WINDOW_SIZE: &str = "--window-size=1366,900";

/// Chromium's binary (`CHROMIUM` overrides).
pub fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// chromedriver's binary (`CHROMEDRIVER` overrides).
pub fn chromedriver() -> PathBuf {
    std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

/// Where the console's tests leave their screenshots: `target/console-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    tools::target_dir().join("console-screenshots")
}

/// A WebDriver session in a headless Chromium.
pub struct Browser {
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    _profile: tempfile::TempDir,
    _driver: ChildGuard,
}

impl Browser {
    pub async fn start() -> Result<Browser> {
        for (what, path) in [("chromium", chromium()), ("chromedriver", chromedriver())] {
            if !path.is_file() {
                bail!(
                    "{what} not found at {} (cargo xtask install installs it)",
                    path.display()
                );
            }
        }
        let addr = free_addr();
        let driver = Spawn::new("chromedriver", chromedriver())
            .arg(format!("--port={}", addr.port()))
            .start()?;
        wait_for_port(addr, DEFAULT_WAIT).await?;
        let profile = tempfile::tempdir()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--no-first-run", WINDOW_SIZE,
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let base = format!("http://{addr}");
        let answer = post(&client, &format!("{base}/session"), &capabilities).await?;
        let id = answer["sessionId"]
            .as_str()
            .context("chromedriver gave no session id")?;
        Ok(Browser {
            client,
            session: format!("{base}/session/{id}"),
            _profile: profile,
            _driver: driver,
        })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        post(&self.client, &format!("{}{path}", self.session), &body).await
    }

    async fn get(&self, path: &str) -> Result<Value> {
        let r = self
            .client
            .get(format!("{}{path}", self.session))
            .send()
            .await?;
        value(r).await
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.post("/url", json!({"url": url})).await.map(drop)
    }

    /// The first element matching `css`, if any now.
    pub async fn find_now(&self, css: &str) -> Result<Option<String>> {
        let r = self
            .client
            .post(format!("{}/element", self.session))
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let v = value(r).await?;
        Ok(v[ELEMENT_KEY].as_str().map(str::to_owned))
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Result<String> {
        eventually(DEFAULT_WAIT, || async {
            self.find_now(css).await.ok().flatten()
        })
        .await
        .with_context(|| format!("no element {css:?} on the page"))
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        let e = self.find(css).await?;
        self.post(&format!("/element/{e}/click"), json!({}))
            .await
            .map(drop)
    }

    /// Type `text` into the element (keyboard events, as a person would).
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let e = self.find(css).await?;
        self.post(&format!("/element/{e}/value"), json!({"text": text}))
            .await
            .map(drop)
    }

    /// The element's rendered text.
    pub async fn text(&self, css: &str) -> Result<String> {
        let e = self.find(css).await?;
        let v = self.get(&format!("/element/{e}/text")).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Wait until the element matching `css` has text satisfying `ok`; that text.
    pub async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> Result<String> {
        let last = std::sync::Mutex::new(String::new());
        let found = eventually(DEFAULT_WAIT, || async {
            let text = self.text_now(css).await?;
            let good = ok(&text);
            if let Ok(mut l) = last.lock() {
                l.clone_from(&text);
            }
            good.then_some(text)
        })
        .await;
        let last = last.lock().map(|l| l.clone()).unwrap_or_default();
        found.with_context(|| format!("{css:?} never had the expected text; last: {last:?}"))
    }

    async fn text_now(&self, css: &str) -> Option<String> {
        let e = self.find_now(css).await.ok()??;
        let v = self.get(&format!("/element/{e}/text")).await.ok()?;
        v.as_str().map(str::to_owned)
    }

    /// The element's accessible name and role, as Chromium's accessibility tree gives them to
    /// a screen reader (WebDriver's computed label and role).
    pub async fn accessible(&self, css: &str) -> Result<(String, String)> {
        let e = self.find(css).await?;
        let label = self.get(&format!("/element/{e}/computedlabel")).await?;
        let role = self.get(&format!("/element/{e}/computedrole")).await?;
        let text = |v: Value| v.as_str().unwrap_or_default().to_owned();
        Ok((text(label), text(role)))
    }

    /// Run `script` (a function body; `return` gives the value) in the page.
    pub async fn script(&self, script: &str) -> Result<Value> {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Save a PNG of the window to `target/console-screenshots/NAME.png`; its path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let v = self.get("/screenshot").await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().context("no screenshot data")?)
            .context("screenshot is not base64")?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join(format!("{name}.png"));
        write(&path, &png)?;
        Ok(path)
    }

    /// What the page wrote to its console (errors included), for failure messages.
    pub async fn console_log(&self) -> String {
        match self.post("/se/log", json!({"type": "browser"})).await {
            Ok(Value::Array(entries)) => entries
                .iter()
                .map(|e| format!("{} {}", e["level"], e["message"]))
                .collect::<Vec<_>>()
                .join("\n"),
            Ok(other) => other.to_string(),
            Err(e) => format!("(no browser log: {e:#})"),
        }
    }

    /// End the session: Chromium exits.
    pub async fn close(self) -> Result<()> {
        self.client.delete(&self.session).send().await?;
        Ok(())
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<Value> {
    value(client.post(url).json(body).send().await?).await
}

/// The `value` of a WebDriver answer, or its error.
async fn value(r: reqwest::Response) -> Result<Value> {
    let status = r.status();
    let body: Value = r.json().await.context("WebDriver answer is not JSON")?;
    if !status.is_success() {
        bail!("WebDriver error {status}: {}", body["value"]);
    }
    let v = body["value"].clone();
    // A new session answers {"value": {"sessionId", "capabilities"}}.
    Ok(v)
}
