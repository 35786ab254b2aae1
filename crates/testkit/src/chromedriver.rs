//! Headless Chromium behind Debian's chromedriver, launched for one test or bench run: the
//! browser end-to-end tests and the `browser` benchmark start it the same way, and everything
//! it started (chromedriver and the Chromium processes of its profile) ends on drop, so a
//! failing test leaves no browser behind.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

/// The Chromium binary chromedriver is told to run (Debian's `chromium` package).
pub const CHROMIUM_BIN: &str = "/usr/bin/chromium";

/// How to launch.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    /// Where chromedriver's stderr goes (appended); `None` discards it.
    pub driver_log: Option<&'a Path>,
    /// Whether Chromium keeps the page's console messages for chromedriver's `se/log`
    /// (`goog:loggingPrefs`).
    pub console_log: bool,
    /// How long chromedriver may take to listen, and then to open the session, each.
    pub start_timeout: Duration,
}

/// Why [`HeadlessChromium::launch`] failed; each says what to install or look at.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A local resource (temporary profile, free port, log file) was not available.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// chromedriver could not be started.
    #[error("cannot spawn chromedriver: {0} (apt-get install chromium chromium-driver)")]
    Spawn(io::Error),
    /// chromedriver did not say it listens in time.
    #[error("chromedriver did not start within {0:?}")]
    NotStarted(Duration),
    /// chromedriver listens, but no WebDriver session with Chromium opened.
    #[error("WebDriver session with {CHROMIUM_BIN}: {0}")]
    Session(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Io { what, source }
}

/// A WebDriver session with a headless Chromium on a temporary profile, through chromedriver on
/// a free port of 127.0.0.1.
pub struct HeadlessChromium {
    /// The WebDriver session.
    pub client: Client,
    procs: Processes,
}

/// chromedriver and the profile its Chromium runs on; ends both on drop.
struct Processes {
    driver: Child,
    driver_port: u16,
    profile: tempfile::TempDir,
}

impl HeadlessChromium {
    /// Starts chromedriver, waits until it listens, and opens the session.
    pub async fn launch(opts: &Options<'_>) -> Result<HeadlessChromium, LaunchError> {
        // The process-wide provider for code that builds rustls configs without naming one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let profile = tempfile::tempdir().map_err(io_err("temporary Chromium profile"))?;
        // Bound and released: chromedriver takes a port number only.
        let driver_port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io_err("a free port for chromedriver"))?
            .port();
        let stderr = match opts.driver_log {
            Some(path) => Stdio::from(
                File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(io_err(format!("creating {}", path.display())))?,
            ),
            None => Stdio::null(),
        };
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(LaunchError::Spawn)?;
        let pipe = driver.stdout.take();
        // From here on, dropping `procs` ends chromedriver and the profile's Chromium.
        let procs = Processes {
            driver,
            driver_port,
            profile,
        };
        // chromedriver prints "... started successfully on port N." once it listens.
        let (tx, rx) = mpsc::channel::<String>();
        if let Some(pipe) = pipe {
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let deadline = Instant::now() + opts.start_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("started successfully") => break,
                Ok(_) => {}
                Err(_) => return Err(LaunchError::NotStarted(opts.start_timeout)),
            }
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("acceptInsecureCerts".into(), json!(true));
        if opts.console_log {
            caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        }
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM_BIN,
                "args": [
                    "--headless=new",
                    "--ignore-certificate-errors",
                    "--no-sandbox",
                    "--autoplay-policy=no-user-gesture-required",
                    format!("--user-data-dir={}", procs.profile.path().display()),
                    "--window-size=1280,900",
                    "--disable-dev-shm-usage",
                    "--mute-audio",
                    "--no-first-run",
                    "--disable-breakpad",
                    "--disable-crash-reporter",
                ],
            }),
        );
        let connect = async {
            // chromedriver speaks plain HTTP on loopback: no TLS connector.
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{driver_port}"))
                .await
                .map_err(|e| LaunchError::Session(e.to_string()))
        };
        let client = match tokio::time::timeout(opts.start_timeout, connect).await {
            Ok(c) => c?,
            Err(_) => {
                return Err(LaunchError::Session(format!(
                    "not opened within {:?}",
                    opts.start_timeout
                )))
            }
        };
        Ok(HeadlessChromium { client, procs })
    }

    /// The port chromedriver listens on (for its endpoints fantoccini does not wrap, `se/log`).
    pub fn driver_port(&self) -> u16 {
        self.procs.driver_port
    }

    /// Ends the session (Chromium exits), bounded; then drop stops chromedriver and anything
    /// left of this profile's Chromium.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.clone().close()).await;
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Chromium processes outlive a killed chromedriver: end those of this profile only
        // (their command lines carry its unique --user-data-dir), each by its process id.
        let marker = format!("--user-data-dir={}", self.profile.path().display());
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
                continue;
            };
            if String::from_utf8_lossy(&cmdline).contains(&marker) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}
