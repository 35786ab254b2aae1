//! Harness of the browser end-to-end tests: the real `vigil demo` ([`Demo`]), Debian's
//! chromedriver driving headless Chromium through fantoccini ([`Browser`]), and a small HTTPS
//! client pinned to the demo's certificate fingerprint ([`Api`]) for what a test does beside the
//! browser (API calls, downloading a clip with the browser's session cookie).
//!
//! Everything is bounded: each wait has a timeout and panics with what it saw, and every process
//! (the demo, chromedriver, and the Chromium processes it started) is killed on drop, so a failing
//! test never leaves a browser behind.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use vigil_testkit::chromedriver::{HeadlessChromium, Options};

use super::vigil_bin;

mod app;
mod https;
#[allow(unused_imports)] // Each test binary uses a different part.
pub use app::*;
#[allow(unused_imports)] // Each test binary uses a different part.
pub use https::{decode_chunked, exchange, Api, HttpResponse};

/// How long `vigil demo` may take to print its lines (certificate generation, two encoders).
const DEMO_START: Duration = Duration::from_secs(60);
/// How long chromedriver + Chromium may take to open a session.
const BROWSER_START: Duration = Duration::from_secs(45);

/// `target/test-artifacts/` (next to the binary under test's profile directory), created.
pub fn artifacts_dir() -> PathBuf {
    let bin = Path::new(vigil_bin());
    let target = bin
        .parent()
        .and_then(Path::parent)
        .expect("binary under target/PROFILE/");
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

/// A running `vigil demo` with its own data directory.
pub struct Demo {
    child: Child,
    /// `--data`, removed on drop.
    pub data: tempfile::TempDir,
    /// From `listening https ADDR`.
    pub https: SocketAddr,
    /// From `listening rtsp ADDR`, if printed.
    pub rtsp: Option<SocketAddr>,
    /// From `tls-fingerprint sha256 HEX`.
    pub fingerprint: String,
    /// From `setup-url URL`, as printed.
    pub setup_url: String,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    /// Spawns `vigil demo --data TMP --listen 127.0.0.1:0 --rtsp 127.0.0.1:0` and waits for its
    /// `listening https`, `tls-fingerprint` and `setup-url` lines.
    pub fn start() -> Demo {
        let data = tempfile::tempdir().expect("tempdir");
        let (child, rx, stdout, stderr) = Self::spawn(data.path(), "127.0.0.1:0");
        let mut demo = Demo {
            child,
            data,
            https: "0.0.0.0:0".parse().unwrap(),
            rtsp: None,
            fingerprint: String::new(),
            setup_url: String::new(),
            stderr,
            stdout,
        };
        demo.read_lines(&rx, true);
        demo
    }

    /// Stops the demo with `signal` (`TERM`: a user's restart; `KILL`: a crash, or to the
    /// browser the same as the network dropping) and starts it again on the same data
    /// directory and HTTPS port: the browser sees the server and both cameras drop and return.
    pub fn restart(&mut self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            assert!(
                Instant::now() < deadline,
                "vigil demo did not exit within 20 s of SIG{signal}"
            );
            thread::sleep(Duration::from_millis(50));
        }
        let listen = format!("127.0.0.1:{}", self.https.port());
        let (child, rx, stdout, stderr) = Self::spawn(self.data.path(), &listen);
        self.child = child;
        self.stdout = stdout;
        self.stderr = stderr;
        let old = (self.https, self.fingerprint.clone());
        self.read_lines(&rx, false);
        assert_eq!(self.https, old.0, "restarted on another address");
        assert_eq!(
            self.fingerprint, old.1,
            "restarted with another certificate"
        );
    }

    #[allow(clippy::type_complexity)]
    fn spawn(
        data: &Path,
        listen: &str,
    ) -> (
        Child,
        mpsc::Receiver<String>,
        Arc<Mutex<Vec<String>>>,
        Arc<Mutex<String>>,
    ) {
        let mut child = Command::new(vigil_bin())
            .arg("demo")
            .arg("--data")
            .arg(data)
            .args(["--listen", listen, "--rtsp", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vigil demo");
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = Arc::clone(&stderr);
            let pipe = child.stderr.take().expect("stderr pipe");
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut s = stderr.lock().unwrap();
                    if s.len() < 4 << 20 {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        {
            let stdout = Arc::clone(&stdout);
            let pipe = child.stdout.take().expect("stdout pipe");
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    stdout.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        (child, rx, stdout, stderr)
    }

    /// Reads stdout lines until `listening https` and `tls-fingerprint` (and `setup-url` if
    /// `setup`) were printed.
    fn read_lines(&mut self, rx: &mpsc::Receiver<String>, setup: bool) {
        let (mut https, mut fingerprint, mut setup_url) = (None, None, None);
        let deadline = Instant::now() + DEMO_START;
        while https.is_none() || fingerprint.is_none() || (setup && setup_url.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "vigil demo did not print listening https / tls-fingerprint{} \
                     within {DEMO_START:?} (exit status {status:?}); stdout: {:?}",
                    if setup { " / setup-url" } else { "" },
                    self.stdout.lock().unwrap()
                );
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["listening", "https", addr] => {
                    let addr: SocketAddr = addr.parse().expect("https address");
                    assert_ne!(addr.port(), 0, "port 0 printed: {line:?}");
                    https = Some(addr);
                }
                ["listening", "rtsp", addr] => self.rtsp = addr.parse().ok(),
                ["tls-fingerprint", "sha256", fp] => fingerprint = Some((*fp).to_owned()),
                ["setup-url", url] => setup_url = Some((*url).to_owned()),
                _ => {}
            }
        }
        self.https = https.unwrap();
        self.fingerprint = fingerprint.unwrap();
        if let Some(u) = setup_url {
            self.setup_url = u;
        }
    }

    /// `https://127.0.0.1:PORT` (the address the demo really listens on).
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https.port())
    }

    /// The setup URL with its host replaced by `127.0.0.1:PORT` (the demo prints `localhost`
    /// or the machine's name for humans).
    pub fn local_setup_url(&self) -> String {
        let mut url = url::Url::parse(&self.setup_url).expect("setup-url parses");
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.https.port())).unwrap();
        url.to_string()
    }

    /// The token of the setup URL (after `#/setup/`).
    pub fn setup_token(&self) -> String {
        self.setup_url
            .split_once("#/setup/")
            .map(|(_, t)| t.to_owned())
            .expect("setup-url has #/setup/TOKEN")
    }

    /// A client of the demo's API, pinned to its certificate.
    pub fn api(&self) -> Api {
        Api::https(
            SocketAddr::from(([127, 0, 0, 1], self.https.port())),
            &self.fingerprint,
        )
    }

    /// Everything the demo wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// True while the demo has not exited.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            let text = self.stderr_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(60)..].join("\n");
            eprintln!("---- vigil demo stderr (last 60 lines) ----\n{tail}\n---- end ----");
        }
    }
}

/// Headless Chromium driven through chromedriver.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    chrome: HeadlessChromium,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session with a temporary
    /// profile. Panics (never skips) when chromium or chromedriver is missing.
    pub async fn start() -> Browser {
        let opts = Options {
            driver_log: None,
            console_log: true,
            start_timeout: BROWSER_START,
        };
        let chrome = HeadlessChromium::launch(&opts)
            .await
            .unwrap_or_else(|e| panic!("{e} (scripts/test.sh installs chromium-driver)"));
        Browser {
            client: chrome.client.clone(),
            chrome,
        }
    }

    /// Closes the session (Chromium exits) and stops chromedriver.
    pub async fn close(self) {
        // Drop kills chromedriver and anything left of this profile's Chromium.
        self.chrome.close().await;
    }

    /// Navigates to `url` (bounded).
    pub async fn goto(&self, url: &str) {
        tokio::time::timeout(Duration::from_secs(30), self.client.goto(url))
            .await
            .unwrap_or_else(|_| panic!("goto {url}: timeout"))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        tokio::time::timeout(Duration::from_secs(20), self.client.execute(script, args))
            .await
            .unwrap_or_else(|_| panic!("script timed out: {script}"))
            .unwrap_or_else(|e| panic!("script failed: {e}: {script}"))
    }

    /// Polls `script` every 200 ms until it returns something other than `null`/`false`/`undefined`
    /// and returns that; panics after `timeout` with `what` and the last value and page state.
    pub async fn wait_js(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(script, vec![]).await;
            if !(v.is_null() || v == Value::Bool(false)) {
                return v;
            }
            if Instant::now() >= deadline {
                let page = self.page_summary().await;
                let logs = self.console_log().await;
                panic!(
                    "timed out after {timeout:?} waiting for {what}\npage: {page}\nconsole: {logs}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for an element matching `css` to exist.
    pub async fn wait_css(&self, css: &str, timeout: Duration) -> fantoccini::elements::Element {
        let script = "return document.querySelector(arguments[0]) !== null;";
        let deadline = Instant::now() + timeout;
        loop {
            if self.js(script, vec![json!(css)]).await == Value::Bool(true) {
                return self.client.find(Locator::Css(css)).await.unwrap();
            }
            if Instant::now() >= deadline {
                let page = self.page_summary().await;
                let logs = self.console_log().await;
                panic!("no element {css} after {timeout:?}\npage: {page}\nconsole: {logs}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// URL, hash and the start of the body's text: context for a failure message.
    pub async fn page_summary(&self) -> String {
        let script = "return location.href + ' | ' + \
                      (document.body ? document.body.innerText.slice(0, 600) : '<no body>');";
        match self.client.execute(script, vec![]).await {
            Ok(v) => v.as_str().unwrap_or_default().replace('\n', " / "),
            Err(e) => format!("<cannot read page: {e}>"),
        }
    }

    /// Saves a PNG screenshot as `target/test-artifacts/NAME.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, &png).expect("write screenshot");
        path
    }

    /// The value of the browser's cookie `name` (HttpOnly cookies included: WebDriver sees them).
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let all = self.client.get_all_cookies().await.expect("get cookies");
        all.iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }

    /// Clicks at viewport point (`x`, `y`) with a real pointer (down + up = click).
    pub async fn click_at(&self, x: f64, y: f64) {
        let mouse = MouseActions::new("mouse".to_owned())
            .then(PointerAction::MoveTo {
                duration: None,
                x: x.round(),
                y: y.round(),
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        self.client
            .perform_actions(mouse)
            .await
            .expect("pointer actions");
        let _ = self.client.release_actions().await;
    }

    /// True if a JavaScript dialog (alert, confirm, prompt) is open.
    pub async fn alert_open(&self) -> Option<String> {
        self.client.get_alert_text().await.ok()
    }

    /// A WebDriver command of this session that fantoccini does not wrap (e.g. the WebAuthn
    /// extension's virtual authenticators, W3C WebAuthn §11): `METHOD /session/ID/{path}`;
    /// the answer's `value`.
    pub async fn webdriver(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let session = self
            .client
            .session_id()
            .await
            .unwrap()
            .expect("a WebDriver session");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} /session/{session}/{path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.chrome.driver_port(),
            body.len()
        );
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.chrome.driver_port()))
            .await
            .unwrap();
        let resp = exchange(stream, req.as_bytes()).await.unwrap();
        let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        assert_eq!(resp.status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    /// The browser's console messages since the last call (chromedriver's `se/log`), one a line.
    pub async fn console_log(&self) -> String {
        let Ok(Some(session)) = self.client.session_id().await else {
            return "<no session>".to_owned();
        };
        let body = json!({"type": "browser"}).to_string();
        let req = format!(
            "POST /session/{session}/se/log HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.chrome.driver_port(),
            body.len()
        );
        let Ok(stream) =
            tokio::net::TcpStream::connect(("127.0.0.1", self.chrome.driver_port())).await
        else {
            return "<chromedriver gone>".to_owned();
        };
        let Ok(resp) = exchange(stream, req.as_bytes()).await else {
            return "<no log>".to_owned();
        };
        let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        v["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| format!("{} {}", e["level"], e["message"].as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}

/// Nearest-rank percentile of `v` (any order); NaN when empty.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// One displayed frame of a `<video>`, read back from its pixels.
#[derive(Debug, Clone, Copy)]
pub struct ShownFrame {
    /// The test pattern's code burned into the picture (capture time, frame counter).
    pub code: vigil_camera::testsrc::BurnedCode,
    /// When the frame was (to be) shown, ms since the epoch (`requestVideoFrameCallback`'s
    /// `expectedDisplayTime` on the wall clock).
    pub display_ms: f64,
    /// The video's media time of that frame, seconds.
    pub media_time: f64,
}

impl ShownFrame {
    /// Display time minus capture time: the latency a viewer sees, measured from the pixels,
    /// independent of the player's own bookkeeping (camera and browser share this clock).
    pub fn latency_ms(&self) -> f64 {
        self.display_ms - self.code.capture_us as f64 / 1000.0
    }
}

impl Browser {
    /// The next frame shown by the `<video>` matching `css`, with the code read from its
    /// pixels; `None` if no frame came within 5 s or its code is unreadable.
    pub async fn grab_frame(&self, css: &str) -> Option<ShownFrame> {
        use base64::Engine as _;
        let v = tokio::time::timeout(
            Duration::from_secs(20),
            self.client.execute_async(
                vigil_testkit::browser::GRAB_FRAME_JS,
                vec![json!(css), json!(96)],
            ),
        )
        .await
        .ok()?
        .ok()?;
        let w = u32::try_from(v["w"].as_u64()?).ok()?;
        let h = u32::try_from(v["h"].as_u64()?).ok()?;
        let y = base64::engine::general_purpose::STANDARD
            .decode(v["y"].as_str()?)
            .ok()?;
        let code = vigil_camera::testsrc::read_code(&y, w as usize, w, h)?;
        Some(ShownFrame {
            code,
            display_ms: v["displayMs"].as_f64()?,
            media_time: v["mediaTime"].as_f64()?,
        })
    }
}
