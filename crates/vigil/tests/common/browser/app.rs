//! Steps through the web app by its DOM contract (notes/s2-contract.md): forms, the grid's
//! live tiles and the player's stats, the timeline and its playback.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{json, Value};

use super::{Api, Browser};

/// Types `value` into `form [name=NAME]`.
pub async fn fill(b: &Browser, form: &str, name: &str, value: &str) {
    let css = format!("{form} [name={name}]");
    let el = b.wait_css(&css, Duration::from_secs(10)).await;
    el.clear().await.unwrap();
    el.send_keys(value).await.unwrap();
}

/// Logs in through `form#login-form` and waits for the grid.
pub async fn login(b: &Browser, base: &str, username: &str, password: &str) {
    b.goto(&format!("{base}/#/login")).await;
    b.wait_css("form#login-form", Duration::from_secs(20)).await;
    fill(b, "form#login-form", "username", username).await;
    fill(b, "form#login-form", "password", password).await;
    submit(b, "form#login-form").await;
    b.wait_css("#grid", Duration::from_secs(20)).await;
}

/// Submits `form` with its `button[type=submit]`.
pub async fn submit(b: &Browser, form: &str) {
    let css = format!("{form} button[type=submit]");
    b.client
        .find(Locator::Css(&css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// `currentTime` of each grid tile's video (null when the tile or video is missing).
const GRID_TIMES: &str = "const out = {};
    for (const name of arguments[0]) {
        const v = document.querySelector(`#grid .tile[data-camera=\"${name}\"] video`);
        out[name] = v ? v.currentTime : null;
    }
    return out;";

/// Waits until every camera's grid video has played `secs` of media past its first sample.
pub async fn wait_grid_playing(b: &Browser, cameras: &[&str], secs: f64) {
    let mut first: Vec<Option<f64>> = vec![None; cameras.len()];
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let t = b.js(GRID_TIMES, vec![json!(cameras)]).await;
        let mut done = true;
        for (i, cam) in cameras.iter().enumerate() {
            let now = t[cam].as_f64();
            match (first[i], now) {
                (None, Some(x)) => {
                    first[i] = Some(x);
                    done = false;
                }
                (Some(f), Some(x)) if x - f >= secs => {}
                _ => done = false,
            }
        }
        if done {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "grid videos not playing: first {first:?}, now {t}\npage: {}\nconsole: {}",
                b.page_summary().await,
                b.console_log().await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `window.__vigil.stats` (a copy), or null.
pub async fn stats(b: &Browser) -> Value {
    b.js(
        "return (window.__vigil && window.__vigil.stats) \
         ? JSON.parse(JSON.stringify(window.__vigil.stats)) : null;",
        vec![],
    )
    .await
}

#[allow(unused_imports)]
// Only tests/browser.rs uses it; every test binary compiles this module.
pub use vigil_testkit::browser::new_latencies;

/// Clicks the timeline of the open timeline page at time `t_us` and returns the click's x.
pub async fn click_timeline_at(b: &Browser, t_us: i64) -> f64 {
    let r = b
        .js(
            "const el = document.querySelector('#timeline');
             el.scrollIntoView({block: 'center'});
             const r = el.getBoundingClientRect();
             return {left: r.left, top: r.top, width: r.width, height: r.height,
                     start: Number(el.dataset.startUs), end: Number(el.dataset.endUs)};",
            vec![],
        )
        .await;
    let (left, top, width, height) = (
        r["left"].as_f64().unwrap(),
        r["top"].as_f64().unwrap(),
        r["width"].as_f64().unwrap(),
        r["height"].as_f64().unwrap(),
    );
    let (start, end) = (r["start"].as_f64().unwrap(), r["end"].as_f64().unwrap());
    assert!(end > start && width > 10.0, "timeline geometry: {r}");
    let x = left + (t_us as f64 - start) / (end - start) * width;
    assert!(
        x >= left && x <= left + width,
        "t {t_us} outside window {r}"
    );
    b.click_at(x, top + height / 2.0).await;
    x
}

/// Waits until `video#playback` has played `secs` of media past its first sample.
pub async fn wait_playback(b: &Browser, secs: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut first = None;
    loop {
        let v = b
            .js(
                "const v = document.querySelector('video#playback');
                 return v ? {t: v.currentTime, paused: v.paused, ready: v.readyState,
                             err: v.error ? v.error.message || String(v.error.code) : null}
                          : null;",
                vec![],
            )
            .await;
        if let Some(t) = v["t"].as_f64() {
            match first {
                None => first = Some(t),
                Some(f) if t - f >= secs => return t,
                Some(_) => {}
            }
        }
        if Instant::now() >= deadline {
            panic!(
                "video#playback not playing: first {first:?}, now {v}\npage: {}\nconsole: {}",
                b.page_summary().await,
                b.console_log().await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Recorded ranges of `cam` between `start_us` and `end_us` from the API.
pub async fn recorded_ranges(api: &Api, cam: &str, start_us: i64, end_us: i64) -> Vec<(i64, i64)> {
    let path =
        format!("/api/cameras/{cam}/recordings?start_us={start_us}&end_us={end_us}&stream=main");
    let r = api.request("GET", &path, None).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.json()["ranges"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| Some((x["start_us"].as_i64()?, x["end_us"].as_i64()?)))
                .collect()
        })
        .unwrap_or_default()
}
