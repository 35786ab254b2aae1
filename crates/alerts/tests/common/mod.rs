//! Shared by the MQTT tests: a real Mosquitto on 127.0.0.1 and a collecting subscriber.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Publish, QoS};
use tokio::sync::mpsc;

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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Mosquitto on 127.0.0.1 with persistence in a temp dir, so a subscriber's persistent
/// session (and the messages queued for it) survives a broker restart.
pub struct Broker {
    conf: PathBuf,
    pub port: u16,
    child: Option<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(|dir, port| {
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n",
                dir.display()
            )
        })
    }

    /// `conf(dir, port)` writes any files it needs into `dir` and returns the configuration.
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

    pub fn run(&mut self) {
        let child = std::process::Command::new(mosquitto_binary())
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
                "mosquitto did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (Mosquitto saves its persistence file) and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let ok = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("kill -TERM {}", child.id()))
                .status()
                .unwrap();
            assert!(ok.success());
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

/// A test client subscribed to everything, collecting what it receives.
pub struct Sub {
    rx: mpsc::UnboundedReceiver<Publish>,
    pub seen: Vec<Publish>,
    task: tokio::task::JoinHandle<()>,
}

impl Sub {
    /// `persistent`: a session the broker keeps (and queues QoS 1 messages for) while we are away.
    pub async fn connect(port: u16, id: &str, persistent: bool) -> Sub {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_clean_session(!persistent);
        Sub::connect_with(opts).await
    }

    /// Connects with these options and subscribes to `#`.
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
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|r| *r))
            .await
            .expect("test subscriber never subscribed")
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

    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Publish) -> bool) -> Publish {
        if let Some(p) = self.seen.iter().find(|p| pred(p)) {
            return p.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) => {
                    self.seen.push(p.clone());
                    if pred(&p) {
                        return p;
                    }
                }
                _ => {
                    let topics: Vec<_> = self.seen.iter().map(|p| p.topic.clone()).collect();
                    panic!("timed out waiting for {what}; seen: {topics:?}");
                }
            }
        }
    }

    pub async fn topic(&mut self, topic: &str, payload: &[u8]) -> Publish {
        let t = topic.to_owned();
        let want = payload.to_vec();
        self.wait_for(
            &format!("{topic} = {}", String::from_utf8_lossy(payload)),
            move |p| p.topic == t && p.payload.as_ref() == want.as_slice(),
        )
        .await
    }

    /// Forget what was seen (to wait for a *new* message on a topic).
    pub fn clear(&mut self) {
        self.seen.clear();
        while self.rx.try_recv().is_ok() {}
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.task.abort();
    }
}
