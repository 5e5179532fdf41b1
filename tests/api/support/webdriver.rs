//! A small WebDriver client for the dashboard test: starts Debian's `chromedriver` on a free
//! port, opens one headless Chromium session and speaks the W3C WebDriver protocol over HTTP
//! with the `reqwest` client the tests already use. Both processes end when [`Browser`] drops.
//!
//! [`Browser::start`] returns `None` only when `chromium` or `chromedriver` is not installed
//! (scripts/test.sh installs both); the caller then skips loudly.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::free_port;

/// The W3C name of an element reference in answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const CHROMIUM_PATHS: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
const DRIVER_PATHS: [&str; 2] = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];

/// One headless Chromium session, driven through its chromedriver.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

fn first_existing(paths: &[&'static str]) -> Option<&'static str> {
    paths.iter().copied().find(|path| Path::new(path).exists())
}

impl Browser {
    /// Starts chromedriver and a headless session; `None` when the browser is not installed.
    pub async fn start() -> Option<Browser> {
        let chromium = first_existing(&CHROMIUM_PATHS)?;
        let driver_path = first_existing(&DRIVER_PATHS)?;
        let port = free_port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: reqwest::Client::new(),
        };
        browser.wait_until_ready().await;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1400"],
            },
        }}});
        let answer = browser.call("POST", "/session", capabilities).await;
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        Some(browser)
    }

    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let status = self.http.get(format!("{}/status", self.base)).send().await;
            if let Ok(response) = status {
                if let Ok(body) = response.json::<Value>().await {
                    if body["value"]["ready"] == true {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not become ready within 20 s");
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let answer: Value = request
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("WebDriver JSON");
        if answer["value"]["error"].is_string() {
            panic!("WebDriver {method} {path}: {}", answer["value"]);
        }
        answer.get("value").cloned().unwrap_or(answer)
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url`.
    pub async fn open(&self, url: &str) {
        self.call("POST", &self.session_path("/url"), json!({ "url": url }))
            .await;
    }

    /// Runs `script` (a function body; `arguments` as in WebDriver) and returns its value.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        let body = json!({ "script": script, "args": args });
        self.call("POST", &self.session_path("/execute/sync"), body)
            .await
    }

    async fn find(&self, using: &str, selector: &str) -> String {
        let body = json!({"using": using, "value": selector});
        let found = self
            .call("POST", &self.session_path("/element"), body)
            .await;
        found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector}: {found}"))
            .to_string()
    }

    async fn element(&self, css: &str) -> String {
        self.find("css selector", css).await
    }

    async fn click_element(&self, id: &str) {
        let path = self.session_path(&format!("/element/{id}/click"));
        self.call("POST", &path, json!({})).await;
    }

    /// Clicks the element `css` selects, as a user would.
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.click_element(&id).await;
    }

    /// Clicks the row of the table `table_id` that has a cell reading exactly `text`.
    pub async fn click_row(&self, table_id: &str, text: &str) {
        let xpath = format!("//table[@id='{table_id}']//tr[td[normalize-space()='{text}']]");
        let id = self.find("xpath", &xpath).await;
        self.click_element(&id).await;
    }

    /// Clears the input `css` selects and types `text` into it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        let clear = self.session_path(&format!("/element/{id}/clear"));
        self.call("POST", &clear, json!({})).await;
        if !text.is_empty() {
            let value = self.session_path(&format!("/element/{id}/value"));
            self.call("POST", &value, json!({ "text": text })).await;
        }
    }

    /// The rendered text of the element `css` selects ("" when hidden).
    pub async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        let path = self.session_path(&format!("/element/{id}/text"));
        self.call("GET", &path, Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the text of `css` satisfies `condition`, and returns it; panics after 15 s.
    pub async fn wait_for_text(
        &self,
        css: &str,
        what: &str,
        condition: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.text(css).await;
            if condition(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {what}; it shows {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = self
            .call("GET", &self.session_path("/screenshot"), Value::Null)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 text"))
            .expect("a PNG in base64")
    }

    /// Ends the session.
    pub async fn close(mut self) {
        self.call("DELETE", &self.session_path(""), Value::Null)
            .await;
        self.session.clear();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed midway still ends its browser: chromedriver closes it when the
        // session is deleted (a plain blocking request, as drop cannot await).
        if !self.session.is_empty() {
            let address = self.base.trim_start_matches("http://").to_string();
            if let Ok(mut stream) = TcpStream::connect(address) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let request = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                    self.session
                );
                let _ = stream.write_all(request.as_bytes());
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
