//! End to end in real headless Chromium (Debian's chromium + chromedriver, driven through
//! fantoccini): `vigil demo` from its setup link to live video, playback, a downloaded clip and
//! logout, relying only on the DOM contract of the web app (docs: notes/s2-contract.md), and user
//! text rendered as text.
//!
//! Screenshots (grid, timeline) and the downloaded clip go to `target/test-artifacts/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::browser::{
    artifacts_dir, click_timeline_at, decode_chunked, fill, login, new_latencies, percentile,
    recorded_ranges, stats, submit, wait_grid_playing, wait_playback, Api, Browser, Demo,
};
use common::recorder::now_us;
use common::{ffprobe_streams, run_peer};
use fantoccini::Locator;
use serde_json::{json, Value};

/// One Chromium + one demo at a time: the machine has 2 cores and the latency figures must not
/// measure a neighbour.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A whole test must end well within this (the brief: under 3 minutes).
const TEST_LIMIT: Duration = Duration::from_secs(170);

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "e2e-Browser-Pa55-q9x";
const CAMERAS: [&str; 2] = ["front", "yard"];
/// What "live" means here: a picture under this far behind the camera. The goal of issue 4
/// (p95 under 500 ms in Chromium on loopback) is measured by the latency bench
/// (`crates/bench/src/bin/latency.rs`, docs/benchmarks.md) on a quiet machine, never asserted
/// in a test: a CI run on two busy cores measured 664 ms once. A player that buffers seconds
/// still fails this bound.
const LIVE_BOUND_MS: f64 = 1500.0;

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

async fn bounded<F: std::future::Future<Output = ()>>(what: &str, f: F) {
    if tokio::time::timeout(TEST_LIMIT, f).await.is_err() {
        panic!("{what}: did not finish within {TEST_LIMIT:?}");
    }
}

/// Serves one static page over plain HTTP on 127.0.0.1:0 (for the harness self-test).
fn static_page(html: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{html}",
                html.len()
            );
        }
    });
    port
}

/// The harness itself, against a static page: chromedriver starts, scripts run, a real pointer
/// click lands where asked, console messages and alerts are seen, screenshots are PNGs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_drives_chromium() {
    let _serial = serial().await;
    bounded("harness", async {
        let port = static_page(
            "<!doctype html><title>harness</title>\
             <meta http-equiv=Content-Security-Policy content=\"img-src 'none'\">\
             <img src='data:image/gif;base64,R0lGODlhAQABAAAAACw='>\
             <div id=box style='position:absolute;left:100px;top:100px;width:400px;height:50px;\
             background:#08f'></div>\
             <script>window.__clicks=[];document.getElementById('box').addEventListener('click',\
             e=>window.__clicks.push([e.clientX,e.clientY]));console.log('harness page loaded')\
             </script>",
        );
        let b = Browser::start().await;
        b.goto(&format!("http://127.0.0.1:{port}/")).await;
        assert_eq!(b.client.title().await.unwrap(), "harness");
        assert_eq!(b.js("return 6 * 7;", vec![]).await, json!(42));
        b.click_at(300.0, 125.0).await;
        assert_eq!(
            b.js("return window.__clicks;", vec![]).await,
            json!([[300, 125]])
        );
        let log = b.console_log().await;
        assert!(log.contains("harness page loaded"), "console: {log}");
        // A CSP violation shows in the console the way the demo walk-through looks for it.
        assert!(log.contains("Content Security Policy"), "console: {log}");
        assert_eq!(b.alert_open().await, None);
        b.js("setTimeout(() => alert('boom'), 0); return 1;", vec![])
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(b.alert_open().await.as_deref(), Some("boom"));
        b.client.dismiss_alert().await.unwrap();
        let shot = b.screenshot("harness").await;
        assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
        b.close().await;
    })
    .await;
    assert_eq!(
        decode_chunked(b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
        Some(b"abcde".to_vec())
    );
    assert_eq!(decode_chunked(b"3\r\nabc\r\n"), None);
}

/// setup link → admin created → grid with both cameras playing → latency under the goal →
/// timeline → click a recorded moment → playback plays → download the selected range with the
/// browser's session and check it with ffprobe → logout → the grid asks for a login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_setup_live_playback_download_logout() {
    let _serial = serial().await;
    bounded("demo flow", full_flow()).await;
}

async fn full_flow() {
    let mut demo = Demo::start();
    let target = Target {
        base: demo.base_url(),
        setup_url: demo.local_setup_url(),
        api: demo.api(),
    };
    flow(&target).await;
    assert!(demo.is_alive(), "vigil demo exited during the test");
}

/// Where the flow runs: the demo's address, its setup link and an API client of it.
struct Target {
    base: String,
    setup_url: String,
    api: Api,
}

async fn flow(target: &Target) {
    let base = target.base.clone();
    let b = Browser::start().await;

    // Setup: the printed link, with the address the demo really listens on.
    let nav_start = Instant::now();
    b.goto(&target.setup_url).await;
    b.wait_css("form#setup-form", Duration::from_secs(20)).await;
    fill(&b, "form#setup-form", "username", ADMIN).await;
    fill(&b, "form#setup-form", "password", ADMIN_PASSWORD).await;
    fill(&b, "form#setup-form", "password2", ADMIN_PASSWORD).await;
    submit(&b, "form#setup-form").await;

    // Logged in: the grid with both demo cameras, both playing.
    for cam in CAMERAS {
        let css = format!("#grid .tile[data-camera=\"{cam}\"] video");
        b.wait_css(&css, Duration::from_secs(30)).await;
    }
    wait_grid_playing(&b, &CAMERAS, 1.5).await;
    let playing_after_setup = nav_start.elapsed();
    assert!(
        b.cookie("vigil_session").await.is_some(),
        "no session cookie"
    );

    // A fresh load of the grid (the session cookie persists): firstFrameMs then measures page
    // load → first live frame, not the time spent on the setup form.
    let reload = Instant::now();
    b.client.refresh().await.unwrap();
    for cam in CAMERAS {
        let css = format!("#grid .tile[data-camera=\"{cam}\"] video");
        b.wait_css(&css, Duration::from_secs(30)).await;
    }
    wait_grid_playing(&b, &CAMERAS, 1.0).await;
    let playing_after = reload.elapsed();

    // Latency: what the player measured over a 10 s window of steady live play.
    let before = stats(&b).await;
    assert!(before.is_object(), "window.__vigil.stats missing: {before}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = stats(&b).await;
    b.screenshot("browser-grid").await;
    // On a phone's screen the grid fits the width (no sideways scrolling).
    b.client.set_window_size(390, 844).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let overflow = b
        .js(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await;
    b.screenshot("browser-grid-phone").await;
    b.client.set_window_size(1280, 900).await.unwrap();
    assert!(
        overflow.as_f64().is_some_and(|o| o <= 0.0),
        "the grid scrolls sideways on a 390 px wide screen by {overflow} px"
    );
    let mut report = Vec::new();
    for cam in CAMERAS {
        let s = &after[cam];
        let first_ms = s["firstFrameMs"].as_f64();
        let lat = new_latencies(&before, &after, cam);
        let all: Vec<f64> = s["latencies"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let (p50, p95) = (percentile(&lat, 50.0), percentile(&lat, 95.0));
        report.push(format!(
            "{cam}: firstFrameMs {first_ms:?}, steady 10 s: {} frames, latency p50 {p50:.0} ms \
             p95 {p95:.0} ms; all samples: {} p50 {:.0} p95 {:.0} max {:.0}",
            lat.len(),
            all.len(),
            percentile(&all, 50.0),
            percentile(&all, 95.0),
            percentile(&all, 100.0),
        ));
        let first_ms = first_ms.unwrap_or_else(|| panic!("{cam}: no firstFrameMs in {s}"));
        assert!(
            first_ms > 0.0 && first_ms < 10_000.0,
            "{cam}: firstFrameMs {first_ms}"
        );
        // 15 fps for 10 s is 150 frames; a player that shows under half of them is not live.
        assert!(lat.len() >= 60, "{cam}: {} frames in 10 s: {s}", lat.len());
        assert!(
            p95 < LIVE_BOUND_MS,
            "{cam}: live latency p95 {p95:.0} ms >= {LIVE_BOUND_MS} ms ({})",
            report.join("; ")
        );
    }
    // The same, measured independently of the player: the capture time burned into the
    // pixels of frames as they are shown (camera and browser share the wall clock).
    for cam in CAMERAS {
        let css = format!("#grid .tile[data-camera=\"{cam}\"] video");
        let mut pixel = Vec::new();
        for _ in 0..8 {
            if let Some(f) = b.grab_frame(&css).await {
                pixel.push(f.latency_ms());
            }
        }
        assert!(
            pixel.len() >= 4,
            "{cam}: the test pattern's code is unreadable in {} of 8 shown frames",
            8 - pixel.len()
        );
        let p50 = percentile(&pixel, 50.0);
        let player_p50 = percentile(&new_latencies(&before, &after, cam), 50.0);
        report.push(format!(
            "{cam}: from the pixels {} frames, latency p50 {p50:.0} ms max {:.0} ms",
            pixel.len(),
            percentile(&pixel, 100.0)
        ));
        assert!(
            p50 < LIVE_BOUND_MS,
            "{cam}: latency read from the pixels p50 {p50:.0} ms ({})",
            report.join("; ")
        );
        // The overlay must tell the truth: its figure within 150 ms of the pixels' one.
        assert!(
            (p50 - player_p50).abs() < 150.0,
            "{cam}: player says p50 {player_p50:.0} ms, the pixels {p50:.0} ms ({})",
            report.join("; ")
        );
    }
    eprintln!(
        "browser e2e: grid playing {playing_after_setup:?} after opening the setup link, \
         {playing_after:?} after a reload; {}",
        report.join("; ")
    );

    // Timeline of `front`: a click in a recorded range plays from there.
    let cam = CAMERAS[0];
    b.goto(&format!("{base}/#/timeline/{cam}")).await;
    b.wait_css(
        "#timeline[data-start-us][data-end-us]",
        Duration::from_secs(20),
    )
    .await;
    let mut api = target.api.clone();
    api.cookie = b.cookie("vigil_session").await;
    let window = b
        .js(
            "const el = document.querySelector('#timeline');
             return [Number(el.dataset.startUs), Number(el.dataset.endUs),
                     el.getBoundingClientRect().width];",
            vec![],
        )
        .await;
    let (w_start, w_end, width) = (
        window[0].as_f64().unwrap() as i64,
        window[1].as_f64().unwrap() as i64,
        window[2].as_f64().unwrap(),
    );
    assert!(w_end > w_start, "timeline window {window}");
    // µs per pixel: the range clicked must be several pixels wide for the click to land in it.
    let us_per_px = (w_end - w_start) as f64 / width.max(1.0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (r_start, r_end) = loop {
        let ranges = recorded_ranges(&api, cam, w_start, w_end).await;
        let best = ranges
            .iter()
            .map(|&(s, e)| (s.max(w_start), e.min(w_end)))
            .max_by_key(|&(s, e)| e - s);
        if let Some((s, e)) = best {
            if (e - s) as f64 >= (8.0 * us_per_px).max(6_000_000.0) {
                break (s, e);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no recorded range of >= 6 s and 8 px in the timeline window {w_start}..{w_end} \
             ({us_per_px:.0} µs/px): {ranges:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    // Reload so the page's own recording data has that range too (it fetched at load).
    b.client.refresh().await.unwrap();
    b.wait_css(
        "#timeline[data-start-us][data-end-us]",
        Duration::from_secs(20),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The middle of the range: at least 3 s of recording after it, even off by a few pixels.
    let t = r_start + (r_end - r_start) / 2;
    click_timeline_at(&b, t).await;
    wait_playback(&b, 1.0).await;
    // The picture is from the clicked moment: its burned-in capture time minus its media time
    // is where the clip starts, within a GOP (2 s) and a pixel of the click.
    let shown = b
        .grab_frame("video#playback")
        .await
        .expect("the test pattern's code in a frame of video#playback");
    let start_offset_s = (shown.code.capture_us - t) as f64 / 1e6 - shown.media_time;
    eprintln!(
        "browser e2e: clicked {t}, playback shows capture {} at media time {:.2} s \
         (clip starts {start_offset_s:+.2} s from the click)",
        shown.code.capture_us, shown.media_time
    );
    assert!(
        (-4.0..=4.0).contains(&start_offset_s),
        "playback from the wrong moment: clicked {t}, shown capture {} at media time {:.2} s",
        shown.code.capture_us,
        shown.media_time
    );
    // Speed: at 2x the media time runs at least 1.5 times as fast as the wall clock.
    b.client
        .find(Locator::Css("select#speed"))
        .await
        .expect("select#speed")
        .select_by_value("2")
        .await
        .unwrap();
    let rate_js = "const v = document.querySelector('video#playback');
                   return v.playbackRate === 2 ? v.currentTime : null;";
    let m0 = b
        .wait_js("playbackRate 2", rate_js, Duration::from_secs(5))
        .await
        .as_f64()
        .unwrap();
    let w0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m1 = b.js(rate_js, vec![]).await.as_f64().unwrap_or(m0);
    let ratio = (m1 - m0) / w0.elapsed().as_secs_f64();
    assert!(
        ratio >= 1.5,
        "at speed 2 the media ran {ratio:.2}x the wall clock"
    );
    b.js("window.scrollTo(0, 0); return 1;", vec![]).await;
    b.screenshot("browser-timeline").await;

    // Download the selected range with the browser's session; ffprobe reads H.264 from it.
    let href = b
        .wait_js(
            "a#download with an href",
            "const a = document.querySelector('a#download');
             return a && a.getAttribute('href') ? a.href : null;",
            Duration::from_secs(10),
        )
        .await;
    let href = url::Url::parse(href.as_str().unwrap()).expect("download href");
    assert!(
        href.path()
            .ends_with(&format!("/api/cameras/{cam}/export.mp4")),
        "download href {href}"
    );
    assert!(
        href.query_pairs().any(|(k, v)| k == "download" && v == "1"),
        "download href {href} lacks download=1"
    );
    let path = format!("{}?{}", href.path(), href.query().unwrap_or(""));
    let clip = api.request("GET", &path, None).await;
    assert_eq!(clip.status, 200, "GET {path}: {}", clip.text());
    let disposition = clip.header("content-disposition").unwrap_or_default();
    assert!(
        disposition.starts_with("attachment"),
        "Content-Disposition {disposition:?}"
    );
    let file = artifacts_dir().join("browser-download.mp4");
    std::fs::write(&file, &clip.body).unwrap();
    let probe = run_peer(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_streams",
                "-show_format",
                "-of",
                "json",
            ])
            .arg(&file),
        Duration::from_secs(30),
    );
    assert!(
        probe.success(),
        "ffprobe {}: {}",
        file.display(),
        probe.stderr
    );
    let streams = ffprobe_streams(&probe.stdout);
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("no video stream in the download: {streams:?}"));
    assert_eq!(video["codec_name"], "h264", "{video}");
    let format: Value = serde_json::from_slice(&probe.stdout).unwrap();
    let duration: f64 = format["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    assert!(duration > 0.0, "download duration {duration}: {format}");
    eprintln!(
        "browser e2e: downloaded {} bytes, {duration:.1} s of h264 from {path}",
        clip.body.len()
    );

    // Logout: the session dies server-side and the grid asks for a login.
    let old_cookie = api.cookie.clone();
    b.client
        .find(Locator::Css("#logout"))
        .await
        .expect("#logout")
        .click()
        .await
        .unwrap();
    b.wait_css("form#login-form", Duration::from_secs(15)).await;
    b.goto(&format!("{base}/#/")).await;
    b.client.refresh().await.unwrap();
    b.wait_css("form#login-form", Duration::from_secs(15)).await;
    let tiles = b
        .js(
            "return document.querySelectorAll('#grid .tile video').length;",
            vec![],
        )
        .await;
    assert_eq!(tiles, json!(0), "grid still shown after logout");
    let mut old = target.api.clone();
    old.cookie = old_cookie;
    let r = old.request("GET", "/api/session", None).await;
    assert_eq!(r.status, 401, "old session after logout: {}", r.text());

    // A wrong password is refused with a message; the right one opens the grid again.
    fill(&b, "form#login-form", "username", ADMIN).await;
    fill(&b, "form#login-form", "password", "not-the-password").await;
    submit(&b, "form#login-form").await;
    b.wait_js(
        "a message in #login-error",
        "const e = document.querySelector('#login-error');
         return e && e.textContent.trim().length > 0;",
        Duration::from_secs(10),
    )
    .await;
    login(&b, &base, ADMIN, ADMIN_PASSWORD).await;
    b.wait_css("#grid .tile video", Duration::from_secs(20))
        .await;

    // The whole walk ran under the real Content-Security-Policy without a violation or an
    // uncaught script error.
    let console = b.console_log().await;
    let bad: Vec<&str> = console
        .lines()
        .filter(|l| {
            l.contains("Content Security Policy")
                || l.contains("Refused to")
                || l.contains("Uncaught")
        })
        .collect();
    assert!(bad.is_empty(), "browser console: {bad:#?}");

    b.close().await;
}

const XSS: &str = "<img src=x onerror=alert(1)>";
/// Recovery codes made at enrolment (crates/web/src/second_factor.rs).
const RECOVERY_CODES: usize = 10;

/// Opens `hash` and checks the page shows [`XSS`] as literal text, made no `<img src=x>` and
/// opened no dialog.
async fn assert_shown_as_text(b: &Browser, base: &str, hash: &str) {
    b.goto(&format!("{base}/{hash}")).await;
    b.wait_js(
        &format!("the literal text {XSS:?} on {hash}"),
        "return document.body && document.body.innerText.includes(arguments[0]);"
            .replace("arguments[0]", &serde_json::to_string(XSS).unwrap())
            .as_str(),
        Duration::from_secs(20),
    )
    .await;
    let imgs = b
        .js(
            "return Array.from(document.querySelectorAll('img'))
                 .filter(i => i.getAttribute('src') === 'x' || i.hasAttribute('onerror')).length;",
            vec![],
        )
        .await;
    assert_eq!(imgs, json!(0), "{hash}: the string became an element");
    assert_eq!(b.alert_open().await, None, "{hash}: a dialog opened");
}

/// A camera cannot be named like markup; text a user controls (a user name if the API takes it,
/// and always the User-Agent shown in the session list) is shown as text, never parsed as HTML.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_text_is_rendered_as_text() {
    let _serial = serial().await;
    let demo = Demo::start();
    let target = Target {
        base: demo.base_url(),
        setup_url: demo.local_setup_url(),
        api: demo.api(),
    };
    bounded("xss", xss(&target, &demo.setup_token())).await;
}

async fn xss(target: &Target, setup_token: &str) {
    let base = target.base.clone();
    let mut api = target.api.clone();
    api.setup(setup_token, ADMIN, ADMIN_PASSWORD).await;

    let cam = json!({"name": XSS, "url": "rtsp://127.0.0.1:9/x"});
    let r = api.request("POST", "/api/cameras", Some(&cam)).await;
    let camera_named = r.status == 201;
    assert!(
        camera_named || (400..500).contains(&r.status),
        "POST /api/cameras with a markup name: {} {}",
        r.status,
        r.text()
    );
    let user = json!({"username": XSS, "password": "xss-Pa55word-long", "role": "viewer",
                      "cameras": null});
    let r = api.request("POST", "/api/users", Some(&user)).await;
    let user_named = (200..300).contains(&r.status);
    assert!(
        user_named || (400..500).contains(&r.status),
        "POST /api/users with a markup name: {} {}",
        r.status,
        r.text()
    );
    // A session whose User-Agent is markup: any client can send one.
    let mut hostile = target.api.clone();
    hostile.user_agent = XSS.to_owned();
    hostile.login(ADMIN, ADMIN_PASSWORD).await;

    let b = Browser::start().await;
    login(&b, &base, ADMIN, ADMIN_PASSWORD).await;

    if camera_named {
        assert_shown_as_text(&b, &base, "#/cameras").await;
        assert_shown_as_text(&b, &base, "#/").await;
    }
    if user_named {
        assert_shown_as_text(&b, &base, "#/users").await;
    }

    // A camera added from ONVIF: the model is text the device reports, shown as text in the
    // camera editor; the firmware minimum set there flags the camera on /api/system.
    let cam = json!({"name": "onvif-cam", "url": "rtsp://127.0.0.1:9/x",
        "onvif": {"xaddr": "http://127.0.0.1:9/onvif/device_service",
                  "model": XSS, "firmware": "1.2.3"}});
    let r = api.request("POST", "/api/cameras", Some(&cam)).await;
    assert_eq!(r.status, 201, "POST /api/cameras with onvif: {}", r.text());
    b.goto(&format!("{base}/#/cameras")).await;
    b.wait_css(
        "tr[data-camera=\"onvif-cam\"] button",
        Duration::from_secs(20),
    )
    .await
    .click()
    .await
    .unwrap();
    b.wait_css(
        "form#camera-form [name=min_firmware]",
        Duration::from_secs(10),
    )
    .await;
    let shown = b
        .js(
            "return document.querySelector('form#camera-form').innerText.includes(arguments[0]);",
            vec![json!(format!("{XSS} · 1.2.3"))],
        )
        .await;
    assert_eq!(shown, json!(true), "the ONVIF model is shown as text");
    assert_eq!(
        b.js(
            // The zone editor's snapshot is an <img>; a parsed model would be src=x.
            "return Array.from(document.querySelectorAll('form#camera-form img'))
                 .filter(i => i.getAttribute('src') === 'x' || i.hasAttribute('onerror')).length;",
            vec![]
        )
        .await,
        json!(0)
    );
    fill(&b, "form#camera-form", "min_firmware", "1.10").await;
    submit(&b, "form#camera-form").await;
    let started = Instant::now();
    loop {
        let sys = api.request("GET", "/api/system", None).await.json();
        let row = sys["onvif"]
            .as_array()
            .and_then(|v| v.iter().find(|d| d["camera"] == "onvif-cam").cloned());
        if let Some(row) = row.filter(|d| d["outdated"] == json!(true)) {
            assert_eq!(row["min_firmware"], "1.10", "{row}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the minimum set in the editor never flagged 1.2.3 < 1.10: {sys}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_shown_as_text(&b, &base, "#/account").await;

    // An API token made on the page, named like markup, with a scope ticked: stored with
    // what the form said (scopes, 90-day default expiry), shown once, listed as text.
    fill(&b, "form#token-form", "token-name", XSS).await;
    b.client
        .find(Locator::Css("form#token-form [name=scope-share]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    submit(&b, "form#token-form").await;
    let secret = b
        .wait_css("#token-secret", Duration::from_secs(10))
        .await
        .text()
        .await
        .unwrap();
    assert!(secret.starts_with("vigil_"), "{secret}");
    let r = api.request("GET", "/api/tokens", None).await;
    let tokens: Value = serde_json::from_str(&r.text()).unwrap();
    let t = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == XSS)
        .unwrap_or_else(|| panic!("{tokens}"));
    assert_eq!(t["scopes"], json!(["view", "share"]), "{t}");
    assert_eq!(t["cameras"], Value::Null, "{t}");
    let days = (t["expires_us"].as_i64().unwrap() - now_us()) as f64 / 86_400e6;
    assert!((89.9..=90.0).contains(&days), "{days}");
    assert!(!r.text().contains(&secret), "the list holds the secret");
    assert_shown_as_text(&b, &base, "#/account").await;

    // Two-step sign-in through the page: scan (the key), confirm with a code computed by an
    // independent TOTP (Python's hmac), ten recovery codes shown; then log out and back in
    // with the password and the next step's code.
    // Clicked by script: the page's sticky header may cover a button scrolled to the top.
    b.wait_css("#totp-start", Duration::from_secs(10)).await;
    b.js("document.querySelector('#totp-start').click();", vec![])
        .await;
    let key = b
        .wait_css("#totp-secret", Duration::from_secs(10))
        .await
        .text()
        .await
        .unwrap();
    let qr = b
        .js(
            "const i = document.querySelector('#totp-qr'); \
             return i && i.complete && i.naturalWidth >= 100;",
            vec![],
        )
        .await;
    assert_eq!(qr, json!(true), "the QR code is not shown");
    let confirmed_at = vigil_testkit::totp::now();
    fill(
        &b,
        "form#totp-confirm-form",
        "code",
        &vigil_testkit::totp::code(&key, confirmed_at),
    )
    .await;
    b.js(
        "document.querySelector('form#totp-confirm-form').requestSubmit();",
        vec![],
    )
    .await;
    b.wait_css("#recovery-codes", Duration::from_secs(10)).await;
    let n = b
        .js(
            "return document.querySelectorAll('#recovery-codes li').length;",
            vec![],
        )
        .await;
    assert_eq!(n, json!(RECOVERY_CODES));
    b.client
        .find(Locator::Css("#logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_css("form#login-form", Duration::from_secs(15)).await;
    fill(&b, "form#login-form", "username", ADMIN).await;
    fill(&b, "form#login-form", "password", ADMIN_PASSWORD).await;
    submit(&b, "form#login-form").await;
    fill(
        &b,
        "form#second-factor-form",
        "code",
        &vigil_testkit::totp::code(&key, confirmed_at + 30),
    )
    .await;
    submit(&b, "form#second-factor-form").await;
    b.wait_css("#grid", Duration::from_secs(20)).await;
    eprintln!(
        "xss: camera name accepted: {camera_named}, user name accepted: {user_named}; \
         shown as text"
    );
    b.close().await;
}

/// The live view comes back by itself when the connection drops: `vigil demo` is killed
/// (to the browser the same as the network or the server going away without a word) and
/// started again on the same port while the page is left alone; both tiles play again, near
/// live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_view_recovers_after_a_drop() {
    let _serial = serial().await;
    let mut demo = Demo::start();
    bounded("recovery", recovery(&mut demo, "KILL")).await;
}

/// The same across a graceful restart (SIGTERM, as after an upgrade): closing the live
/// sockets at shutdown must not tell the page its cameras are gone for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_view_recovers_after_a_restart() {
    let _serial = serial().await;
    let mut demo = Demo::start();
    bounded("recovery", recovery(&mut demo, "TERM")).await;
}

async fn recovery(demo: &mut Demo, signal: &str) {
    let base = demo.base_url();
    let mut api = demo.api();
    api.setup(&demo.setup_token(), ADMIN, ADMIN_PASSWORD).await;
    let b = Browser::start().await;
    login(&b, &base, ADMIN, ADMIN_PASSWORD).await;
    wait_grid_playing(&b, &CAMERAS, 1.0).await;

    let frames = |v: &Value| CAMERAS.map(|c| v[c]["frames"].as_u64().unwrap_or(0));
    let down = Instant::now();
    demo.restart(signal);
    let back_up = down.elapsed();
    let before = frames(&stats(&b).await);
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let now = frames(&stats(&b).await);
        // Two seconds of pictures (15 fps) in every tile since the server came back.
        if now.iter().zip(before).all(|(n, b0)| *n >= b0 + 30) {
            break;
        }
        if Instant::now() >= deadline {
            panic!(
                "live view did not recover within 45 s of the restart: frames {before:?} → \
                 {now:?}\npage: {}\nconsole: {}",
                b.page_summary().await,
                b.console_log().await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let recovered = down.elapsed();
    let mut lat = Vec::new();
    for cam in CAMERAS {
        let css = format!("#grid .tile[data-camera=\"{cam}\"] video");
        let f = b
            .grab_frame(&css)
            .await
            .unwrap_or_else(|| panic!("{cam}: no readable frame after the restart"));
        lat.push(f.latency_ms());
        assert!(
            f.latency_ms() < LIVE_BOUND_MS,
            "{cam}: {:.0} ms behind live after the restart",
            f.latency_ms()
        );
    }
    eprintln!(
        "recovery: server back {back_up:?} after SIG{signal}, both tiles playing again after \
         {recovered:?}; latency from the pixels {lat:.0?} ms"
    );
    b.close().await;
}

/// The overlay's transport (`data-transport`) and text of the grid tile of `cam`.
const OVERLAY_JS: &str = "const el = document.querySelector(
        `#grid .tile[data-camera=\"${arguments[0]}\"] .stats, .player[data-camera=\"${arguments[0]}\"] .stats`);
    return el ? {transport: el.dataset.transport || '', text: el.textContent,
                 loss: el.dataset.loss || '', p50: el.dataset.p50 || ''} : null;";

/// Waits until the overlay of `cam` says `transport` and has a p50 figure; returns it.
async fn wait_overlay(b: &Browser, cam: &str, transport: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = b.js(OVERLAY_JS, vec![json!(cam)]).await;
        if o["transport"] == transport && o["p50"].as_str().is_some_and(|p| !p.is_empty()) {
            return o;
        }
        if Instant::now() >= deadline {
            panic!(
                "{cam}: the overlay does not say {transport} with a latency: {o}\npage: {}\n\
                 console: {}",
                b.page_summary().await,
                b.console_log().await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Issue 14: the UI plays over WebRTC by default. Both demo tiles say "WebRTC" in the overlay
/// with a latency measured from the capture time (the server's capture-time data channel,
/// looked up by each frame's RTP timestamp), their video time advances, the test pattern's
/// pixel clock is read back and agrees with the overlay. Then a WHEP POST answered 501 (as
/// with `[webrtc] enabled = false`; the page's fetch is made to answer it) hands the camera
/// page to MSE and the overlay says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_view_plays_over_webrtc_and_falls_back_to_mse() {
    let _serial = serial().await;
    let demo = Demo::start();
    bounded("webrtc", webrtc_flow(&demo)).await;
}

async fn webrtc_flow(demo: &Demo) {
    let base = demo.base_url();
    let mut api = demo.api();
    api.setup(&demo.setup_token(), ADMIN, ADMIN_PASSWORD).await;
    let b = Browser::start().await;
    let load = Instant::now();
    login(&b, &base, ADMIN, ADMIN_PASSWORD).await;
    wait_grid_playing(&b, &CAMERAS, 1.0).await;
    let playing = load.elapsed();
    let mut report = Vec::new();
    for cam in CAMERAS {
        let o = wait_overlay(&b, cam, "webrtc").await;
        let text = o["text"].as_str().unwrap_or("");
        assert!(text.starts_with("WebRTC · p50 "), "{cam}: overlay {text:?}");
        assert!(text.contains(" fps · loss "), "{cam}: overlay {text:?}");
    }
    let before = stats(&b).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = stats(&b).await;
    for cam in CAMERAS {
        let s = &after[cam];
        assert_eq!(s["transport"], "webrtc", "{cam}: {s}");
        let lat = new_latencies(&before, &after, cam);
        // 15 fps for 5 s is 75 frames, each with its capture time from the data channel.
        assert!(
            lat.len() >= 30,
            "{cam}: {} latencies in 5 s: {s}",
            lat.len()
        );
        let css = format!("#grid .tile[data-camera=\"{cam}\"] video");
        let mut pixel = Vec::new();
        for _ in 0..8 {
            if let Some(f) = b.grab_frame(&css).await {
                pixel.push(f.latency_ms());
            }
        }
        assert!(
            pixel.len() >= 4,
            "{cam}: the pixel clock is unreadable in {} of 8 frames shown over WebRTC",
            8 - pixel.len()
        );
        let (p50, player_p50) = (percentile(&pixel, 50.0), percentile(&lat, 50.0));
        report.push(format!(
            "{cam}: firstFrameMs {:?}, {} frames in 5 s, overlay p50 {player_p50:.0} ms p95 \
             {:.0} ms, pixels p50 {p50:.0} ms max {:.0} ms, packets lost {} of {}",
            s["firstFrameMs"].as_f64(),
            lat.len(),
            percentile(&lat, 95.0),
            percentile(&pixel, 100.0),
            s["packetsLost"],
            s["packetsReceived"],
        ));
        assert!(p50 < LIVE_BOUND_MS, "{cam}: {}", report.join("; "));
        assert!(
            (p50 - player_p50).abs() < 150.0,
            "{cam}: the overlay is not the pixels' latency: {}",
            report.join("; ")
        );
    }
    b.screenshot("browser-grid-webrtc").await;

    // Fallback: the WHEP POST answers 501 (WebRTC off on the server); the camera page plays
    // over MSE and says so.
    b.js(
        "const orig = window.fetch.bind(window);
         window.fetch = (url, init) => (String(url).includes('/whep') && init && init.method === 'POST')
           ? Promise.resolve(new Response(JSON.stringify({error: 'WebRTC is disabled'}),
               {status: 501, headers: {'Content-Type': 'application/json'}}))
           : orig(url, init);
         location.hash = '#/camera/front';
         return true;",
        vec![],
    )
    .await;
    let o = wait_overlay(&b, "front", "mse").await;
    let text = o["text"].as_str().unwrap_or("");
    assert!(
        text.starts_with("MSE (WebRTC is off on the server) · p50 "),
        "overlay after a 501: {text:?}"
    );
    let t0 = b
        .js(
            "return document.querySelector('.player video').currentTime;",
            vec![],
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t1 = b
        .js(
            "return document.querySelector('.player video').currentTime;",
            vec![],
        )
        .await;
    assert!(
        t1.as_f64() > t0.as_f64(),
        "MSE after the fallback does not play: {t0} → {t1}"
    );
    eprintln!(
        "webrtc e2e: grid playing {playing:?} after the login page opened; {}; fallback \
         overlay {text:?}",
        report.join("; ")
    );
    b.close().await;
}

/// Share links (issue 13) as their recipient meets them in Chromium, never logged in: a clip
/// link plays and downloads (ffprobe reads the download) and its page reaches nothing else;
/// a password link asks first; a view limit of 1 holds; an expired, a revoked and a
/// retention-ended link each say why; a shared live view stops within 5 s of its revocation;
/// 100 wrong tokens hit the rate limit; and no token appears in the server's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_links_play_for_their_recipient_only_as_long_as_allowed() {
    let _serial = serial().await;
    bounded("share links", share_flow()).await;
}

/// `POST /api/shares` as the logged-in owner: the link and the share's id.
async fn share(api: &Api, body: Value) -> (String, String) {
    let r = api.request("POST", "/api/shares", Some(&body)).await;
    assert_eq!(r.status, 201, "{body}: {}", r.text());
    let v = r.json();
    (
        v["url"].as_str().unwrap().to_owned(),
        v["share"]["id"].as_str().unwrap().to_owned(),
    )
}

/// Waits until the share page's `<video id=ID>` shows pictures; returns the time it took
/// from `since`.
async fn wait_share_video(b: &Browser, id: &str, since: Instant) -> Duration {
    b.wait_js(
        &format!("#{id} showing pictures"),
        &format!(
            "const v = document.getElementById('{id}'); \
             if (!v) return false; if (v.paused) v.play().catch(() => {{}}); \
             return v.readyState >= 2 && v.videoWidth > 0;"
        ),
        Duration::from_secs(30),
    )
    .await;
    since.elapsed()
}

async fn wait_reason(b: &Browser, reason: &str) -> String {
    b.wait_js(
        &format!("the page to say {reason}"),
        &format!(
            "const m = document.getElementById('share-message'); \
             return m && m.dataset.reason === '{reason}' ? m.textContent : false;"
        ),
        Duration::from_secs(15),
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

async fn share_flow() {
    let demo = Demo::start();
    let mut api = demo.api();
    api.setup(&demo.setup_token(), ADMIN, ADMIN_PASSWORD).await;
    let base = demo.base_url();
    let mut tokens = Vec::new();
    let token_of = |url: &str| url.split_once("/s/#").unwrap().1.to_owned();

    // Some footage of `front` to share.
    let t0 = now_us();
    let deadline = Instant::now() + Duration::from_secs(40);
    let (start_us, end_us) = loop {
        let r = api
            .request(
                "GET",
                &format!(
                    "/api/cameras/front/recordings?start_us={}&end_us={}",
                    t0 - 60_000_000,
                    now_us()
                ),
                None,
            )
            .await;
        let v = r.json();
        let first = &v["ranges"][0];
        if let (Some(s), Some(e)) = (first["start_us"].as_i64(), first["end_us"].as_i64()) {
            if e - s >= 6_000_000 {
                break (s, e);
            }
        }
        assert!(Instant::now() < deadline, "no 6 s recorded: {v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let clip = json!({"kind": "clip", "camera": "front", "start_us": start_us, "end_us": end_us, "label": "<b>Parcel</b> thief"});

    // 0. The owner shares the timeline's range from the web app: Share…, Create link, and the
    //    link plays for the recipient (a browser that never logged in).
    let owner = Browser::start().await;
    login(&owner, &base, ADMIN, ADMIN_PASSWORD).await;
    owner.goto(&format!("{base}/#/timeline/front")).await;
    owner
        .wait_js(
            "#share-open enabled",
            "const b = document.getElementById('share-open'); return b && !b.disabled;",
            Duration::from_secs(20),
        )
        .await;
    let clicked = Instant::now();
    owner
        .js(
            "document.getElementById('share-open').click(); return 1;",
            vec![],
        )
        .await;
    owner
        .wait_css(
            "dialog#share-dialog[open] #share-create",
            Duration::from_secs(10),
        )
        .await;
    owner
        .js(
            "document.getElementById('share-label').value = 'from the timeline'; \
             document.getElementById('share-create').click(); return 1;",
            vec![],
        )
        .await;
    let ui_url = owner
        .wait_js(
            "#share-url",
            "const u = document.getElementById('share-url'); return u && u.value ? u.value : false;",
            Duration::from_secs(20),
        )
        .await;
    let ui_link_ms = clicked.elapsed().as_secs_f64() * 1000.0;
    let ui_url = ui_url.as_str().unwrap().to_owned();
    owner.close().await;
    tokens.push(token_of(&ui_url));
    let b = Browser::start().await;
    let opened = Instant::now();
    b.goto(&ui_url).await;
    let ui_ttff = wait_share_video(&b, "share-video", opened).await;

    // 1. A clip link: the page plays it, offers the download, and its session opens nothing
    //    else.
    let asked = Instant::now();
    let (url, id) = share(&api, clip.clone()).await;
    let create_ms = asked.elapsed().as_secs_f64() * 1000.0;
    assert!(url.starts_with(&base), "{url}");
    tokens.push(token_of(&url));
    let opened = Instant::now();
    b.goto(&url).await;
    let ttff = wait_share_video(&b, "share-video", opened).await;
    let title = b
        .js(
            "return document.getElementById('share-title').textContent",
            vec![],
        )
        .await;
    assert!(title.as_str().unwrap().contains("front"), "{title}");
    let label = b
        .js(
            "return document.getElementById('share-label').textContent",
            vec![],
        )
        .await;
    assert_eq!(label, "<b>Parcel</b> thief", "the label is text");
    let got = b
        .js(
            "const a = document.getElementById('share-download'); if (!a) return null; \
             return fetch(a.href).then(async r => { const b = new Uint8Array(await r.arrayBuffer()); \
             let s = ''; for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode.apply(null, b.subarray(i, i + 8192)); \
             return [r.status, r.headers.get('content-disposition'), btoa(s)]; });",
            vec![],
        )
        .await;
    assert_eq!(got[0], 200, "download: {got}");
    assert!(got[1].as_str().unwrap().starts_with("attachment"));
    let mp4 = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        got[2].as_str().unwrap(),
    )
    .unwrap();
    let file = artifacts_dir().join("share-download.mp4");
    std::fs::write(&file, &mp4).unwrap();
    let probe = run_peer(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_streams", "-of", "json"])
            .arg(&file),
        Duration::from_secs(20),
    );
    assert!(probe.success(), "ffprobe: {}", probe.stderr);
    let streams = ffprobe_streams(&probe.stdout);
    assert_eq!(streams[0]["codec_name"], "h264", "{streams:?}");
    let scope = b
        .js(
            "const id = arguments[0], s = arguments[1]; \
             const st = u => fetch(u).then(r => r.status); \
             return Promise.all([ \
               st(`/api/share/${id}/clip.mp4?camera=yard`), \
               st(`/api/share/${id}/clip.mp4?start_us=${s - 3600000000}`), \
               st(`/api/cameras/yard/export.mp4?start_us=${s}&end_us=${s + 1000000}`), \
               st('/api/cameras'), st('/api/shares'), st(`/api/share/${id}/live`)]);",
            vec![json!(id), json!(start_us)],
        )
        .await;
    assert_eq!(scope, json!([403, 403, 401, 401, 401, 403]), "{scope}");

    // 2. Revoked while open: a reload says so.
    let r = api
        .request("DELETE", &format!("/api/shares/{id}"), None)
        .await;
    assert_eq!(r.status, 204);
    b.client.refresh().await.unwrap();
    wait_reason(&b, "revoked").await;

    // 3. A password link asks for it first.
    let mut body = clip.clone();
    body["password"] = json!("hunter2 but longer");
    let (url, _) = share(&api, body).await;
    tokens.push(token_of(&url));
    b.goto(&url).await;
    b.wait_css("#share-password", Duration::from_secs(15)).await;
    b.js(
        "document.getElementById('share-password').value = 'hunter2 but longer'; \
         document.getElementById('share-password-submit').click();",
        vec![],
    )
    .await;
    wait_share_video(&b, "share-video", Instant::now()).await;

    // 4. A view limit of 1: the same browser may reload, another one (no cookie) may not.
    let mut body = clip.clone();
    body["max_views"] = json!(1);
    let (url, id) = share(&api, body).await;
    tokens.push(token_of(&url));
    b.goto(&url).await;
    wait_share_video(&b, "share-video", Instant::now()).await;
    b.client.refresh().await.unwrap();
    wait_share_video(&b, "share-video", Instant::now()).await;
    // Another browser, as far as the server can tell: WebDriver deletes the cookies the
    // current URL sees, and the media session's path is the share's API.
    b.goto(&format!("{base}/api/share/{id}/info")).await;
    b.client.delete_all_cookies().await.unwrap();
    b.goto(&url).await;
    wait_reason(&b, "used_up").await;

    // 5. Expired: the share's expiry moved into the past in its database.
    let (url, id) = share(&api, clip.clone()).await;
    tokens.push(token_of(&url));
    {
        let db = rusqlite::Connection::open(demo.data.path().join("web.sqlite3")).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        let n = db
            .execute(
                "UPDATE share SET expires_us = ?1 WHERE id = ?2",
                rusqlite::params![now_us() - 1, id],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    b.goto(&url).await;
    let text = wait_reason(&b, "expired").await;
    assert!(text.contains("expired"), "{text}");

    // 6. A live view, revoked while it plays: it stops within 5 s.
    let (url, id) = share(
        &api,
        json!({"kind": "live", "camera": "yard", "expires_s": 3600}),
    )
    .await;
    tokens.push(token_of(&url));
    b.goto(&url).await;
    let live_ttff = wait_share_video(&b, "share-live", Instant::now()).await;
    let r = api
        .request("DELETE", &format!("/api/shares/{id}"), None)
        .await;
    assert_eq!(r.status, 204);
    let revoked = Instant::now();
    b.wait_js(
        "the live view to end",
        "const m = document.getElementById('share-message'); \
         return m && m.dataset.reason ? m.dataset.reason : false;",
        Duration::from_secs(5),
    )
    .await;
    let stop_ms = revoked.elapsed().as_millis();
    let after = b
        .js(
            "const v = document.getElementById('share-live'); return v ? v.currentTime : -1;",
            vec![],
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = b
        .js(
            "const v = document.getElementById('share-live'); return v ? v.currentTime : -1;",
            vec![],
        )
        .await;
    assert!(
        later.as_f64() <= after.as_f64().map(|a| a + 0.2),
        "still playing after revocation: {after} -> {later}"
    );

    // 7. Guessing: 100 wrong tokens from the page hit the rate limit.
    let codes = b
        .js(
            "const out = []; \
             const go = async () => { for (let i = 0; i < 100; i++) { \
               const r = await fetch('/api/share/open', {method: 'POST', \
                 headers: {'content-type': 'application/json'}, \
                 body: JSON.stringify({token: 'guess-' + i})}); out.push(r.status); } \
               return out; }; return go();",
            vec![],
        )
        .await;
    let codes: Vec<u64> = codes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    let limited = codes.iter().filter(|&&c| c == 429).count();
    assert!(
        limited > 50 && codes.iter().all(|&c| c == 404 || c == 429),
        "{codes:?}"
    );
    b.close().await;

    // 8. No token in any line the server wrote.
    let log = demo.stderr_text();
    for t in &tokens {
        assert!(!log.contains(t.as_str()), "a share token is in the log");
    }
    eprintln!(
        "share links: from the timeline, click Share to link {ui_link_ms:.0} ms (dialog \
         included), recipient's first frame {} ms",
        ui_ttff.as_millis()
    );
    eprintln!(
        "share links: create {create_ms:.1} ms, clip first frame {} ms, live first frame {} ms, \
         live stopped {stop_ms} ms after revocation, {limited} of 100 guesses refused unchecked",
        ttff.as_millis(),
        live_ttff.as_millis()
    );
}

/// Issue 16, passkeys: in real Chromium with the WebDriver virtual authenticator (CTAP2,
/// resident keys, user verification), through the UI: a passkey is added on the Account
/// page (with the password; the first one answers recovery codes), signs in alone from the
/// login page, serves as the second step after the password, satisfies a require-2FA
/// policy, and once removed no longer opens anything. A page on another address than the
/// public URL is refused with a message naming the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_sign_in_alone_and_as_the_second_step() {
    let _serial = serial().await;
    bounded("passkeys", passkey_flow()).await;
}

/// Waits for the grid, then answers who `GET /api/session` says is logged in.
async fn signed_in_as(b: &Browser) -> Value {
    b.wait_css("#grid", Duration::from_secs(20)).await;
    b.wait_js(
        "GET /api/session from the page",
        "const x = new XMLHttpRequest(); x.open('GET', '/api/session', false); x.send();
         return x.status === 200 ? JSON.parse(x.responseText).username : false;",
        Duration::from_secs(10),
    )
    .await
}

/// A fresh login page (no cookie), and a click on "Sign in with a passkey".
async fn passkey_button(b: &Browser, base: &str) {
    b.client.delete_all_cookies().await.unwrap();
    b.goto(&format!("{base}/#/login")).await;
    b.wait_css("#passkey-login", Duration::from_secs(20))
        .await
        .click()
        .await
        .unwrap();
}

async fn passkey_flow() {
    let demo = Demo::start();
    let mut api = demo.api();
    api.setup(&demo.setup_token(), ADMIN, ADMIN_PASSWORD).await;
    // The demo listens on 127.0.0.1 and its public URL defaults to https://localhost:PORT.
    let local = demo.base_url().replace("127.0.0.1", "localhost");

    // From another address (the API client's Origin is https://127.0.0.1:PORT): refused, and
    // the message says where passkeys work.
    let body = json!({"password": ADMIN_PASSWORD});
    let r = api
        .request("POST", "/api/account/passkeys/options", Some(&body))
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains(&local), "{}", r.text());

    let b = Browser::start().await;
    let authenticator = b
        .webdriver(
            "POST",
            "webauthn/authenticator",
            Some(json!({
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserVerified": true,
            })),
        )
        .await;
    let authenticator = authenticator.as_str().unwrap().to_owned();
    let creds_path = format!("webauthn/authenticator/{authenticator}/credentials");

    // 1. Add a passkey on the Account page.
    login(&b, &local, ADMIN, ADMIN_PASSWORD).await;
    b.goto(&format!("{local}/#/account")).await;
    b.wait_css("form#passkey-form", Duration::from_secs(20))
        .await;
    fill(&b, "form#passkey-form", "passkey-name", "laptop").await;
    fill(&b, "form#passkey-form", "passkey-password", ADMIN_PASSWORD).await;
    submit(&b, "form#passkey-form").await;
    let codes = b
        .wait_js(
            "the passkey listed with ten recovery codes",
            "const t = document.getElementById('passkeys-table');
             const e = document.getElementById('passkey-error');
             if (e) return 'error: ' + e.textContent;
             const c = document.querySelectorAll('#recovery-codes li').length;
             return t && t.textContent.includes('laptop') && c ? c : false;",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(codes, json!(10), "{}", b.page_summary().await);
    let creds = b.webdriver("GET", &creds_path, None).await;
    assert_eq!(creds.as_array().map(Vec::len), Some(1), "{creds}");
    assert_eq!(creds[0]["isResidentCredential"], json!(true), "{creds}");
    assert_eq!(creds[0]["rpId"], json!("localhost"), "{creds}");
    // The authenticator holds the random user handle, not the name.
    assert_ne!(creds[0]["userHandle"], json!(""), "{creds}");

    // 2. Sign in with the passkey alone: no name, no password.
    passkey_button(&b, &local).await;
    assert_eq!(signed_in_as(&b).await, json!(ADMIN));

    // 3. The password now asks for a second step, which the passkey answers.
    b.client.delete_all_cookies().await.unwrap();
    b.goto(&format!("{local}/#/login")).await;
    b.wait_css("form#login-form", Duration::from_secs(20)).await;
    fill(&b, "form#login-form", "username", ADMIN).await;
    fill(&b, "form#login-form", "password", ADMIN_PASSWORD).await;
    submit(&b, "form#login-form").await;
    b.wait_css("#second-factor-passkey", Duration::from_secs(20))
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(signed_in_as(&b).await, json!(ADMIN));
    let creds = b.webdriver("GET", &creds_path, None).await;
    // Two assertions at least (the virtual authenticator counts its registration too or not).
    assert!(creds[0]["signCount"].as_u64() >= Some(2), "{creds}");

    // 4. A require-2FA policy is met by the passkey; the audit log has every step.
    let r = api
        .request(
            "PUT",
            "/api/settings/second-factor",
            Some(&json!({"require": "everyone"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = api.request("GET", "/api/session", None).await.json();
    assert_eq!(s["must_enrol"], json!(false), "{s}");
    let audit = api.request("GET", "/api/audit?limit=50", None).await.json();
    let has = |action: &str, detail: &str| {
        audit.as_array().unwrap().iter().any(|e| {
            e["action"] == json!(action) && e["detail"].as_str().unwrap_or("").contains(detail)
        })
    };
    assert!(has("passkey_added", "laptop"), "{audit}");
    assert!(has("login", "with a passkey"), "{audit}");
    assert!(has("login", "with passkey"), "{audit}");

    // 5. Removed, it opens nothing, and the policy asks to enrol again.
    let list = api
        .request("GET", "/api/account/passkeys", None)
        .await
        .json();
    assert_eq!(list[0]["name"], json!("laptop"), "{list}");
    assert!(list[0]["last_used_us"].is_i64(), "{list}");
    let id = list[0]["id"].as_i64().unwrap();
    let r = api
        .request("DELETE", &format!("/api/account/passkeys/{id}"), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let s = api.request("GET", "/api/session", None).await.json();
    assert_eq!(s["must_enrol"], json!(true), "{s}");
    passkey_button(&b, &local).await;
    let msg = b
        .wait_js(
            "the login page to refuse the removed passkey",
            "const e = document.getElementById('login-error');
             return e && e.textContent ? e.textContent : false;",
            Duration::from_secs(20),
        )
        .await;
    assert!(msg.as_str().unwrap().contains("not accepted"), "{msg}");
    let r = b
        .js(
            "const x = new XMLHttpRequest(); x.open('GET', '/api/session', false); x.send();
             return x.status;",
            vec![],
        )
        .await;
    assert_eq!(r, json!(401));
    b.close().await;
}
