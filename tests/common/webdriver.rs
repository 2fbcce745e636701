//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`), for
//! the dashboard test: a small client of the W3C protocol over hyper (already a dependency),
//! enough to load pages, fill and click, read text and take screenshots.
//!
//! Without the browser a test says so on stderr and passes, unless HEARTH_TEST_REQUIRE_LAB=1
//! (scripts/test sets it and installs both packages), where a missing browser is a failure.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The browser and its driver, or `None` when they are not installed (see above).
pub fn browser(suite: &str) -> Option<(PathBuf, PathBuf)> {
    let chromium = on_path("chromium").or_else(|| on_path("chromium-browser"));
    let driver = on_path("chromedriver");
    if let (Some(c), Some(d)) = (chromium, driver) {
        return Some((c, d));
    }
    if std::env::var("HEARTH_TEST_REQUIRE_LAB").as_deref() == Ok("1") {
        panic!(
            "HEARTH_TEST_REQUIRE_LAB=1 but chromium or chromedriver is missing: \
             apt-get install chromium chromium-driver (scripts/test does)"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "{suite}: skipped (chromium and chromium-driver not installed)"
    );
    None
}

/// One WebDriver session in a chromedriver process of its own (killed on drop).
pub struct Browser {
    _driver: tokio::process::Child,
    port: u16,
    session: String,
}

impl Browser {
    pub async fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = tokio::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let mut b = Browser {
            _driver: driver,
            port,
            session: String::new(),
        };
        // chromedriver takes a moment to listen; give it ten seconds.
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(v) = b.try_call("GET", "/status", None).await
                && v["value"]["ready"] == true
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not become ready on port {port}");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_str().unwrap(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1700",
                         "--no-first-run", "--no-default-browser-check"],
            },
        } } });
        let v = b.call("POST", "/session", Some(caps)).await;
        b.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        b
    }

    async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, format!("127.0.0.1:{}", self.port))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&bytes)))
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self
            .try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        if v["value"]["error"].is_string() {
            panic!("WebDriver {method} {path}: {}", v["value"]);
        }
        v
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })))
            .await;
    }

    pub async fn url(&self) -> String {
        let v = self.call("GET", &self.at("/url"), None).await;
        v["value"].as_str().unwrap().to_owned()
    }

    /// Waits (up to 30 s: a resume runs preflight first) until the page's URL ends with
    /// `suffix`: a click that submits a form returns before the next page has loaded.
    pub async fn wait_for_url(&self, suffix: &str) {
        for _ in 0..300 {
            if self.url().await.ends_with(suffix) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the browser never reached …{suffix}; it is at {}",
            self.url().await
        );
    }

    pub async fn source(&self) -> String {
        let v = self.call("GET", &self.at("/source"), None).await;
        v["value"].as_str().unwrap().to_owned()
    }

    /// Every element matching the CSS selector (their WebDriver ids).
    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .call(
                "POST",
                &self.at("/elements"),
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[ELEMENT].as_str().unwrap().to_owned())
            .collect()
    }

    /// The one element matching the CSS selector.
    pub async fn find(&self, css: &str) -> String {
        let mut all = self.find_all(css).await;
        assert_eq!(all.len(), 1, "expected one {css:?} on {}", self.url().await);
        all.remove(0)
    }

    pub async fn click(&self, element: &str) {
        self.call(
            "POST",
            &self.at(&format!("/element/{element}/click")),
            Some(json!({})),
        )
        .await;
    }

    pub async fn type_into(&self, element: &str, text: &str) {
        self.call(
            "POST",
            &self.at(&format!("/element/{element}/value")),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn text(&self, element: &str) -> String {
        let v = self
            .call("GET", &self.at(&format!("/element/{element}/text")), None)
            .await;
        v["value"].as_str().unwrap().to_owned()
    }

    /// A PNG of the viewport, written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let v = self.call("GET", &self.at("/screenshot"), None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    pub async fn quit(self) {
        let _ = self.try_call("DELETE", &self.at(""), None).await;
    }
}
