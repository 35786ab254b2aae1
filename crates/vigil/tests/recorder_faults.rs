//! The recorder under faults, with real processes over 127.0.0.1: the camera dies for 10 s
//! and comes back on the same port; the recorder is `kill -9`ed mid-recording and
//! restarted; retention with a tiny size limit deletes the oldest files while recording
//! goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::recorder::{
    burned_codes, copy_dir, export, files, files_on_disk, fragments, gaps, now_us, vigil_camera,
    vigil_serve, write_config, CameraEntry,
};
use common::{run_peer, vigil_bin, PASSWORD, USER};

const FPS: u32 = 15;
const SIZE: (u32, u32) = (320, 240);

fn camera_entry(addr: std::net::SocketAddr) -> CameraEntry {
    CameraEntry {
        name: "cam".into(),
        url: format!("rtsp://{addr}/main"),
        login: Some((USER.into(), PASSWORD.into())),
    }
}

#[test]
fn camera_outage_of_10_s_is_a_gap_and_recording_resumes_promptly() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let cam_data = tempfile::tempdir().unwrap();
    let extra = ["--bitrate", "300k"];
    let (mut cam, addr) = vigil_camera(cam_data.path(), "127.0.0.1:0", SIZE, FPS, &extra);
    let config = write_config(dir.path(), "", "", &[camera_entry(addr)]);
    let mut serve = vigil_serve(&config);
    serve.wait_line("recording cam/main", 0, Duration::from_secs(30));
    thread::sleep(Duration::from_secs(5));

    cam.kill9();
    let killed_at = now_us();
    let killed = Instant::now();
    // A dead camera is noticed within 5 s.
    let (_, offline) = serve.wait_line("offline cam/main", 0, Duration::from_secs(8));
    assert!(
        offline.duration_since(killed) <= Duration::from_secs(5),
        "noticed after {:?}",
        offline.duration_since(killed)
    );
    thread::sleep(Duration::from_secs(10).saturating_sub(killed.elapsed()));

    let (_cam2, addr2) = vigil_camera(cam_data.path(), &addr.to_string(), SIZE, FPS, &extra);
    assert_eq!(addr2, addr);
    let back = Instant::now();
    let back_at = now_us();
    let (_, resumed) = serve.wait_line("recording cam/main", 1, Duration::from_secs(40));
    let took = resumed.duration_since(back);
    // The promise: within 1 s plus one GOP once the camera is back, plus the ingest's port
    // probe interval (0.5 s) that notices it is back.
    assert!(
        took <= Duration::from_millis(3_500),
        "recording resumed {took:?} after the camera came back"
    );
    thread::sleep(Duration::from_secs(4));

    // A short outage (the camera restarts at once) stays inside the file, whose last picture
    // is held; the ingest's report of it is what puts it in the index.
    let mut cam2 = _cam2;
    cam2.kill9();
    let killed2_at = now_us();
    // Back after 1.5 s.
    thread::sleep(Duration::from_millis(1_500));
    let (_cam3, _) = vigil_camera(cam_data.path(), &addr.to_string(), SIZE, FPS, &extra);
    let back2_at = now_us();
    serve.wait_line("recording cam/main", 2, Duration::from_secs(20));
    thread::sleep(Duration::from_secs(3));
    serve.stop_gracefully(Duration::from_secs(15));

    let data = dir.path().join("data");
    let g = gaps(&data);
    assert!(
        g.iter().any(|(s, e, reason)| reason.starts_with("camera:")
            && *s <= killed2_at
            && *s >= killed2_at - 1_000_000
            // Inside a file, wall time comes from media time, which may sit a few ms off
            // the host clock the test reads: the same 200 ms slack as the checks below.
            && *e >= back2_at - 200_000),
        "no camera gap row covering the short outage {killed2_at}..{back2_at}: {g:?}"
    );
    let fs = files(&data);
    let before: Vec<_> = fs.iter().filter(|f| f.start_wall_us < killed_at).collect();
    let after: Vec<_> = fs.iter().filter(|f| f.start_wall_us >= killed_at).collect();
    assert!(!before.is_empty() && !after.is_empty(), "{fs:?}");
    let last_end = before.iter().map(|f| f.end_wall_us).max().unwrap();
    let resume = after.iter().map(|f| f.start_wall_us).min().unwrap();
    // Nothing is papered over: no recording between the kill and the camera's return.
    assert!(
        last_end <= killed_at + 200_000,
        "recording ends {} ms after the kill",
        (last_end - killed_at) / 1000
    );
    assert!(
        resume >= back_at - 200_000,
        "recording resumes before the camera was back"
    );
    assert!(
        resume - back_at <= 3_500_000 + 500_000,
        "first file after the outage starts {} ms after the camera came back",
        (resume - back_at) / 1000
    );
    // The gap is in the index and covers the outage.
    assert!(
        g.iter()
            .any(|(s, e, _)| *s <= last_end + 1 && *e >= resume - 1),
        "no gap row covering {last_end}..{resume}: {g:?}"
    );
    // One row per outage, each with the ingest's reason (the long outage's file break and
    // the ingest's report of it are one row, not two).
    assert_eq!(g.len(), 2, "{g:?}");
    assert!(g.iter().all(|(_, _, r)| r.starts_with("camera:")), "{g:?}");
    eprintln!(
        "outage test: resumed {took:?} after the camera came back; gaps {g:?}; took {:?}",
        t0.elapsed()
    );
}

#[test]
fn kill_9_of_the_recorder_loses_under_2_s_and_files_match_the_index() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let cam_data = tempfile::tempdir().unwrap();
    let (_cam, addr) = vigil_camera(
        cam_data.path(),
        "127.0.0.1:0",
        SIZE,
        FPS,
        &["--bitrate", "300k"],
    );
    let config = write_config(
        dir.path(),
        "file_duration = \"4s\"",
        "",
        &[camera_entry(addr)],
    );
    let mut serve = vigil_serve(&config);
    serve.wait_line("recording cam/main", 0, Duration::from_secs(30));
    // Mid-file (4 s files, 2 s GOPs) and mid-fragment.
    thread::sleep(Duration::from_millis(9_300));
    serve.kill9();
    let killed_at = now_us();

    let mut serve2 = vigil_serve(&config);
    serve2.wait_line("recording cam/main", 0, Duration::from_secs(30));
    assert!(
        serve2.stderr_text().contains("recovery:"),
        "{}",
        serve2.stderr_tail(30)
    );
    thread::sleep(Duration::from_secs(5));
    serve2.stop_gracefully(Duration::from_secs(15));

    let data = dir.path().join("data");
    let fs = files(&data);
    let last_end = fs
        .iter()
        .filter(|f| f.start_wall_us < killed_at)
        .map(|f| f.end_wall_us)
        .max()
        .unwrap();
    let lost_ms = (killed_at - last_end) / 1000;
    assert!(
        lost_ms <= 2_000,
        "{lost_ms} ms before the kill were lost: {fs:?}"
    );

    // The camera's own clock agrees: the last recorded picture before the kill was captured
    // at most 2 s before it, and the counter has no hole before that.
    let out = dir.path().join("around-kill.mp4");
    let e = export(&config, "cam", killed_at - 6_000_000, killed_at, &out);
    let codes: Vec<_> = burned_codes(&out, SIZE)
        .into_iter()
        .map(|c| c.unwrap())
        .collect();
    assert_eq!(codes.len() as u64, e.frames);
    for w in codes.windows(2) {
        assert_eq!(w[1].counter, w[0].counter + 1, "frame lost before the kill");
    }
    let last_capture = codes.last().unwrap().capture_us;
    assert!(
        killed_at - last_capture <= 2_000_000,
        "last frame captured {} ms before the kill",
        (killed_at - last_capture) / 1000
    );

    // Files and index agree: sizes match, and an index rebuilt from the files alone (in a
    // copy) has exactly the same fragments.
    let on_disk = files_on_disk(&data);
    assert_eq!(on_disk.len(), fs.len(), "{on_disk:?} vs {fs:?}");
    for (f, (path, len)) in fs.iter().zip(&on_disk) {
        assert_eq!(
            (&f.path, f.bytes as u64),
            (path, *len),
            "file and index disagree"
        );
        assert_eq!(f.state, "closed");
    }
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&data, copy.path());
    let o = run_peer(
        Command::new(vigil_bin())
            .args(["reindex", "--data"])
            .arg(copy.path()),
        Duration::from_secs(30),
    );
    assert!(o.success(), "reindex: {:?} {}", o.status, o.stderr);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("reindexed {} files", fs.len())));
    let original = fragments(&data);
    let rebuilt = fragments(copy.path());
    assert_eq!(original.len(), rebuilt.len());
    assert!(
        original == rebuilt,
        "reindexed fragments differ from the recorded index"
    );
    eprintln!(
        "kill -9 test: lost {lost_ms} ms at the kill; took {:?}",
        t0.elapsed()
    );
}

#[test]
fn retention_deletes_oldest_files_first_and_recording_continues() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let cam_data = tempfile::tempdir().unwrap();
    let (_cam, addr) = vigil_camera(
        cam_data.path(),
        "127.0.0.1:0",
        SIZE,
        FPS,
        &["--bitrate", "200k", "--keyint", "15"],
    );
    const MAX: u64 = 150_000;
    let config = write_config(
        dir.path(),
        "file_duration = \"1s\"",
        &format!("max_bytes = {MAX}\ninterval = \"1s\""),
        &[camera_entry(addr)],
    );
    let mut serve = vigil_serve(&config);
    serve.wait_line("recording cam/main", 0, Duration::from_secs(30));
    let data = dir.path().join("data");
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        seen.extend(files_on_disk(&data).into_iter().map(|(p, _)| p));
        thread::sleep(Duration::from_millis(250));
    }
    // Recording goes on: the newest fragment ended moments ago.
    let now = now_us();
    let end = files(&data).iter().map(|f| f.end_wall_us).max().unwrap();
    assert!(
        now - end <= 2_500_000,
        "recording stalled {} ms ago",
        (now - end) / 1000
    );
    serve.stop_gracefully(Duration::from_secs(15));
    let fs = files(&data);
    let on_disk = files_on_disk(&data);
    seen.extend(on_disk.iter().map(|(p, _)| p.clone()));

    // Oldest deleted, newest kept: what is left is the newest files, without holes (file
    // names sort by start time).
    assert!(
        seen.len() > on_disk.len() + 3,
        "nothing was deleted: {} seen, {} left",
        seen.len(),
        on_disk.len()
    );
    let left: Vec<String> = on_disk.iter().map(|(p, _)| p.clone()).collect();
    let newest: Vec<String> = seen.iter().rev().take(left.len()).rev().cloned().collect();
    assert_eq!(
        left, newest,
        "retention deleted something other than the oldest files"
    );
    // Within the limit, give or take the file being written and what closed since the
    // last pass (passes run every second, files last one second).
    let total: u64 = on_disk.iter().map(|(_, l)| l).sum();
    let biggest = on_disk.iter().map(|(_, l)| *l).max().unwrap_or(0);
    assert!(
        total <= MAX + 2 * biggest,
        "{total} bytes on disk, limit {MAX} (largest file {biggest})"
    );
    // Index and disk agree (deletions went through the garbage list to the end).
    let indexed: Vec<String> = fs.iter().map(|f| f.path.clone()).collect();
    assert_eq!(indexed, left);
    let garbage: i64 = common::recorder::index(&data)
        .query_row("SELECT COUNT(*) FROM garbage", [], |r| r.get(0))
        .unwrap();
    assert_eq!(garbage, 0);
    assert!(
        serve.stderr_text().contains("retention"),
        "{}",
        serve.stderr_tail(30)
    );
    eprintln!(
        "retention test: {} files made, {} left ({total} bytes); took {:?}",
        seen.len(),
        left.len(),
        t0.elapsed()
    );
}

/// Regression test of an ingest limitation found by these tests: the back-off used to keep
/// growing until a session streamed for 10 s, and the port probe that cut it short only ran
/// when the camera's port was *closed* when the back-off started. So after one long outage
/// (back-off grown to ~16 s), a camera whose port still accepted connections when the next
/// session ended (restarted at once, or hung and resumed) was reconnected only when the
/// whole back-off had run out. Now any session that recorded frames resets the back-off,
/// and a camera that does not answer an RTSP `OPTIONS` when the back-off starts is probed
/// until it does. Here: a camera that hangs (SIGSTOP: the kernel still accepts
/// connections) for a few seconds after an earlier 10 s outage, then continues.
#[test]
fn camera_back_after_a_hang_resumes_within_a_gop_after_an_earlier_outage() {
    let dir = tempfile::tempdir().unwrap();
    let cam_data = tempfile::tempdir().unwrap();
    let extra = ["--bitrate", "300k"];
    let (mut cam, addr) = vigil_camera(cam_data.path(), "127.0.0.1:0", SIZE, FPS, &extra);
    let config = write_config(dir.path(), "", "", &[camera_entry(addr)]);
    let mut serve = vigil_serve(&config);
    serve.wait_line("recording cam/main", 0, Duration::from_secs(30));
    cam.kill9();
    thread::sleep(Duration::from_secs(10));
    let (cam2, _) = vigil_camera(cam_data.path(), &addr.to_string(), SIZE, FPS, &extra);
    serve.wait_line("recording cam/main", 1, Duration::from_secs(40));
    thread::sleep(Duration::from_secs(3));
    cam2.signal("STOP");
    serve.wait_line("offline cam/main", 1, Duration::from_secs(8));
    thread::sleep(Duration::from_secs(2));
    cam2.signal("CONT");
    let back = Instant::now();
    let (_, resumed) = serve.wait_line("recording cam/main", 2, Duration::from_secs(40));
    let took = resumed.duration_since(back);
    assert!(
        took <= Duration::from_millis(3_500),
        "recording resumed {took:?} after the camera came back"
    );
}
