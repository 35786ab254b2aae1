//! The recording gate of a motion-only camera: source hub → gate → the hub the recorder
//! records. Idle, it keeps the last `pre_roll` of the stream, starting at a key frame; when
//! an event becomes active it forwards that buffer and then everything live, until
//! `post_roll` after the event ended.
//!
//! The recorder therefore sees a stream with pauses. Every resumption starts at a key frame,
//! or continues exactly where the last forwarding stopped (the buffer still holds the next
//! access unit), so the decode chain of what it records is never broken.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::watch;
use vigil_hub::{Hub, Item};
use vigil_media::AccessUnit;

/// Most access units buffered while idle, whatever the pre-roll (a camera that never sends
/// a key frame must not grow memory): 60 s at 30 fps.
const MAX_BUFFER: usize = 1800;

/// The gate's state machine (sans-IO: no clock, no channel; time is the access units'
/// capture time).
#[derive(Debug)]
pub struct Gate {
    pre_roll_us: i64,
    post_roll_us: i64,
    /// Idle buffer: `(sequence number, access unit)`, first entry a key frame.
    buf: VecDeque<(u64, AccessUnit)>,
    seq: u64,
    /// Sequence number of the last forwarded access unit.
    last_forwarded: Option<u64>,
    active: bool,
    forwarding: bool,
    /// While the post-roll runs: forward access units captured before this time.
    until_us: Option<i64>,
    last_capture_us: Option<i64>,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Gate {
    /// A gate that keeps `pre_roll` before an event and `post_roll` after it.
    pub fn new(pre_roll: Duration, post_roll: Duration) -> Self {
        Gate {
            pre_roll_us: micros(pre_roll),
            post_roll_us: micros(post_roll),
            buf: VecDeque::new(),
            seq: 0,
            last_forwarded: None,
            active: false,
            forwarding: false,
            until_us: None,
            last_capture_us: None,
        }
    }

    /// Whether access units are being forwarded now.
    pub fn is_forwarding(&self) -> bool {
        self.forwarding
    }

    /// The event became active or ended. Returns what to forward now (the pre-roll).
    pub fn set_active(&mut self, active: bool) -> Vec<AccessUnit> {
        if active == self.active {
            return Vec::new();
        }
        self.active = active;
        if active {
            self.until_us = None;
            if self.forwarding {
                return Vec::new();
            }
            self.forwarding = true;
            // Continue exactly after the last forwarded access unit if it is buffered,
            // else from the buffer's first key frame.
            let from = self
                .last_forwarded
                .and_then(|last| self.buf.iter().position(|(s, _)| *s == last + 1))
                .unwrap_or(0);
            let out: Vec<(u64, AccessUnit)> = self.buf.drain(..).skip(from).collect();
            if let Some((s, _)) = out.last() {
                self.last_forwarded = Some(*s);
            }
            out.into_iter().map(|(_, au)| au).collect()
        } else {
            let last = self.last_capture_us.unwrap_or(0);
            self.until_us = Some(last.saturating_add(self.post_roll_us));
            Vec::new()
        }
    }

    /// One access unit from the source; returns it if it is to be forwarded.
    pub fn push(&mut self, au: AccessUnit) -> Option<AccessUnit> {
        self.seq += 1;
        let seq = self.seq;
        if self
            .last_capture_us
            .is_some_and(|last| au.capture_us < last.saturating_sub(1_000_000))
        {
            // The capture clock stepped back: re-base the post-roll on the new clock and
            // forget the buffer (its ages are meaningless now), so neither the post-roll nor
            // the buffer's trimming waits for the old time to come back.
            if let Some(until) = self.until_us.as_mut() {
                *until = au.capture_us.saturating_add(self.post_roll_us);
            }
            self.buf.clear();
        }
        self.last_capture_us = Some(au.capture_us);
        if self.forwarding {
            match self.until_us {
                Some(until) if au.capture_us >= until => {
                    self.forwarding = false;
                    self.until_us = None;
                }
                _ => {
                    self.last_forwarded = Some(seq);
                    return Some(au);
                }
            }
        }
        self.buffer(seq, au);
        None
    }

    fn buffer(&mut self, seq: u64, au: AccessUnit) {
        let continues = self
            .last_forwarded
            .is_some_and(|l| l + 1 == seq && self.buf.is_empty());
        if self.buf.is_empty() && !au.key && !continues {
            return; // wait for a key frame
        }
        let newest = au.capture_us;
        self.buf.push_back((seq, au));
        // Drop whole GOPs from the front while the next key frame still leaves `pre_roll`.
        loop {
            let next_key = self
                .buf
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, (_, a))| a.key)
                .map(|(i, (_, a))| (i, a.capture_us));
            match next_key {
                Some((i, t)) if newest.saturating_sub(t) >= self.pre_roll_us => {
                    self.buf.drain(..i);
                }
                _ => break,
            }
        }
        if self.buf.len() > MAX_BUFFER {
            // No key frame for a minute: start over at the next one.
            self.buf.clear();
        }
    }
}

/// Forwards `source` to `out` through a [`Gate`] driven by `active` (a motion detector's
/// [`super::MotionHandle::active`]). Runs until the source ends or the task is aborted; if
/// `active`'s sender goes away, the gate stays in its last state (ending the post-roll).
pub fn spawn_gate(
    source: Hub,
    out: Hub,
    pre_roll: Duration,
    post_roll: Duration,
    mut active: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut sub = source.subscribe_bulk();
    drop(source);
    tokio::spawn(async move {
        let mut gate = Gate::new(pre_roll, post_roll);
        let mut watching = true;
        for au in gate.set_active(*active.borrow_and_update()) {
            out.publish(au);
        }
        loop {
            tokio::select! {
                r = sub.recv() => match r {
                    Ok(Item::Video(au)) => {
                        if let Some(au) = gate.push(au) {
                            out.publish(au);
                        }
                    }
                    // The rest passes as it comes, whatever the gate's state: audio
                    // without its video is dropped by the recorder's segmenter, and gaps
                    // and discontinuities are facts about the stream that the recording
                    // must see (they reached it directly before the hub carried them).
                    Ok(Item::Audio(f)) => out.publish_audio(f),
                    Ok(Item::Gap(g)) => out.publish_gap(g),
                    Ok(Item::Discontinuity(d)) => out.publish_discontinuity(d),
                    Err(_) => break,
                },
                changed = active.changed(), if watching => {
                    if changed.is_err() {
                        watching = false;
                        let _ = gate.set_active(false);
                        continue;
                    }
                    let now = *active.borrow_and_update();
                    for au in gate.set_active(now) {
                        out.publish(au);
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use vigil_media::{Codec, StreamParams};

    use super::*;

    /// 10 fps, a key frame every 10 access units (1 s GOPs); `n` is the frame number.
    fn au(n: i64) -> AccessUnit {
        AccessUnit {
            params: Arc::new(StreamParams {
                codec: Codec::H264,
                vps: None,
                sps: Bytes::from_static(&[0x67]),
                pps: Bytes::from_static(&[0x68]),
                width: 64,
                height: 64,
                fps: Some(10.0),
            }),
            pts: n * 9000,
            capture_us: n * 100_000,
            key: n % 10 == 0,
            data: Bytes::new(),
        }
    }

    fn frames(aus: &[AccessUnit]) -> Vec<i64> {
        aus.iter().map(|a| a.capture_us / 100_000).collect()
    }

    #[test]
    fn pre_roll_starts_at_a_key_frame_and_post_roll_ends_forwarding() {
        let mut g = Gate::new(Duration::from_secs(2), Duration::from_secs(1));
        let mut out = Vec::new();
        for n in 0..=47 {
            out.extend(g.push(au(n)));
        }
        assert!(out.is_empty(), "nothing forwarded while idle");
        // Active at frame 47: at least 2 s back from 47 is frame 27; the GOP holding it
        // starts at 20.
        let pre = g.set_active(true);
        assert_eq!(frames(&pre), (20..=47).collect::<Vec<_>>());
        for n in 48..=60 {
            out.extend(g.push(au(n)));
        }
        assert_eq!(frames(&out), (48..=60).collect::<Vec<_>>());
        assert!(g.set_active(false).is_empty());
        out.clear();
        for n in 61..=80 {
            out.extend(g.push(au(n)));
        }
        // Post-roll: 1 s after frame 60 → frames 61..=69 forwarded, 70 is not.
        assert_eq!(frames(&out), (61..=69).collect::<Vec<_>>());
        assert!(!g.is_forwarding());
    }

    #[test]
    fn reactivation_right_after_the_post_roll_continues_without_duplicates() {
        let mut g = Gate::new(Duration::from_secs(3), Duration::ZERO);
        for n in 0..=12 {
            g.push(au(n));
        }
        let mut got = g.set_active(true);
        got.extend(g.push(au(13)));
        g.set_active(false);
        for n in 14..=16 {
            got.extend(g.push(au(n))); // 14 ends forwarding (post-roll 0) and is buffered
        }
        got.extend(g.set_active(true));
        for n in 17..=18 {
            got.extend(g.push(au(n)));
        }
        assert_eq!(frames(&got), (0..=18).collect::<Vec<_>>());
    }

    #[test]
    fn a_clock_stepping_back_neither_prolongs_the_post_roll_nor_breaks_the_buffer() {
        let mut g = Gate::new(Duration::from_secs(1), Duration::from_secs(1));
        for n in 0..20 {
            g.push(au(n));
        }
        g.set_active(true);
        g.set_active(false); // post-roll: 1 s after frame 19
        let back = |n: i64| {
            let mut a = au(n);
            a.capture_us -= 3_600_000_000;
            a
        };
        let mut forwarded = 0;
        for n in 20..60 {
            forwarded += usize::from(g.push(back(n)).is_some());
        }
        assert!(!g.is_forwarding());
        assert!(forwarded <= 11, "{forwarded}");
        // The buffer trims on the new clock: about 1 s (one or two GOPs), not everything.
        assert!(g.buf.len() <= 20, "{}", g.buf.len());
        assert!(g.buf.front().is_some_and(|(_, a)| a.key));
    }

    #[test]
    fn a_stream_without_key_frames_is_never_forwarded_or_buffered_without_bound() {
        let mut g = Gate::new(Duration::from_secs(1), Duration::from_secs(1));
        let mut n = 1;
        for _ in 0..5000 {
            if n % 10 == 0 {
                n += 1;
            }
            g.push(au(n));
            n += 1;
        }
        assert!(g.set_active(true).is_empty());
        assert!(g.buf.is_empty());
    }

    #[test]
    fn buffer_stays_bounded_when_key_frames_are_rare() {
        let mut g = Gate::new(Duration::from_secs(1), Duration::from_secs(1));
        g.push(au(0));
        for n in 1..5000 {
            let mut a = au(n);
            a.key = false;
            g.push(a);
            assert!(g.buf.len() <= MAX_BUFFER);
        }
    }

    #[tokio::test]
    async fn spawned_gate_publishes_the_pre_roll_then_live() {
        let source = Hub::new("src", 256);
        let out = Hub::new("out", 256);
        let (tx, rx) = watch::channel(false);
        let mut out_sub = out.subscribe();
        let task = spawn_gate(
            source.clone(),
            out.clone(),
            Duration::from_millis(300),
            Duration::ZERO,
            rx,
        );
        for n in 0..15 {
            source.publish(au(n));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(out.published(), 0);
        tx.send_replace(true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        source.publish(au(15));
        let mut got = Vec::new();
        while got.len() < 6 {
            let a = tokio::time::timeout(Duration::from_secs(2), out_sub.recv_video())
                .await
                .unwrap()
                .unwrap();
            got.push(a);
        }
        assert_eq!(frames(&got), (10..=15).collect::<Vec<_>>());
        task.abort();
    }

    #[tokio::test]
    async fn gaps_pass_the_gate_while_it_holds_the_video_back() {
        let source = Hub::new("src", 64);
        let out = Hub::new("out", 64);
        let (_tx, rx) = watch::channel(false);
        let mut out_sub = out.subscribe_bulk();
        let task = spawn_gate(
            source.clone(),
            out.clone(),
            Duration::ZERO,
            Duration::ZERO,
            rx,
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        source.publish(au(0));
        let gap = vigil_hub::Gap {
            start_wall_us: 0,
            end_wall_us: 5_000_000,
            resume_pts: Some(450_000),
            reason: "camera closed the stream".into(),
        };
        source.publish_gap(gap.clone());
        let got = tokio::time::timeout(Duration::from_secs(2), out_sub.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(got, Item::Gap(g) if g == gap));
        assert_eq!(out.published(), 0, "no video while idle");
        task.abort();
    }
}
