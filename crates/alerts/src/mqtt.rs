//! The MQTT task. Two tasks per broker:
//! - the *poller* owns rumqttc's `EventLoop` (which must be polled continuously, and is not
//!   safe to cancel mid-write inside a `select!`) and forwards its events;
//! - the *session* task owns everything else: the outbox, Home Assistant states, and which
//!   publish is waiting for which PUBACK.
//!
//! Delivery of events is at least once: an event leaves the outbox only when the broker's
//! PUBACK for it arrives (MQTT 3.1.1 §4.3.2). With a clean session the broker forgets unacked
//! messages at a disconnect, so after every reconnect the whole outbox is published again,
//! after discovery and the retained states. The outbox is bounded; when full the oldest event
//! is dropped and counted.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, Event, EventLoop, Incoming, LastWill, MqttOptions, MqttState, Outgoing, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::mpsc;

use crate::config::MqttConfig;
use crate::ha::{Msg, States, Topics};
use crate::{AlertEvent, AlertsError, CameraInfo, SnapshotFn};

/// Events kept while the broker is unreachable.
pub(crate) const OUTBOX_MAX: usize = 1000;
/// rumqttc's in-flight limit (QoS 1 publishes awaiting PUBACK; also its packet id range).
const INFLIGHT: u16 = 100;
/// Events handed to rumqttc and not yet acknowledged, at most (half the in-flight limit, so
/// its packet ids, which wrap at that limit, never collide).
const WINDOW: usize = 50;
/// rumqttc's request channel: discovery for many cameras goes out in one burst.
const REQUEST_CHANNEL: usize = 10_000;
/// Largest message we publish (snapshots); bigger ones are skipped with a warning.
const MAX_OUTGOING: usize = 8 * 1024 * 1024;
/// How long a snapshot may take before it is skipped.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnect delay after `failures` consecutive failures: 0.5 s doubling to 15 s.
fn reconnect_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(8);
    Duration::from_millis((500u64 << exp).min(15_000))
}

/// The broker connection as `status()["mqtt"]["state"]` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ConnState {
    /// No broker configured, or the configuration was refused (`last_error` says why), or
    /// shut down.
    Disabled,
    /// Connecting or reconnecting.
    Connecting,
    /// The broker acknowledged the connection.
    Connected,
}

/// Status shown in `status()["mqtt"]`.
#[derive(Debug)]
pub(crate) struct MqttStatus {
    state: ConnState,
    broker: Option<String>,
    last_error: Option<String>,
    queued: usize,
    delivered: u64,
    dropped: u64,
}

impl MqttStatus {
    pub(crate) fn disabled(error: Option<String>) -> MqttStatus {
        MqttStatus {
            state: ConnState::Disabled,
            broker: None,
            last_error: error,
            queued: 0,
            delivered: 0,
            dropped: 0,
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "state": self.state,
            "broker": self.broker,
            "last_error": self.last_error,
            "queued": self.queued,
            "delivered": self.delivered,
            "dropped": self.dropped,
        })
    }
}

fn lock(s: &Mutex<MqttStatus>) -> std::sync::MutexGuard<'_, MqttStatus> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

enum Cmd {
    Event(AlertEvent, Bytes),
    Cameras(Vec<CameraInfo>),
    Image(String, Vec<u8>),
    Shutdown,
}

/// The `send` side of the MQTT task.
pub(crate) struct MqttHandle {
    tx: mpsc::Sender<Cmd>,
    status: Arc<Mutex<MqttStatus>>,
    task: tokio::task::JoinHandle<()>,
}

impl MqttHandle {
    pub(crate) fn send(&self, ev: AlertEvent, json: Bytes) {
        if self.tx.try_send(Cmd::Event(ev, json)).is_err() {
            lock(&self.status).dropped += 1;
            tracing::warn!("mqtt: command queue full, event dropped");
        }
    }

    pub(crate) fn set_cameras(&self, cameras: Vec<CameraInfo>) {
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.tx.try_send(Cmd::Cameras(cameras)) {
            // Rare (the task drains its channel continuously); the camera list must not be lost.
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(cmd).await;
            });
        }
    }

    pub(crate) async fn shutdown(self) {
        let _ = self.tx.send(Cmd::Shutdown).await;
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(3), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        lock(&self.status).state = ConnState::Disabled;
    }
}

/// The rustls client configuration for MQTT over TLS (ring, like the rest of Vigil).
fn tls_config(cfg: &MqttConfig) -> Result<TlsConfiguration, AlertsError> {
    let roots = crate::http::load_roots(cfg.ca_file.as_deref())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AlertsError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfiguration::Rustls(Arc::new(client)))
}

pub(crate) fn spawn(
    cfg: MqttConfig,
    cameras: Vec<CameraInfo>,
    snapshot: SnapshotFn,
) -> Result<(MqttHandle, Arc<Mutex<MqttStatus>>), AlertsError> {
    cfg.validate()?;
    let topics = Topics::new(&cfg.topic_prefix, &cfg.discovery_prefix);
    let mut opts = MqttOptions::new(
        cfg.effective_client_id(),
        cfg.host.clone(),
        cfg.effective_port(),
    );
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_clean_session(true);
    opts.set_inflight(INFLIGHT);
    opts.set_max_packet_size(64 * 1024, MAX_OUTGOING);
    // MQTT 3.1.1 §3.1.2.5: the broker publishes this retained `offline` if we vanish without
    // a DISCONNECT, which is what makes every entity unavailable in Home Assistant.
    opts.set_last_will(LastWill::new(
        topics.status(),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(user) = &cfg.username {
        let pass = cfg
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_default();
        if !cfg.tls && cfg.password.is_some() && !is_loopback(&cfg.host) {
            tracing::warn!(
                "mqtt: sending the broker password to {} without TLS",
                cfg.host
            );
        }
        opts.set_credentials(user.clone(), pass);
    }
    if cfg.tls {
        opts.set_transport(Transport::tls_with_config(tls_config(&cfg)?));
    }
    let broker = format!(
        "{}{}:{}",
        if cfg.tls { "mqtts://" } else { "mqtt://" },
        cfg.host,
        cfg.effective_port()
    );
    let status = Arc::new(Mutex::new(MqttStatus {
        state: ConnState::Connecting,
        broker: Some(broker),
        last_error: None,
        queued: 0,
        delivered: 0,
        dropped: 0,
    }));
    let (client, eventloop) = AsyncClient::new(opts, REQUEST_CHANNEL);
    let (poll_tx, poll_rx) = mpsc::channel(64);
    let poller = tokio::spawn(poll_loop(eventloop, poll_tx));
    let (tx, rx) = mpsc::channel(1024);
    let session = Session::new(
        topics,
        cameras,
        client,
        status.clone(),
        snapshot,
        tx.downgrade(),
    );
    let task = tokio::spawn(session.run(rx, poll_rx, poller));
    Ok((
        MqttHandle {
            tx,
            status: status.clone(),
            task,
        },
        status,
    ))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

/// What the poller forwards: an event, or a connection error (then it waits and reconnects).
type Polled = Result<Event, String>;

async fn poll_loop(mut el: EventLoop, tx: mpsc::Sender<Polled>) {
    let mut failures = 0u32;
    loop {
        match el.poll().await {
            Ok(ev) => {
                if matches!(ev, Event::Incoming(Incoming::ConnAck(_))) {
                    failures = 0;
                }
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if tx.send(Err(e.to_string())).await.is_err() {
                    return;
                }
                tokio::time::sleep(reconnect_delay(failures)).await;
                // The session task has seen the error by now (it never blocks for long), so
                // whatever it published before that sits in rumqttc's channel; drop it (a new
                // clean session clears `pending`) so the packet ids reported after the next
                // CONNACK belong only to what the session publishes then.
                el.clean();
                // Clean session: nothing of the old connection matters. A fresh state also
                // drops events rumqttc had buffered but not yet returned (a PUBACK read in
                // the same batch as the failure), whose packet ids could be mistaken for
                // ones of the next connection.
                el.pending.clear();
                el.state = MqttState::new(INFLIGHT, false);
            }
        }
    }
}

struct Queued {
    seq: u64,
    payload: Bytes,
}

struct Session {
    topics: Topics,
    cameras: Vec<CameraInfo>,
    states: States,
    /// Discovery topics of removed entities (empty retained payloads, re-sent on connect).
    retracted: BTreeSet<String>,
    /// Last snapshot per camera, re-published (retained) after a reconnect.
    images: BTreeMap<String, Vec<u8>>,
    outbox: VecDeque<Queued>,
    next_seq: u64,
    connected: bool,
    /// Publishes handed to rumqttc this connection, in order, waiting for their
    /// `Outgoing::Publish(pkid)`: the outbox seq for events, `None` for QoS 0 messages.
    issued: VecDeque<Option<u64>>,
    /// Packet id → outbox seq of events waiting for their PUBACK.
    pkids: HashMap<u16, u64>,
    /// Outbox seqs handed to rumqttc this connection.
    handed: HashSet<u64>,
    client: AsyncClient,
    status: Arc<Mutex<MqttStatus>>,
    snapshot: SnapshotFn,
    self_tx: mpsc::WeakSender<Cmd>,
}

impl Session {
    fn new(
        topics: Topics,
        cameras: Vec<CameraInfo>,
        client: AsyncClient,
        status: Arc<Mutex<MqttStatus>>,
        snapshot: SnapshotFn,
        self_tx: mpsc::WeakSender<Cmd>,
    ) -> Session {
        Session {
            topics,
            cameras,
            states: States::default(),
            retracted: BTreeSet::new(),
            images: BTreeMap::new(),
            outbox: VecDeque::new(),
            next_seq: 0,
            connected: false,
            issued: VecDeque::new(),
            pkids: HashMap::new(),
            handed: HashSet::new(),
            client,
            status,
            snapshot,
            self_tx,
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Cmd>,
        mut polled: mpsc::Receiver<Polled>,
        poller: tokio::task::JoinHandle<()>,
    ) {
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Event(ev, json)) => self.on_event(ev, json),
                    Some(Cmd::Cameras(c)) => self.on_cameras(c),
                    Some(Cmd::Image(camera, jpeg)) => {
                        let msg = Msg { topic: self.topics.snapshot(&camera), payload: jpeg.clone(), retain: true };
                        self.images.insert(camera, jpeg);
                        self.publish(&msg);
                    }
                    Some(Cmd::Shutdown) | None => break,
                },
                p = polled.recv() => match p {
                    Some(Ok(ev)) => self.on_mqtt(ev),
                    Some(Err(e)) => self.on_error(e),
                    None => break,
                },
            }
        }
        self.goodbye(&mut polled).await;
        poller.abort();
    }

    /// Clean shutdown: `offline` (what the will would say, but now), then DISCONNECT, so the
    /// broker discards the will.
    async fn goodbye(&mut self, polled: &mut mpsc::Receiver<Polled>) {
        if self.connected {
            let offline = Msg {
                topic: self.topics.status(),
                payload: b"offline".to_vec(),
                retain: true,
            };
            self.publish(&offline);
            let _ = self.client.try_disconnect();
            let wait = async {
                while let Some(p) = polled.recv().await {
                    if matches!(p, Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)) {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
        }
        let mut s = lock(&self.status);
        s.state = ConnState::Disabled;
        if !self.outbox.is_empty() {
            tracing::warn!(
                "mqtt: {} events not delivered at shutdown",
                self.outbox.len()
            );
        }
    }

    fn on_event(&mut self, ev: AlertEvent, json: Bytes) {
        for msg in self.states.apply(&self.topics, &ev) {
            self.publish(&msg);
        }
        if let AlertEvent::MotionStart { camera, .. } = &ev {
            self.fetch_snapshot(camera.clone());
        }
        if self.outbox.len() >= OUTBOX_MAX {
            if let Some(old) = self.outbox.pop_front() {
                self.handed.remove(&old.seq);
                lock(&self.status).dropped += 1;
                tracing::warn!("mqtt: outbox full ({OUTBOX_MAX}), oldest event dropped");
            }
        }
        self.outbox.push_back(Queued {
            seq: self.next_seq,
            payload: json,
        });
        self.next_seq += 1;
        self.flush();
    }

    fn fetch_snapshot(&self, camera: String) {
        let (snapshot, tx) = (self.snapshot.clone(), self.self_tx.clone());
        tokio::spawn(async move {
            let jpeg = tokio::time::timeout(SNAPSHOT_TIMEOUT, snapshot(camera.clone())).await;
            match jpeg {
                Ok(Some(jpeg)) if jpeg.len() < MAX_OUTGOING - 1024 => {
                    if let Some(tx) = tx.upgrade() {
                        let _ = tx.send(Cmd::Image(camera, jpeg)).await;
                    }
                }
                Ok(Some(jpeg)) => tracing::warn!(
                    "mqtt: {camera} snapshot of {} bytes is too large",
                    jpeg.len()
                ),
                Ok(None) => {}
                Err(_) => tracing::warn!("mqtt: {camera} snapshot timed out"),
            }
        });
    }

    fn on_cameras(&mut self, cameras: Vec<CameraInfo>) {
        let mut msgs = self.topics.retractions(&self.cameras, &cameras);
        // Remembered, and repeated after every connect: a retraction sent while the broker
        // was down (or lost with the connection) must still reach Home Assistant.
        self.retracted.extend(msgs.iter().map(|m| m.topic.clone()));
        for t in self.topics.config_topics(&cameras) {
            self.retracted.remove(&t);
        }
        msgs.extend(self.topics.discovery(&cameras));
        msgs.extend(self.states.all(&self.topics, &cameras));
        self.cameras = cameras;
        for m in &msgs {
            self.publish(m);
        }
    }

    fn on_mqtt(&mut self, ev: Event) {
        match ev {
            Event::Incoming(Incoming::ConnAck(_)) => {
                self.connected = true;
                self.issued.clear();
                self.pkids.clear();
                self.handed.clear();
                {
                    let mut s = lock(&self.status);
                    s.state = ConnState::Connected;
                    s.last_error = None;
                }
                tracing::info!("mqtt: connected");
                let online = Msg {
                    topic: self.topics.status(),
                    payload: b"online".to_vec(),
                    retain: true,
                };
                self.publish(&online);
                let mut msgs: Vec<Msg> = self
                    .retracted
                    .iter()
                    .map(|t| Msg {
                        topic: t.clone(),
                        payload: Vec::new(),
                        retain: true,
                    })
                    .collect();
                msgs.extend(self.topics.discovery(&self.cameras));
                msgs.extend(self.states.all(&self.topics, &self.cameras));
                for (camera, jpeg) in &self.images {
                    msgs.push(Msg {
                        topic: self.topics.snapshot(camera),
                        payload: jpeg.clone(),
                        retain: true,
                    });
                }
                for m in &msgs {
                    self.publish(m);
                }
                self.flush();
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Some(seq)) = self.issued.pop_front() {
                    self.pkids.insert(pkid, seq);
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => {
                if let Some(seq) = self.pkids.remove(&ack.pkid) {
                    self.handed.remove(&seq);
                    if let Some(i) = self.outbox.iter().position(|q| q.seq == seq) {
                        self.outbox.remove(i);
                        lock(&self.status).delivered += 1;
                    }
                    self.flush();
                }
            }
            _ => {}
        }
    }

    fn on_error(&mut self, e: String) {
        if self.connected {
            tracing::warn!("mqtt: connection lost: {e}");
        } else {
            tracing::debug!("mqtt: connect failed: {e}");
        }
        self.connected = false;
        self.issued.clear();
        self.pkids.clear();
        self.handed.clear();
        let mut s = lock(&self.status);
        s.state = ConnState::Connecting;
        s.last_error = Some(e);
        s.queued = self.outbox.len();
    }

    /// A QoS 0 message (states, discovery, snapshots: all re-published on every reconnect).
    fn publish(&mut self, msg: &Msg) {
        if !self.connected {
            return;
        }
        match self.client.try_publish(
            msg.topic.clone(),
            QoS::AtMostOnce,
            msg.retain,
            msg.payload.clone(),
        ) {
            Ok(()) => self.issued.push_back(None),
            Err(e) => tracing::warn!("mqtt: could not queue {}: {e}", msg.topic),
        }
    }

    /// Hands outbox events not yet in flight to rumqttc (QoS 1), up to the window.
    fn flush(&mut self) {
        lock(&self.status).queued = self.outbox.len();
        if !self.connected {
            return;
        }
        let topic = self.topics.events();
        for q in &self.outbox {
            if self.handed.len() >= WINDOW {
                break;
            }
            if self.handed.contains(&q.seq) {
                continue;
            }
            match self
                .client
                .try_publish(topic.clone(), QoS::AtLeastOnce, false, q.payload.clone())
            {
                Ok(()) => {
                    self.issued.push_back(Some(q.seq));
                    self.handed.insert(q.seq);
                }
                Err(e) => {
                    tracing::warn!("mqtt: could not queue an event: {e}");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_backs_off() {
        let ms: Vec<u128> = (1..=8).map(|n| reconnect_delay(n).as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
        assert_eq!(reconnect_delay(u32::MAX), Duration::from_secs(15));
    }

    /// A session whose rumqttc client is never polled: what it publishes stays in the request
    /// channel, and the test plays the event loop's part.
    fn session() -> (Session, EventLoop, mpsc::Sender<Cmd>) {
        let opts = MqttOptions::new("t", "127.0.0.1", 1);
        let (client, el) = AsyncClient::new(opts, REQUEST_CHANNEL);
        let (tx, _rx) = mpsc::channel(1);
        let status = Arc::new(Mutex::new(MqttStatus::disabled(None)));
        let snapshot: SnapshotFn = Arc::new(|_| Box::pin(async { None }));
        let cams = vec![CameraInfo {
            name: "front".into(),
            zones: vec![],
        }];
        let s = Session::new(
            Topics::new("v", "ha"),
            cams,
            client,
            status,
            snapshot,
            tx.downgrade(),
        );
        (s, el, tx)
    }

    /// Plays rumqttc reporting every publish handed to it: packet id 0 for QoS 0, then
    /// `next_pkid`, `next_pkid + 1`, … for events.
    fn report_publishes(s: &mut Session, next_pkid: &mut u16) {
        for entry in s.issued.clone() {
            let pkid = match entry {
                Some(_) => {
                    *next_pkid += 1;
                    *next_pkid
                }
                None => 0,
            };
            s.on_mqtt(Event::Outgoing(Outgoing::Publish(pkid)));
        }
        assert!(s.issued.is_empty());
    }

    fn puback(pkid: u16) -> Event {
        Event::Incoming(Incoming::PubAck(rumqttc::PubAck::new(pkid)))
    }

    fn connack() -> Event {
        Event::Incoming(Incoming::ConnAck(rumqttc::ConnAck::new(
            rumqttc::ConnectReturnCode::Success,
            false,
        )))
    }

    fn status(s: &Session) -> serde_json::Value {
        lock(&s.status).to_json()
    }

    fn ev(id: i64) -> (AlertEvent, Bytes) {
        let e = AlertEvent::CameraOnline {
            camera: format!("c{id}"),
        };
        let json = Bytes::from(e.to_json());
        (e, json)
    }

    #[tokio::test]
    async fn unacked_events_are_resent_after_reconnect_and_leave_only_on_puback() {
        let (mut s, _el, _tx) = session();
        let mut pkid = 0;
        s.on_mqtt(connack());
        let (e, j) = ev(1);
        s.on_event(e, j);
        assert_eq!(
            s.issued.back(),
            Some(&Some(0)),
            "event handed at once while connected"
        );
        report_publishes(&mut s, &mut pkid);
        assert_eq!(s.pkids.get(&1), Some(&0));

        // The connection drops before the PUBACK: the event stays.
        s.on_error("connection reset".into());
        assert_eq!(status(&s)["state"], "connecting");
        assert_eq!(status(&s)["queued"], 1);
        let (e, j) = ev(2);
        s.on_event(e, j);
        assert!(
            s.issued.is_empty(),
            "nothing is handed to rumqttc while disconnected"
        );
        assert_eq!(status(&s)["queued"], 2);

        // Reconnected: both are handed again, after discovery and states, oldest first.
        s.on_mqtt(connack());
        let events: Vec<u64> = s.issued.iter().flatten().copied().collect();
        assert_eq!(events, [0, 1]);
        assert_eq!(s.issued.front(), Some(&None), "status/discovery go first");
        let mut pkid = 10;
        report_publishes(&mut s, &mut pkid);
        // A PUBACK of the old connection's packet id means nothing now.
        s.on_mqtt(puback(1));
        assert_eq!(status(&s)["delivered"], 0);
        // Acks out of order: each removes exactly its own event.
        s.on_mqtt(puback(12));
        assert_eq!(status(&s)["delivered"], 1);
        assert_eq!(s.outbox.iter().map(|q| q.seq).collect::<Vec<_>>(), [0]);
        s.on_mqtt(puback(11));
        assert_eq!(status(&s)["delivered"], 2);
        assert_eq!(status(&s)["queued"], 0);
        assert!(s.outbox.is_empty() && s.handed.is_empty() && s.pkids.is_empty());
    }

    #[tokio::test]
    async fn window_and_outbox_bound() {
        let (mut s, _el, _tx) = session();
        for i in 0..(OUTBOX_MAX as i64 + 5) {
            let (e, j) = ev(i);
            s.on_event(e, j);
        }
        // Bounded: the five oldest were dropped and counted.
        assert_eq!(s.outbox.len(), OUTBOX_MAX);
        assert_eq!(s.outbox.front().map(|q| q.seq), Some(5));
        assert_eq!(status(&s)["dropped"], 5);
        s.on_mqtt(connack());
        // At most WINDOW events are in flight; each PUBACK lets one more go.
        assert_eq!(s.issued.iter().flatten().count(), WINDOW);
        let mut pkid = 0;
        report_publishes(&mut s, &mut pkid);
        s.on_mqtt(puback(1));
        assert_eq!(s.issued.iter().flatten().count(), 1);
        assert_eq!(s.handed.len(), WINDOW);
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("localhost"));
        assert!(!is_loopback("broker.lan") && !is_loopback("10.0.0.2"));
    }
}
