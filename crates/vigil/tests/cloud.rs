//! The cloud tier end to end, with real peers over 127.0.0.1: SeaweedFS as the S3 server
//! (credentials enforced), Vigil's camera, `vigil serve` uploading, Debian's `age` CLI and
//! ffmpeg/ffprobe reading what was uploaded, and `vigil cloud restore` rebuilding a range
//! with the recorder's data directory deleted.
//!
//! One recording serves every check (the S3 server is down for a minute in the middle, and
//! the recorder is `kill -9`ed while the backlog drains), so the file runs in about two and
//! a half minutes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::recorder::{
    burned_codes, export, gaps, index, now_us, rfc3339, vigil_camera, vigil_serve, write_config,
    CameraEntry,
};
use common::{run_peer, vigil_bin, PASSWORD, USER};
use futures::TryStreamExt;
use object_store::ObjectStore;
use vigil_testkit::s3::SeaweedS3;

const FPS: u32 = 15;
const SIZE: (u32, u32) = (320, 240);

/// `vigil cloud keygen --output PATH`: the recipient it printed.
fn keygen(path: &Path) -> String {
    let o = run_peer(
        Command::new(vigil_bin())
            .args(["cloud", "keygen", "--output"])
            .arg(path),
        Duration::from_secs(20),
    );
    assert!(o.success(), "keygen: {}", o.stderr);
    let r = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(r.starts_with("age1"), "{r}");
    r
}

fn cloud_section(s3: &SeaweedS3, secret: &str, recipients: &[String], extra: &str) -> String {
    let list: Vec<String> = recipients.iter().map(|r| format!("\"{r}\"")).collect();
    format!(
        "file_duration = \"20s\"\n[cloud]\nendpoint = \"{}\"\nbucket = \"{}\"\nprefix = \"site-a\"\n\
         path_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{secret}\"\n\
         recipients = [{}]\nupload_delay = \"5s\"\n{extra}\n",
        s3.endpoint(),
        s3.bucket,
        s3.access_key,
        list.join(", ")
    )
}

/// Parts in the index by state.
fn part_counts(data: &Path) -> BTreeMap<String, i64> {
    let c = index(data);
    let mut st = c
        .prepare("SELECT state, COUNT(*) FROM cloud_part GROUP BY state")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn count(data: &Path, state: &str) -> i64 {
    part_counts(data).get(state).copied().unwrap_or(0)
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(250));
    }
}

fn bucket(s3: &SeaweedS3, secret: &str) -> std::sync::Arc<dyn ObjectStore> {
    std::sync::Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(s3.endpoint())
            .with_allow_http(true)
            .with_bucket_name(&s3.bucket)
            .with_access_key_id(&s3.access_key)
            .with_secret_access_key(secret)
            .with_region(&s3.region)
            .with_virtual_hosted_style_request(false)
            .build()
            .unwrap(),
    )
}

/// Every object in the bucket: (key, bytes).
fn download_all(s3: &SeaweedS3) -> Vec<(String, Vec<u8>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = bucket(s3, &s3.secret_key);
    rt.block_on(async {
        let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
        let mut out = Vec::new();
        for m in metas {
            let b = store.get(&m.location).await.unwrap().bytes().await.unwrap();
            out.push((m.location.to_string(), b.to_vec()));
        }
        out
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn restore(config: &Path, identity: &Path, start: i64, end: i64, out: &Path) -> String {
    let o = run_peer(
        Command::new(vigil_bin())
            .args(["cloud", "restore", "--config"])
            .arg(config)
            .arg("--identity")
            .arg(identity)
            .args([
                "--camera",
                "cam",
                "--start",
                &rfc3339(start),
                "--end",
                &rfc3339(end),
            ])
            .arg("--output")
            .arg(out),
        Duration::from_secs(120),
    );
    assert!(
        o.success(),
        "vigil cloud restore: {:?}\n{}",
        o.status,
        o.stderr
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn uploads_through_an_outage_and_a_kill_9_and_restores_without_the_data_dir() {
    let t0 = Instant::now();
    let mut s3 = SeaweedS3::start("vigil");
    let dir = tempfile::tempdir().unwrap();
    let cam_data = tempfile::tempdir().unwrap();
    let owner_key = dir.path().join("owner.key");
    let recovery_key = dir.path().join("recovery.key");
    let wrong_key = dir.path().join("wrong.key");
    let recipients = vec![keygen(&owner_key), keygen(&recovery_key)];
    keygen(&wrong_key);

    let (_cam, addr) = vigil_camera(
        cam_data.path(),
        "127.0.0.1:0",
        SIZE,
        FPS,
        &["--bitrate", "300k"],
    );
    let cams = [CameraEntry {
        name: "cam".into(),
        url: format!("rtsp://{addr}/main"),
        login: Some((USER.into(), PASSWORD.into())),
    }];
    // The cap makes the backlog after the outage drain over several seconds, so that the
    // kill -9 below lands while parts are going up.
    let cloud = cloud_section(
        &s3,
        &s3.secret_key,
        &recipients,
        "max_upload_rate = \"60KB\"",
    );
    let config = write_config(dir.path(), &cloud, "", &cams);
    let data = dir.path().join("data");
    let mut serve = vigil_serve(&config);
    serve.wait_line("recording cam/main", 0, Duration::from_secs(30));
    let rec_start = now_us();

    // 1. Parts go up while recording.
    wait_for("two uploaded parts", Duration::from_secs(40), || {
        count(&data, "uploaded") >= 2
    });

    // 2. The S3 server is down for a minute: recording goes on, the queue grows, the
    //    error is recorded for the System page.
    s3.stop();
    let outage_start = now_us();
    thread::sleep(Duration::from_secs(60));
    let pending = count(&data, "pending");
    assert!(
        pending >= 3,
        "parts queued during the outage: {:?}",
        part_counts(&data)
    );
    let err: String = index(&data)
        .query_row(
            "SELECT value FROM cloud_state WHERE key = 'last_error'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        err.contains("error sending request") || err.contains("connect"),
        "{err}"
    );
    let uploaded_before = count(&data, "uploaded");
    s3.restart();
    let outage_end = now_us();

    // 3. kill -9 while the backlog drains (rate-capped), then restart: the queue resumes.
    wait_for(
        "the backlog to start draining",
        Duration::from_secs(60),
        || count(&data, "uploaded") > uploaded_before,
    );
    assert!(
        count(&data, "pending") > 0,
        "drained before the kill: {:?}",
        part_counts(&data)
    );
    serve.kill9();
    let mut serve = vigil_serve(&config);
    serve.wait_line("recording cam/main", 0, Duration::from_secs(30));
    let rec_end = now_us() + 5_000_000;
    wait_for(
        "footage up to the range's end in the bucket",
        Duration::from_secs(120),
        || {
            let c = index(&data);
            let covered: i64 = c
                .query_row(
                    "SELECT COALESCE(MAX(end_wall_us), 0) FROM cloud_part WHERE state = 'uploaded'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let pending_before: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM cloud_part WHERE state = 'pending' AND start_wall_us < ?1",
                [rec_end],
                |r| r.get(0),
            )
            .unwrap();
            covered > rec_end + 1_000_000 && pending_before == 0
        },
    );

    // Recording had no gap in the S3 outage (only the kill -9 made one).
    for (s, e, reason) in gaps(&data) {
        assert!(
            e <= outage_start || s >= outage_end,
            "a gap during the S3 outage: {s}..{e} {reason}"
        );
    }
    // No fragment in two parts; every part uploaded or still queued, none lost.
    {
        let c = index(&data);
        let overlaps: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM cloud_part a JOIN cloud_part b ON a.file_id = b.file_id \
                 AND a.id < b.id AND a.first_seq <= b.last_seq AND b.first_seq <= a.last_seq",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(overlaps, 0);
        assert_eq!(count(&data, "lost"), 0, "{:?}", part_counts(&data));
    }
    let start = rec_start + 2_000_000;
    let local = dir.path().join("local.mp4");
    let exported = export(&config, "cam", start, rec_end, &local);
    serve.stop_gracefully(Duration::from_secs(20));
    // Every object in d/ is a part the index knows, and every uploaded part is there once.
    let parts: Vec<(String, String)> = {
        let c = index(&data);
        let mut st = c.prepare("SELECT object, state FROM cloud_part").unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let objects = download_all(&s3);
    let in_bucket: Vec<&str> = objects
        .iter()
        .filter_map(|(k, _)| k.strip_prefix("site-a/"))
        .filter(|k| k.starts_with("d/"))
        .collect();
    for o in &in_bucket {
        assert!(
            parts.iter().any(|(p, _)| p == o),
            "{o} is in the bucket but not in the index"
        );
    }
    for (p, state) in &parts {
        if state == "uploaded" {
            assert_eq!(in_bucket.iter().filter(|o| *o == p).count(), 1, "{p}");
        }
    }

    // 4. The bucket reveals nothing: opaque names, no MP4 box or H.264 start code.
    assert!(objects.iter().any(|(k, _)| k.starts_with("site-a/keys/")));
    assert!(objects.iter().any(|(k, _)| k.starts_with("site-a/m/")));
    for (k, bytes) in &objects {
        assert!(!k.contains("cam") && !k.contains("main"), "{k}");
        assert!(
            bytes.starts_with(b"age-encryption.org/v1\n"),
            "{k} is not an age file"
        );
        for needle in [
            &b"ftyp"[..],
            b"moof",
            b"mdat",
            b"avcC",
            b"\x00\x00\x00\x01\x67",
        ] {
            assert!(
                !contains(bytes, needle),
                "{k} holds {needle:?} in the clear"
            );
        }
    }

    // 5. Debian's age opens a part into an MP4 that ffprobe reads; the wrong key fails.
    let (_, sample) = objects
        .iter()
        .find(|(k, _)| k.starts_with("site-a/d/"))
        .unwrap();
    let enc = dir.path().join("part.age");
    std::fs::write(&enc, sample).unwrap();
    let plain = dir.path().join("part.mp4");
    let o = run_peer(
        Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&owner_key)
            .arg("-o")
            .arg(&plain)
            .arg(&enc),
        Duration::from_secs(30),
    );
    assert!(o.success(), "age -d: {}", o.stderr);
    let probe = run_peer(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,width,height",
                "-of",
                "csv=p=0",
            ])
            .arg(&plain),
        Duration::from_secs(30),
    );
    assert!(probe.success(), "ffprobe: {}", probe.stderr);
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        "h264,320,240"
    );
    let wrong = run_peer(
        Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&wrong_key)
            .arg("-o")
            .arg(dir.path().join("nope.mp4"))
            .arg(&enc),
        Duration::from_secs(30),
    );
    assert!(!wrong.success(), "age -d with the wrong key succeeded");

    // 6. The stolen-recorder case: the data directory is gone; the owner's key and the
    //    bucket rebuild the range, identical to the local export.
    std::fs::remove_dir_all(&data).unwrap();
    let restored = dir.path().join("restored.mp4");
    let said = restore(&config, &owner_key, start, rec_end, &restored);
    assert!(
        said.starts_with(&format!("restored {} frames", exported.frames)),
        "{said}"
    );
    let (a, b) = (
        std::fs::read(&local).unwrap(),
        std::fs::read(&restored).unwrap(),
    );
    assert!(
        a == b,
        "restore differs from the local export ({} vs {} bytes)",
        a.len(),
        b.len()
    );
    let codes = burned_codes(&restored, SIZE);
    assert!(
        codes.len() as u64 >= exported.frames,
        "{} frames decoded",
        codes.len()
    );
    // A minute from the middle fetches about a minute's bytes, not the whole bucket.
    let total: usize = objects.iter().map(|(_, b)| b.len()).sum();
    let minute = dir.path().join("minute.mp4");
    let said = restore(
        &config,
        &recovery_key,
        outage_start,
        outage_start + 30_000_000,
        &minute,
    );
    let fetched: usize = said
        .split_once("parts, ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no fetched bytes in {said:?}"));
    println!("30 s restore: {said}; the bucket holds {total} bytes");
    // Whole 64 KiB chunks around each part's range, and the walk back to a key frame.
    let clip = std::fs::metadata(&minute).unwrap().len() as usize;
    assert!(
        fetched > 0 && fetched < 2 * clip + 256 * 1024 && fetched < total,
        "{fetched} bytes fetched for a clip of {clip}; the bucket holds {total}"
    );
    let decode = vigil_testkit::ffmpeg::decode_errors(&minute);
    assert!(decode.is_empty(), "{decode}");

    // 7. ls with the recovery key; the wrong key and wrong credentials fail clearly.
    let ls = run_peer(
        Command::new(vigil_bin())
            .args(["cloud", "ls", "--config"])
            .arg(&config)
            .arg("--identity")
            .arg(&recovery_key),
        Duration::from_secs(60),
    );
    assert!(ls.success(), "ls: {}", ls.stderr);
    let out = String::from_utf8_lossy(&ls.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("cam ") && l.contains(" main ")),
        "{out}"
    );
    let o = run_peer(
        Command::new(vigil_bin())
            .args(["cloud", "ls", "--config"])
            .arg(&config)
            .arg("--identity")
            .arg(&wrong_key),
        Duration::from_secs(60),
    );
    assert!(
        !o.success() && o.stderr.contains("wrong key"),
        "{}",
        o.stderr
    );
    let bad = cloud_section(&s3, "not-the-secret", &recipients, "");
    let bad_dir = tempfile::tempdir().unwrap();
    let bad_config = write_config(bad_dir.path(), &bad, "", &cams);
    let o = run_peer(
        Command::new(vigil_bin())
            .args(["cloud", "ls", "--config"])
            .arg(&bad_config)
            .arg("--identity")
            .arg(&owner_key),
        Duration::from_secs(60),
    );
    assert!(
        !o.success() && o.stderr.contains("403") && o.stderr.contains("SignatureDoesNotMatch"),
        "{}",
        o.stderr
    );
    println!("cloud end to end: {:?}", t0.elapsed());
}

/// A tmpfs mounted for the test (root), unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let o = run_peer(
            Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0700"),
                    "tmpfs",
                ])
                .arg(path),
            Duration::from_secs(10),
        );
        assert!(
            o.success(),
            "mounting a {size} tmpfs (the disk-full test runs as root, as scripts/test.sh does): {}",
            o.stderr
        );
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Disk full while the cloud is unreachable: the documented policy is that the oldest
/// recordings still go (recording never stops), the loss is logged and counted for the
/// System page, and their queued parts are marked lost rather than retried forever.
#[test]
fn a_full_disk_while_the_cloud_is_down_deletes_the_oldest_and_counts_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _fs = Tmpfs::mount(&data, "12m");
    // Noise at 2 Mbit/s fills the 4 MB left above the free-space floor in about 20 s.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gst-rtsp-server.py");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script).args([
        "--port",
        "0",
        "--testsrc",
        "320x240@15",
        "--bitrate",
        "2000",
        "--pattern",
        "snow",
    ]);
    let mut gst = common::recorder::Proc::spawn("gst-rtsp-server", &mut cmd);
    let addr = common::recorder::listening_addr(&mut gst);
    // Nothing listens on this port: every upload fails with "connection refused".
    let dead = vigil_testkit::mqtt::free_port();
    let key = dir.path().join("owner.key");
    let recipient = keygen(&key);
    let cloud = format!(
        "file_duration = \"3s\"\n[cloud]\nendpoint = \"http://127.0.0.1:{dead}\"\n\
         bucket = \"vigil\"\npath_style = true\naccess_key_id = \"a\"\n\
         secret_access_key = \"b\"\nrecipients = [\"{recipient}\"]\nupload_delay = \"5s\"\n"
    );
    let cams = [CameraEntry {
        name: "cam".into(),
        url: format!("rtsp://{addr}/main"),
        login: None,
    }];
    let config = write_config(
        dir.path(),
        &cloud,
        "min_free_bytes = \"8MB\"\ninterval = \"1s\"",
        &cams,
    );
    let mut serve = vigil_serve(&config);
    serve.wait_line("recording cam/main", 0, Duration::from_secs(30));
    let lost = |what: &str| -> i64 {
        index(&data)
            .query_row(
                "SELECT COALESCE((SELECT value FROM cloud_state WHERE key = ?1), 0)",
                [what],
                |r| r.get(0),
            )
            .unwrap()
    };
    // The cutter keeps queueing through the outage, so newer files wait as pending parts.
    wait_for(
        "three files lost to a full disk, newer ones queued",
        Duration::from_secs(120),
        || lost("lost_files") >= 3 && part_counts(&data).get("pending").copied().unwrap_or(0) >= 1,
    );
    let log = serve.stderr_text();
    assert!(
        log.contains("disk space: deleting oldest recording"),
        "{log}"
    );
    assert!(lost("lost_bytes") > 0);
    // Recording goes on: a file started after the losses, and the newest footage is fresh.
    let c = index(&data);
    let newest: i64 = c
        .query_row("SELECT MAX(end_wall_us) FROM segment_file", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        now_us() - newest < 5_000_000,
        "newest footage ended {} µs ago",
        now_us() - newest
    );
    // The deleted files' queued parts are lost, not retried; the rest wait for the cloud.
    let counts = part_counts(&data);
    assert!(counts.get("lost").copied().unwrap_or(0) >= 1, "{counts:?}");
    assert!(
        counts.get("pending").copied().unwrap_or(0) >= 1,
        "{counts:?}"
    );
    let err: String = c
        .query_row(
            "SELECT value FROM cloud_state WHERE key = 'last_error'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(err.contains("error sending request"), "{err}");
    drop(c);
    serve.stop_gracefully(Duration::from_secs(20));
}

/// With an identity kept on the recorder (opt-in), footage that local retention deleted
/// after upload stays on the web timeline (`cloud_ranges`) and `export.mp4` plays it from
/// the bucket: the same bytes `vigil cloud restore` writes for that range.
#[test]
fn cloud_only_footage_plays_in_the_web_app_with_an_identity_on_the_recorder() {
    use common::browser::Api;
    let s3 = SeaweedS3::start("vigil");
    let dir = tempfile::tempdir().unwrap();
    let cam_data = tempfile::tempdir().unwrap();
    let key = dir.path().join("owner.key");
    let recipient = keygen(&key);
    let (_cam, addr) = vigil_camera(
        cam_data.path(),
        "127.0.0.1:0",
        SIZE,
        FPS,
        &["--bitrate", "300k"],
    );
    let cloud = cloud_section(
        &s3,
        &s3.secret_key,
        &[recipient],
        "identity_file = \"owner.key\"",
    )
    .replace("file_duration = \"20s\"", "file_duration = \"4s\"");
    let text = format!(
        "data_dir = \"data\"\n{cloud}\n[retention]\ninterval = \"1s\"\n\n[web]\nlisten = \"127.0.0.1:0\"\n\n\
         [[camera]]\nname = \"cam\"\nurl = \"rtsp://{addr}/main\"\nusername = \"{USER}\"\n\
         password = \"{PASSWORD}\"\nmax_age = \"12s\"\n"
    );
    let config = dir.path().join("vigil.toml");
    std::fs::write(&config, text).unwrap();
    let mut serve = vigil_serve(&config);
    let (https, _) = serve.wait_line("listening https ", 0, Duration::from_secs(30));
    let (fp, _) = serve.wait_line("tls-fingerprint sha256 ", 0, Duration::from_secs(5));
    let (setup, _) = serve.wait_line("setup-url ", 0, Duration::from_secs(5));
    serve.wait_line("recording cam/main", 0, Duration::from_secs(30));
    let https: std::net::SocketAddr = https
        .trim_start_matches("listening https ")
        .trim()
        .parse()
        .unwrap();
    let fp = fp
        .trim_start_matches("tls-fingerprint sha256 ")
        .trim()
        .to_owned();
    let token = setup.split_once("#/setup/").unwrap().1.trim().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut api = Api::https(https, &fp);
    rt.block_on(api.setup(&token, "owner", "correct horse battery staple"));
    let t0 = now_us();

    // Files older than 12 s go once uploaded: the oldest footage becomes cloud-only.
    let deadline = Instant::now() + Duration::from_secs(90);
    let cloud_range = loop {
        let r = rt.block_on(api.request(
            "GET",
            &format!(
                "/api/cameras/cam/recordings?start_us={}&end_us={}",
                t0 - 60_000_000,
                now_us()
            ),
            None,
        ));
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let cloud: Vec<(i64, i64)> = v["cloud_ranges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["start_us"].as_i64().unwrap(),
                    x["end_us"].as_i64().unwrap(),
                )
            })
            .collect();
        if let Some(&(s, e)) = cloud.first().filter(|(s, e)| e - s >= 8_000_000) {
            // The disk no longer has it.
            let local: Vec<i64> = v["ranges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["start_us"].as_i64().unwrap())
                .collect();
            assert!(
                local.iter().all(|&l| l >= e - 1_000_000),
                "local {local:?} overlaps cloud {s}..{e}"
            );
            break (s, e);
        }
        assert!(Instant::now() < deadline, "no cloud-only footage yet: {v}");
        thread::sleep(Duration::from_millis(500));
    };
    let (start, end) = (cloud_range.0 + 1_000_000, cloud_range.0 + 7_000_000);
    let r = rt.block_on(api.request(
        "GET",
        &format!("/api/cameras/cam/export.mp4?start_us={start}&end_us={end}"),
        None,
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    let played = dir.path().join("played.mp4");
    std::fs::write(&played, &r.body).unwrap();
    let decode = vigil_testkit::ffmpeg::decode_errors(&played);
    assert!(decode.is_empty(), "{decode}");
    assert!(burned_codes(&played, SIZE).len() >= 6 * FPS as usize);
    let restored = dir.path().join("restored.mp4");
    restore(&config, &key, start, end, &restored);
    assert!(
        std::fs::read(&restored).unwrap() == r.body,
        "web playback differs from restore"
    );

    // Issue 13: an offsite share of the same range is sealed into the bucket with its page;
    // with the recorder switched off, Chromium plays it from SeaweedFS and decrypts exactly
    // the bytes the web app served; the bucket holds nothing an MP4 reader accepts.
    let asked = Instant::now();
    let body = serde_json::json!({"kind": "offsite", "camera": "cam", "start_us": start,
        "end_us": end, "expires_s": 3600, "label": "back door"});
    let created = rt.block_on(api.request("POST", "/api/shares", Some(&body)));
    assert_eq!(created.status, 201, "{}", created.text());
    let publish = asked.elapsed();
    let url = created.json()["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&s3.endpoint()), "{url}");
    serve.stop_gracefully(Duration::from_secs(20));
    let shared: Vec<(String, Vec<u8>)> = download_all(&s3)
        .into_iter()
        .filter(|(k, _)| k.starts_with("site-a/s/"))
        .collect();
    assert_eq!(shared.len(), 2, "page and clip");
    let (_, sealed) = shared.iter().find(|(k, _)| k.ends_with("/c")).unwrap();
    let sealed_path = dir.path().join("sealed.bin");
    std::fs::write(&sealed_path, sealed).unwrap();
    let probe = run_peer(
        Command::new("ffprobe")
            .args(["-v", "error"])
            .arg(&sealed_path),
        Duration::from_secs(20),
    );
    assert!(!probe.success(), "ffprobe read the sealed clip");
    let (ttff, played) = rt.block_on(async {
        let b = common::browser::Browser::start().await;
        let opened = Instant::now();
        b.goto(&url).await;
        b.wait_js(
            "the offsite clip to play",
            "const v = document.getElementById('share-video'); if (!v) return false; \
             if (v.paused) v.play().catch(() => {}); return v.readyState >= 2 && v.videoWidth > 0;",
            Duration::from_secs(60),
        )
        .await;
        let ttff = opened.elapsed();
        // The whole clip: the page's CSP keeps even this script from reading the blob, so
        // its length in time is the check here, and its bytes are checked below.
        let duration = b
            .js(
                "return document.getElementById('share-video').duration;",
                vec![],
            )
            .await;
        b.close().await;
        (ttff, duration)
    });
    let seconds = played.as_f64().unwrap_or(0.0);
    assert!(
        (5.0..9.0).contains(&seconds),
        "played {seconds} s of a 6 s clip"
    );
    // The link's key opens the sealed object into exactly what the web app exported.
    let fragment = vigil_cloud::share::Fragment::parse(&url).unwrap();
    let opened = vigil_cloud::share::open(&fragment.key, sealed).unwrap();
    assert!(opened == r.body, "the offsite clip differs from the export");
    eprintln!(
        "offsite share: {} bytes sealed and published in {} ms, first frame in Chromium {} ms",
        opened.len(),
        publish.as_millis(),
        ttff.as_millis()
    );
}
