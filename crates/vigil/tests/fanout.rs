//! Fan-out: 50 concurrent clients of an independent RTSP implementation (retina) each receive
//! every frame of the main stream in real time, while one more client that stopped reading is
//! dropped by the server's write timeout without slowing the others down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{play_interleaved, Camera, CameraOpts, RtspConn, PASSWORD, USER};
use futures::StreamExt;
use retina::client::{Credentials, PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::CodecItem;

const FPS: u32 = 30;
const CLIENTS: usize = 50;
/// Frames each client must receive: ~5 s worth.
const FRAMES: usize = (FPS * 5) as usize;
/// How long the stalled client reads nothing before checking it was dropped. The server must
/// notice within this time that its writes to that client no longer progress.
const STALL: Duration = Duration::from_secs(20);

#[derive(Debug)]
struct ClientReport {
    id: usize,
    frames: usize,
    /// Steps between consecutive RTP timestamps other than 90000/FPS.
    gaps: Vec<(usize, i64)>,
    /// Frames retina reported lost RTP packets before.
    lossy: usize,
    /// From PLAY to the last frame.
    elapsed: Duration,
}

async fn retina_client(id: usize, url: url::Url, want: usize) -> Result<ClientReport, String> {
    let opts = SessionOptions::default()
        .creds(Some(Credentials {
            username: USER.to_owned(),
            password: PASSWORD.to_owned(),
        }))
        .user_agent(format!("vigil-e2e-fanout-{id}"));
    let mut session = Session::describe(url, opts)
        .await
        .map_err(|e| format!("client {id}: DESCRIBE: {e}"))?;
    let video = session
        .streams()
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name() == "h264")
        .ok_or_else(|| format!("client {id}: no h264 video stream"))?;
    session
        .setup(
            video,
            SetupOptions::default().transport(Transport::Tcp(Default::default())),
        )
        .await
        .map_err(|e| format!("client {id}: SETUP: {e}"))?;
    let playing = session
        .play(PlayOptions::default())
        .await
        .map_err(|e| format!("client {id}: PLAY: {e}"))?;
    let start = Instant::now();
    let mut demuxed = playing
        .demuxed()
        .map_err(|e| format!("client {id}: demux: {e}"))?;
    let step = i64::from(90_000 / FPS);
    let mut last: Option<i64> = None;
    let mut report = ClientReport {
        id,
        frames: 0,
        gaps: Vec::new(),
        lossy: 0,
        elapsed: Duration::ZERO,
    };
    while report.frames < want {
        let item = demuxed
            .next()
            .await
            .ok_or_else(|| format!("client {id}: stream ended after {} frames", report.frames))?
            .map_err(|e| format!("client {id}: after {} frames: {e}", report.frames))?;
        if let CodecItem::VideoFrame(f) = item {
            let ts = f.timestamp().timestamp();
            if let Some(prev) = last {
                if ts - prev != step {
                    report.gaps.push((report.frames, ts - prev));
                }
            }
            if f.loss() > 0 {
                report.lossy += 1;
            }
            last = Some(ts);
            report.frames += 1;
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// A client that plays the stream over TCP with a tiny receive window and MSS (so the server's
/// socket buffer fills within a second), then stops reading. Returns how it ended.
fn stalled_client(addr: SocketAddr, url: String) -> Result<String, String> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| e.to_string())?;
    sock.set_recv_buffer_size(4096).map_err(|e| e.to_string())?;
    sock.set_tcp_mss(536).map_err(|e| e.to_string())?;
    sock.connect(&addr.into()).map_err(|e| e.to_string())?;
    let stream: TcpStream = sock.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut conn = RtspConn::from_stream(stream);
    play_interleaved(&mut conn, &url);
    let t_play = Instant::now();

    std::thread::sleep(STALL);

    // Drain: a dropped client reads what was already queued, then EOF or a reset. A client the
    // server still serves keeps receiving the live stream.
    let mut stream = conn.stream;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    let mut drained = 0usize;
    let mut buf = vec![0u8; 65536];
    loop {
        if Instant::now() > drain_deadline {
            return Err(format!(
                "stalled client still connected {:?} after PLAY ({drained} bytes drained in 5 s)",
                t_play.elapsed()
            ));
        }
        match stream.read(&mut buf) {
            Ok(0) => return Ok(format!("EOF after {drained} queued bytes")),
            Ok(n) => drained += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!(
                    "stalled client: connection open but idle {:?} after PLAY \
                     ({drained} bytes drained)",
                    t_play.elapsed()
                ));
            }
            Err(e) => return Ok(format!("{e} after {drained} queued bytes")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_get_every_frame_while_a_stalled_client_is_dropped() {
    let cam = Camera::start(CameraOpts {
        size: (320, 240),
        sub_size: None,
        fps: FPS,
        ..CameraOpts::default()
    });
    let (addr, bare) = (cam.rtsp, cam.bare_url("main"));
    let stalled = std::thread::spawn(move || stalled_client(addr, bare));

    // Let the stalled client's path fill up before the others start, so they run while the
    // server's writes to it are blocked.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let url = url::Url::parse(&cam.bare_url("main")).unwrap();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let url = url.clone();
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(20), retina_client(id, url, FRAMES))
                    .await
                    .unwrap_or_else(|_| Err(format!("client {id}: timed out after 20 s")))
            })
        })
        .collect();
    let mut problems = Vec::new();
    let mut slowest = Duration::ZERO;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                slowest = slowest.max(r.elapsed);
                if !r.gaps.is_empty() || r.lossy > 0 {
                    problems.push(format!(
                        "client {}: {} timestamp gaps (frame index, step) {:?}, {} frames after loss",
                        r.id,
                        r.gaps.len(),
                        &r.gaps[..r.gaps.len().min(5)],
                        r.lossy
                    ));
                }
                // Real time: 5 s of frames must not take much longer than 5 s (the GOP cache
                // makes the start faster, a blocked fan-out would make it slower).
                if r.elapsed > Duration::from_secs(8) {
                    problems.push(format!(
                        "client {}: {} frames took {:?}",
                        r.id, r.frames, r.elapsed
                    ));
                }
            }
            Err(e) => problems.push(e),
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {CLIENTS} clients had problems (slowest {slowest:?}):\n{}",
        problems.len(),
        problems.join("\n")
    );

    let end = tokio::task::spawn_blocking(move || stalled.join().unwrap())
        .await
        .unwrap();
    match end {
        Ok(how) => eprintln!("stalled client dropped by the server: {how}"),
        Err(e) => panic!("{e}"),
    }

    // The server is still serving after dropping the stalled client.
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        retina_client(CLIENTS, url.clone(), FPS as usize),
    )
    .await;
    assert!(
        matches!(r, Ok(Ok(_))),
        "a new client after the stall: {r:?}"
    );
}
