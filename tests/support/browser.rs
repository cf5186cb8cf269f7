//! A real headless Chromium driven over W3C WebDriver (Debian's `chromium` and `chromium-driver`): a
//! `chromedriver` of its own on a free port, one session, and the few commands the page tests and the
//! page benchmark use — open a URL, run a script, wait for a condition in the page, take a screenshot,
//! read the browser's console log.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use super::{free_port, try_http_with};

/// How long chromedriver has to start answering.
const DRIVER_START: Duration = Duration::from_secs(20);

/// A browser session and the driver it runs under (both end when it is closed or dropped).
pub struct Browser {
    driver: tokio::process::Child,
    base: String,
    session: String,
}

/// Whether this process runs as root (Chromium's sandbox then needs `--no-sandbox`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|uids| uids.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width`×`height` with its console logged.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect(
                "chromedriver runs (Debian's chromium and chromium-driver; .ci/run installs them)",
            );
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok((200, _, text)) =
                try_http_with("GET", &format!("{base}/status"), "", &[]).await
            {
                if serde_json::from_str::<Value>(&text).unwrap()["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                started.elapsed() < DRIVER_START,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut args = vec![
            "--headless=new".to_string(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--hide-scrollbars".into(),
            format!("--window-size={width},{height}"),
        ];
        if is_root() {
            args.push("--no-sandbox".into());
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
        };
        let made = browser.command("POST", "/session", capabilities).await;
        browser.session = made["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        browser
    }

    /// One WebDriver command: its `value`; a WebDriver error panics with its message.
    async fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let json = [("content-type", "application/json")];
        let (status, _, text) = try_http_with(method, &url, &body, &json)
            .await
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(status, 200, "chromedriver {method} {path}: {answer}");
        answer["value"].clone()
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.command("POST", &self.at("/url"), json!({ "url": url }))
            .await;
    }

    /// Runs `body` (a function body: `return …`) in the page and answers what it returns.
    pub async fn script(&self, body: &str) -> Value {
        let call = json!({ "script": body, "args": [] });
        self.command("POST", &self.at("/execute/sync"), call).await
    }

    /// Waits until the expression `condition` is true in the page; panics after `limit` with `what`.
    pub async fn wait_for(&self, what: &str, condition: &str, limit: Duration) {
        let started = Instant::now();
        let script = format!("return !!({condition});");
        while self.script(&script).await != Value::Bool(true) {
            assert!(
                started.elapsed() < limit,
                "the page never showed {what} within {limit:?} ({condition})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the window, written to `path` (its folder made when missing).
    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .command("GET", &self.at("/screenshot"), Value::Null)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// The console's entries since the last call (chromedriver's log of type `browser`), as
    /// `LEVEL message`.
    pub async fn console(&self) -> Vec<String> {
        let log = self
            .command("POST", &self.at("/se/log"), json!({ "type": "browser" }))
            .await;
        (log.as_array().into_iter().flatten())
            .map(|e| format!("{} {}", e["level"].as_str().unwrap_or("?"), e["message"]))
            .collect()
    }

    /// Ends the session (and the browser), then the driver.
    pub async fn close(mut self) {
        let _ = self.command("DELETE", &self.at(""), Value::Null).await;
        let _ = self.driver.kill().await;
    }
}
