//! Driving the web app in headless Chromium for the `browser` bench: `vigil demo` started with
//! its own data directory, Debian's chromedriver on a free port, the setup form filled, and the
//! live player's own measurements (`window.__vigil.stats`, see the DOM contract) read back.
//!
//! The player measures latency from the capture time each fragment carries (the test pattern's
//! clock) to the frame's display time reported by `requestVideoFrameCallback`, so the figures
//! are what a person in front of the browser would see, not a server-side estimate.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use vigil_testkit::chromedriver::{HeadlessChromium, Options};

use crate::children::ChildGuard;
use crate::BenchError;

fn err(msg: impl Into<String>) -> BenchError {
    BenchError::Server(msg.into())
}

/// A running `vigil demo`, or `vigil serve` recording one `vigil camera`
/// ([`Demo::serve_camera`]).
pub struct Demo {
    guard: ChildGuard,
    /// The camera of [`Demo::serve_camera`] (stopped on drop).
    _camera: Option<crate::servers::ServerGuard>,
    /// The HTTPS port it listens on (127.0.0.1).
    pub https_port: u16,
    /// `setup-url` as printed (host replaced by 127.0.0.1:PORT).
    pub setup_url: String,
    _data: tempfile::TempDir,
}

impl Demo {
    /// Spawns `vigil demo --data TMP --listen 127.0.0.1:0 --rtsp 127.0.0.1:0` (stderr to `log`)
    /// and waits up to 60 s for its `listening https` and `setup-url` lines.
    pub fn start(vigil: &Path, log: &Path) -> Result<Demo, BenchError> {
        let data = tempfile::tempdir().map_err(BenchError::io("tempdir"))?;
        let mut cmd = Command::new(vigil);
        cmd.arg("demo").arg("--data").arg(data.path()).args([
            "--listen",
            "127.0.0.1:0",
            "--rtsp",
            "127.0.0.1:0",
        ]);
        Demo::spawn(cmd, data, None, log, "vigil demo")
    }

    /// `vigil serve` (stderr to `log`) recording one `vigil camera --source testsrc` of
    /// `width`x`height` at `fps` (main stream only, named `cam`), the web app on 127.0.0.1.
    pub fn serve_camera(
        vigil: &Path,
        log: &Path,
        (width, height): (u32, u32),
        fps: u32,
    ) -> Result<Demo, BenchError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let data = tempfile::tempdir().map_err(BenchError::io("tempdir"))?;
        let cam_dir = data.path().join("camera");
        std::fs::create_dir_all(&cam_dir).map_err(BenchError::io("camera data directory"))?;
        let password = crate::servers::run_password();
        crate::servers::vigil_add_user(vigil, &cam_dir, "bench", &password)?;
        let mut cam = Command::new(vigil);
        cam.args(["camera", "--source", "testsrc", "--data"])
            .arg(&cam_dir)
            .args(["--rtsp", "127.0.0.1:0", "--rtsps", "off", "--http", "off"])
            .args(["--onvif", "off", "--sub-size", "off"])
            .args(["--size", &format!("{width}x{height}")])
            .args(["--fps", &fps.to_string()]);
        let cam_log = log.with_extension("camera.log");
        let camera = crate::servers::spawn_server("vigil camera", cam, &cam_log)?;
        let config = data.path().join("vigil.toml");
        let text = format!(
            "data_dir = \"nvr\"\n[web]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"off\"\n\
             [[camera]]\nname = \"cam\"\nurl = \"rtsp://{}/main\"\n\
             username = \"bench\"\npassword = \"{password}\"\n",
            camera.rtsp_addr
        );
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&config)
            .map_err(BenchError::io("writing vigil.toml"))?;
        f.write_all(text.as_bytes())
            .map_err(BenchError::io("writing vigil.toml"))?;
        let mut cmd = Command::new(vigil);
        cmd.arg("serve").arg("--config").arg(&config);
        Demo::spawn(cmd, data, Some(camera), log, "vigil serve")
    }

    /// Spawns `cmd` and waits up to 60 s for its `listening https` and `setup-url` lines.
    fn spawn(
        cmd: Command,
        data: tempfile::TempDir,
        camera: Option<crate::servers::ServerGuard>,
        log: &Path,
        what: &str,
    ) -> Result<Demo, BenchError> {
        let (guard, lines) = ChildGuard::spawn_with_lines(cmd, log, Duration::from_secs(5))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut port, mut setup) = (None, None);
        while port.is_none() || setup.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).map_err(|_| {
                err(format!(
                    "{what} printed no listening https / setup-url within 60 s (see {})",
                    log.display()
                ))
            })?;
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["listening", "https", addr] => {
                    port = addr
                        .rsplit_once(':')
                        .and_then(|(_, p)| p.parse::<u16>().ok());
                }
                ["setup-url", url] => setup = Some((*url).to_owned()),
                _ => {}
            }
        }
        let (Some(port), Some(setup)) = (port, setup) else {
            return Err(err("unreachable: loop ends with both lines"));
        };
        let mut url = url::Url::parse(&setup).map_err(|e| err(format!("setup-url: {e}")))?;
        url.set_host(Some("127.0.0.1"))
            .map_err(|e| err(format!("setup-url: {e}")))?;
        url.set_port(Some(port))
            .map_err(|()| err("setup-url: cannot set port"))?;
        Ok(Demo {
            guard,
            _camera: camera,
            https_port: port,
            setup_url: url.to_string(),
            _data: data,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }

    /// The demo's process id (for CPU sampling).
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }
}

/// Headless Chromium driven through chromedriver; everything is stopped on drop.
pub struct Chromium {
    /// The WebDriver session.
    pub client: Client,
    chrome: HeadlessChromium,
}

impl Chromium {
    /// Starts chromedriver (stderr to `log`) on a free port and opens a headless session with a
    /// temporary profile.
    pub async fn start(log: &Path) -> Result<Chromium, BenchError> {
        let opts = Options {
            driver_log: Some(log),
            console_log: false,
            start_timeout: Duration::from_secs(30),
        };
        let chrome = HeadlessChromium::launch(&opts)
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(Chromium {
            client: chrome.client.clone(),
            chrome,
        })
    }

    /// Ends the session (Chromium exits), then chromedriver.
    pub async fn close(self) {
        self.chrome.close().await;
    }

    /// Runs `script` (a function body) and returns its value.
    pub async fn js(&self, script: &str) -> Result<Value, BenchError> {
        self.client
            .execute(script, vec![])
            .await
            .map_err(|e| err(format!("script failed: {e}")))
    }

    /// Polls `script` every 100 ms until it returns something other than null/false.
    pub async fn wait_js(
        &self,
        what: &str,
        script: &str,
        timeout: Duration,
    ) -> Result<Value, BenchError> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(script).await?;
            if !(v.is_null() || v == Value::Bool(false)) {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(err(format!(
                    "timed out after {timeout:?} waiting for {what}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens the setup link and creates the admin through `form#setup-form`; waits for the grid.
    pub async fn setup_admin(
        &self,
        setup_url: &str,
        username: &str,
        password: &str,
    ) -> Result<(), BenchError> {
        self.client
            .goto(setup_url)
            .await
            .map_err(|e| err(format!("goto {setup_url}: {e}")))?;
        let form_ready = "return document.querySelector('form#setup-form') !== null;";
        self.wait_js("form#setup-form", form_ready, Duration::from_secs(20))
            .await?;
        for (name, value) in [
            ("username", username),
            ("password", password),
            ("password2", password),
        ] {
            let css = format!("form#setup-form [name={name}]");
            let el = self
                .client
                .find(Locator::Css(&css))
                .await
                .map_err(|e| err(format!("{css}: {e}")))?;
            el.send_keys(value)
                .await
                .map_err(|e| err(format!("{css}: {e}")))?;
        }
        self.client
            .find(Locator::Css("form#setup-form button[type=submit]"))
            .await
            .map_err(|e| err(format!("setup submit: {e}")))?
            .click()
            .await
            .map_err(|e| err(format!("setup submit: {e}")))?;
        self.wait_js(
            "the grid",
            "return document.querySelector('#grid .tile video') !== null;",
            Duration::from_secs(30),
        )
        .await?;
        Ok(())
    }

    /// A copy of `window.__vigil.stats` (null before the player made it).
    pub async fn stats(&self) -> Result<Value, BenchError> {
        self.js("return (window.__vigil && window.__vigil.stats) \
             ? JSON.parse(JSON.stringify(window.__vigil.stats)) : null;")
            .await
    }
}

impl Chromium {
    /// Latency (ms) of the next frame the `<video>` matching `css` shows, from its pixels:
    /// display time minus the capture time the test pattern burned into the picture (camera
    /// and browser share the wall clock). `None` if no frame came or the code is unreadable.
    pub async fn pixel_latency_ms(&self, css: &str) -> Option<f64> {
        use base64::Engine as _;
        let v = self
            .client
            .execute_async(
                vigil_testkit::browser::GRAB_FRAME_JS,
                vec![json!(css), json!(96)],
            )
            .await
            .ok()?;
        let w = u32::try_from(v["w"].as_u64()?).ok()?;
        let h = u32::try_from(v["h"].as_u64()?).ok()?;
        let y = base64::engine::general_purpose::STANDARD
            .decode(v["y"].as_str()?)
            .ok()?;
        let code = vigil_camera::testsrc::read_code(&y, w as usize, w, h)?;
        Some(v["displayMs"].as_f64()? - code.capture_us as f64 / 1000.0)
    }
}

pub use vigil_testkit::browser::new_latencies as latencies_between;

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let Ok(f) = std::fs::File::open(log) else {
        return String::new();
    };
    let all: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
