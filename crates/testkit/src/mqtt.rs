//! A real Mosquitto (Debian's package) on 127.0.0.1 and a free port, which can be stopped
//! and started again on the same port, and a test MQTT client (rumqttc) subscribed to
//! everything. Used by `vigil-alerts`' MQTT tests and the whole-system alerts test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Publish, QoS};
use serde_json::Value;
use tokio::sync::mpsc;

/// Debian's `mosquitto` (in `/usr/sbin`, often not on a user's `PATH`).
pub fn mosquitto_binary() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = Path::new(dir).join("mosquitto");
        if p.is_file() {
            return p;
        }
    }
    panic!("mosquitto not found: install Debian's `mosquitto` package (scripts/test.sh does)");
}

/// A port on 127.0.0.1 free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Mosquitto on 127.0.0.1 with persistence in a temp dir: the test subscriber's persistent
/// session (and the QoS 1 events queued for it) survives a broker restart, whoever of Vigil
/// and the subscriber reconnects first.
pub struct Broker {
    conf: PathBuf,
    /// The port it listens on (the same after a restart).
    pub port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// An anonymous broker with persistence (see [`Broker`]).
    pub fn start() -> Broker {
        Broker::start_with(|dir, port| {
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n",
                dir.display()
            )
        })
    }

    /// `conf(dir, port)` writes any files it needs into `dir` (certificates, password file)
    /// and returns the configuration.
    pub fn start_with(conf: impl FnOnce(&Path, u16) -> String) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let text = conf(dir.path(), port);
        let conf = dir.path().join("mosquitto.conf");
        // Started as root, Mosquitto drops to its own user, which cannot write the temp dir
        // (persistence) nor read its files: stay root then (ignored when not root).
        std::fs::write(&conf, format!("user root\nlog_dest stderr\n{text}")).unwrap();
        let mut b = Broker {
            conf,
            port,
            child: None,
            _dir: dir,
        };
        b.run();
        b
    }

    /// (Re)starts it on its port and waits until it accepts connections.
    pub fn run(&mut self) {
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&self.conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (Mosquitto saves its persistence file), and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let ok = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(ok.success(), "kill -TERM mosquitto failed");
            child.wait().unwrap();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A test client subscribed to `#`, keeping everything it receives in order.
pub struct Sub {
    rx: mpsc::UnboundedReceiver<Publish>,
    /// Everything received so far, in order.
    pub seen: Vec<Publish>,
    task: tokio::task::JoinHandle<()>,
}

impl Sub {
    /// `persistent`: the broker keeps the session (and queues QoS 1 messages) while away.
    pub async fn connect(port: u16, id: &str, persistent: bool) -> Sub {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_clean_session(!persistent);
        Sub::connect_with(opts).await
    }

    /// Connects with these options (TLS, credentials) and subscribes to `#`.
    pub async fn connect_with(mut opts: MqttOptions) -> Sub {
        opts.set_max_packet_size(1 << 20, 1 << 16);
        let (client, mut el) = AsyncClient::new(opts, 16);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, mut ready) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                        if ack.session_present {
                            ready_tx.send_replace(true);
                        } else {
                            client.subscribe("#", QoS::AtLeastOnce).await.unwrap();
                        }
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        ready_tx.send_replace(true);
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(_) => {}
                    // Broker away: retry soon, so the subscriber is back before Vigil.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|r| *r))
            .await
            .expect("the test subscriber never subscribed")
            .unwrap();
        Sub {
            rx,
            seen: Vec::new(),
            task,
        }
    }

    /// The next message received (not looking at those already seen).
    pub async fn next(&mut self) -> Publish {
        let p = tokio::time::timeout(Duration::from_secs(15), self.rx.recv())
            .await
            .expect("no message within 15 s")
            .unwrap();
        self.seen.push(p.clone());
        p
    }

    /// The first message, seen or arriving within 15 s, matching `pred`.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Publish) -> bool) -> Publish {
        self.wait(what, 0, Duration::from_secs(15), pred).await.1
    }

    /// The first message on `topic` with exactly `payload`, seen or arriving within 15 s.
    pub async fn topic(&mut self, topic: &str, payload: &[u8]) -> Publish {
        let what = format!("{topic} = {}", String::from_utf8_lossy(payload));
        self.wait(&what, 0, Duration::from_secs(15), |p| {
            p.topic == topic && p.payload.as_ref() == payload
        })
        .await
        .1
    }

    /// Forgets what was seen (to wait for a *new* message on a topic).
    pub fn clear(&mut self) {
        self.seen.clear();
        while self.rx.try_recv().is_ok() {}
    }

    /// Waits up to `timeout` for a message at position `from` or later matching `pred`;
    /// returns its position and the message.
    pub async fn wait(
        &mut self,
        what: &str,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&Publish) -> bool,
    ) -> (usize, Publish) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(i) = (from..self.seen.len()).find(|&i| pred(&self.seen[i])) {
                return (i, self.seen[i].clone());
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) => self.seen.push(p),
                _ => panic!(
                    "MQTT: no {what} within {timeout:?}; received since: {:#?}",
                    self.describe(from)
                ),
            }
        }
    }

    /// `topic` with exactly `payload`, at `from` or later.
    pub async fn wait_payload(
        &mut self,
        topic: &str,
        payload: &str,
        from: usize,
        timeout: Duration,
    ) -> (usize, Publish) {
        self.wait(&format!("{topic} = {payload}"), from, timeout, |p| {
            p.topic == topic && p.payload.as_ref() == payload.as_bytes()
        })
        .await
    }

    /// An event of `kind` (JSON `type`) on `topic` matching `pred`.
    pub async fn wait_event(
        &mut self,
        topic: &str,
        kind: &str,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> (usize, Value) {
        let (i, p) = self
            .wait(&format!("{kind} on {topic}"), from, timeout, |p| {
                p.topic == topic && {
                    let v = json(&p.payload);
                    v["type"] == kind && pred(&v)
                }
            })
            .await;
        assert_eq!(p.qos, QoS::AtLeastOnce, "events are published with QoS 1");
        (i, json(&p.payload))
    }

    /// The messages from position `from`, shortened, for failure messages.
    pub fn describe(&self, from: usize) -> Vec<String> {
        self.seen
            .iter()
            .skip(from)
            .map(|p| {
                let text = String::from_utf8_lossy(&p.payload);
                let short: String = text.chars().take(160).collect();
                format!(
                    "{}{} {short}",
                    p.topic,
                    if p.retain { " (retained)" } else { "" }
                )
            })
            .collect()
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Parses a JSON payload (`Null` if it is not JSON).
pub fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}
