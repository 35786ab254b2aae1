//! Recordings and export through the real router: a test-pattern stream recorded for a few
//! seconds by the real recorder, the NVR opened on that data directory, then the API asked
//! as a browser's `<video>` element and a download would ask it (HTTP Range, RFC 9110 §14).
//!
//! ffprobe and ffmpeg must be installed (scripts/test.sh installs them).

#![allow(clippy::unwrap_used)]

mod common;
mod openapi_support;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use tower::ServiceExt as _;
use vigil_auth::Role;
use vigil_nvr::{Nvr, NvrConfig};
use vigil_recorder::RecorderConfig;
use vigil_web::AppState;

const PASSWORD: &str = "a long enough test password 1";

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

struct Fixture {
    dir: tempfile::TempDir,
    nvr: Arc<Nvr>,
    app: Router,
    admin: String,
    viewer: String,
    start_us: i64,
    end_us: i64,
}

/// Records camera `front` (320x180, 15 fps, a key frame every 2 s, so every other 1 s
/// fragment has none) for about 4 s, then
/// starts the NVR (no cameras configured) and the router on that data directory, with an
/// admin token and a token of a viewer limited to camera `yard`.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (start_us, end_us) = common::record_test_pattern(dir.path(), 4, 30).await;
    let nvr = Nvr::start(NvrConfig {
        data_dir: dir.path().to_owned(),
        recorder: RecorderConfig::default(),
        cameras: Vec::new(),
        announce: false,
    })
    .await
    .unwrap();
    let state = AppState::new(nvr.clone(), Arc::new(|| serde_json::json!({})), dir.path()).unwrap();
    let users = &state.accounts.users;
    users.add("admin", PASSWORD, Role::Admin).unwrap();
    users
        .add_with_cameras("viewer", PASSWORD, Role::Viewer, Some(vec!["yard".into()]))
        .unwrap();
    let admin = common::token(&state.accounts, "admin", "view");
    let viewer = common::token(&state.accounts, "viewer", "view");
    Fixture {
        dir,
        nvr,
        app: vigil_web::router(state),
        admin,
        viewer,
        start_us,
        end_us,
    }
}

impl Fixture {
    async fn get(&self, token: Option<&str>, uri: &str, range: Option<&str>) -> Response {
        self.request(Method::GET, token, uri, range).await
    }

    async fn request(
        &self,
        method: Method,
        token: Option<&str>,
        uri: &str,
        range: Option<&str>,
    ) -> Response {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(r) = range {
            req = req.header(header::RANGE, r);
        }
        self.app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn export_uri(&self, extra: &str) -> String {
        format!(
            "/api/cameras/front/export.mp4?start_us={}&end_us={}{extra}",
            self.start_us, self.end_us
        )
    }
}

async fn body(resp: Response) -> Vec<u8> {
    axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap()
        .to_vec()
}

fn header_str(resp: &Response, name: header::HeaderName) -> &str {
    resp.headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_and_export_with_http_ranges() {
    let f = fixture().await;

    // The timeline: one recorded range inside what was asked, most of the 4 s.
    let uri = format!(
        "/api/cameras/front/recordings?start_us={}&end_us={}",
        f.start_us - 60_000_000,
        f.end_us + 60_000_000
    );
    let resp = f.get(Some(&f.admin), &uri, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let raw = body(resp).await;
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let ranges = v["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1, "{v}");
    // A real, non-empty timeline is what the served OpenAPI document says it is.
    let doc = f.get(Some(&f.viewer), "/api/openapi.json", None).await;
    let api = openapi_support::ApiDoc::new(serde_json::from_slice(&body(doc).await).unwrap());
    let route = "/api/cameras/{name}/recordings";
    api.check("GET", route, 200, Some("application/json"), &raw)
        .unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (
        ranges[0]["start_us"].as_i64().unwrap(),
        ranges[0]["end_us"].as_i64().unwrap(),
    );
    assert!(a >= f.start_us && b <= f.end_us + 1_000_000, "{v}");
    assert!(b - a > 2_500_000, "only {} ms recorded", (b - a) / 1000);
    assert!(v["gaps"].is_array());

    // Issue 10: a start exactly on a fragment without a key frame begins at the key frame
    // before it (the fragment before), also for a range shorter than a fragment.
    let (key_us, keyless_us) = {
        let db =
            vigil_recorder::db::Db::open_read_only(&f.dir.path().join("index.sqlite3")).unwrap();
        let stream = db.find_stream("front", "main").unwrap().unwrap();
        let frags = db
            .fragments_overlapping(stream, i64::MIN, i64::MAX)
            .unwrap();
        let i = (1..frags.len())
            .find(|&i| !frags[i].samples[0].is_sync && frags[i - 1].samples[0].is_sync)
            .expect("a fragment without a key frame after one with");
        (frags[i - 1].start_wall_us, frags[i].start_wall_us)
    };
    for len in [2_000_000, 500_000] {
        let uri = format!(
            "/api/cameras/front/export.mp4?start_us={keyless_us}&end_us={}",
            keyless_us + len
        );
        let resp = f.get(Some(&f.admin), &uri, None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        let first: i64 = header_str(&resp, header::HeaderName::from_static("x-vigil-start-us"))
            .parse()
            .unwrap();
        assert_eq!(first, key_us, "{uri}");
    }

    // The whole export: a standard MP4 that ffmpeg decodes.
    let resp = f.get(Some(&f.admin), &f.export_uri(""), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_str(&resp, header::ACCEPT_RANGES), "bytes");
    assert_eq!(header_str(&resp, header::CONTENT_TYPE), "video/mp4");
    let export = "/api/cameras/{name}/export.mp4";
    let ct = header_str(&resp, header::CONTENT_TYPE);
    api.check("GET", export, 200, Some(ct), b"")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(resp.headers().get(header::CONTENT_DISPOSITION).is_none());
    // Where the file really starts (its first key frame), for the player's playhead: never
    // after the requested start, and within the recording.
    let first: i64 = header_str(&resp, header::HeaderName::from_static("x-vigil-start-us"))
        .parse()
        .unwrap();
    assert!(
        first <= f.start_us.max(a) && first >= a - 1_000_000,
        "x-vigil-start-us {first} vs requested {} and recorded from {a}",
        f.start_us
    );
    let total: usize = header_str(&resp, header::CONTENT_LENGTH).parse().unwrap();
    let full = body(resp).await;
    assert_eq!(full.len(), total);
    assert_eq!(&full[4..8], b"ftyp");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("export.mp4");
    std::fs::write(&path, &full).unwrap();
    let probe = common::ffprobe_frames(&path);
    assert!(
        probe.contains("codec_name=h264") && probe.contains("width=320"),
        "{probe}"
    );
    let frames: u32 = probe
        .lines()
        .find_map(|l| l.strip_prefix("nb_read_frames="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(frames >= 40, "{probe}");

    // A range in the middle (crossing from the header into the media): exactly those bytes.
    let resp = f
        .get(Some(&f.admin), &f.export_uri(""), Some("bytes=100-20099"))
        .await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    api.check(
        "GET",
        export,
        206,
        Some(header_str(&resp, header::CONTENT_TYPE)),
        b"",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        header_str(&resp, header::CONTENT_RANGE),
        format!("bytes 100-20099/{total}")
    );
    assert_eq!(header_str(&resp, header::CONTENT_LENGTH), "20000");
    assert_eq!(body(resp).await, full[100..20100]);

    // Open-ended and suffix ranges; a range past the end is cut to it.
    let resp = f
        .get(Some(&f.admin), &f.export_uri(""), Some("bytes=-777"))
        .await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body(resp).await, full[total - 777..]);
    let r = format!("bytes={}-{}", total - 10, total + 1000);
    let resp = f.get(Some(&f.admin), &f.export_uri(""), Some(&r)).await;
    assert_eq!(
        header_str(&resp, header::CONTENT_RANGE),
        format!("bytes {}-{}/{total}", total - 10, total - 1)
    );
    assert_eq!(body(resp).await, full[total - 10..]);

    // Unsatisfiable: 416 with the current length.
    let r = format!("bytes={total}-");
    let resp = f.get(Some(&f.admin), &f.export_uri(""), Some(&r)).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        header_str(&resp, header::CONTENT_RANGE),
        format!("bytes */{total}")
    );

    // Several ranges are not supported: the whole file, 200.
    let resp = f
        .get(Some(&f.admin), &f.export_uri(""), Some("bytes=0-1,5-9"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body(resp).await.len(), total);

    // HEAD: the headers of the full answer, no body.
    let resp = f
        .request(Method::HEAD, Some(&f.admin), &f.export_uri(""), None)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_str(&resp, header::CONTENT_LENGTH), total.to_string());
    assert!(body(resp).await.is_empty());

    // download=1: an attachment with a safe name.
    let resp = f
        .get(Some(&f.admin), &f.export_uri("&download=1"), None)
        .await;
    let cd = header_str(&resp, header::CONTENT_DISPOSITION).to_owned();
    assert!(
        cd.starts_with("attachment; filename=\"front-") && cd.ends_with(".mp4\""),
        "{cd}"
    );
    assert_eq!(body(resp).await, full);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playback_refuses_what_it_must() {
    let f = fixture().await;
    // No credentials: 401 on every media route.
    for uri in [
        f.export_uri(""),
        "/api/cameras/front/recordings?start_us=1&end_us=2".into(),
        "/api/cameras/front/live".into(),
        "/api/events".into(),
        "/api/events/1/thumbnail.jpg".into(),
    ] {
        let resp = f.get(None, &uri, None).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{uri}");
    }
    // A viewer of another camera: 403, for recordings, export, live and events alike.
    for uri in [
        f.export_uri(""),
        "/api/cameras/front/recordings?start_us=1&end_us=2".into(),
        "/api/cameras/front/live".into(),
        "/api/events?camera=front".into(),
    ] {
        let resp = f.get(Some(&f.viewer), &uri, None).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{uri}");
    }
    // Nothing recorded in the range: 404. Bad ranges: 400.
    let uri = "/api/cameras/front/export.mp4?start_us=1000000&end_us=2000000";
    assert_eq!(
        f.get(Some(&f.admin), uri, None).await.status(),
        StatusCode::NOT_FOUND
    );
    let uri = "/api/cameras/nosuch/export.mp4?start_us=1000000&end_us=2000000";
    assert_eq!(
        f.get(Some(&f.admin), uri, None).await.status(),
        StatusCode::NOT_FOUND
    );
    for uri in [
        "/api/cameras/front/export.mp4?start_us=2&end_us=1".to_owned(),
        "/api/cameras/front/export.mp4?end_us=1".to_owned(),
        format!(
            "/api/cameras/front/export.mp4?start_us=0&end_us={}",
            25 * 3600 * 1_000_000i64
        ),
        "/api/cameras/front/recordings?start_us=1&end_us=2&stream=../x".to_owned(),
    ] {
        let resp = f.get(Some(&f.admin), &uri, None).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
    }
    // A camera that never recorded has an empty timeline.
    let resp = f
        .get(
            Some(&f.admin),
            "/api/cameras/yard/recordings?start_us=1&end_us=2",
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body(resp).await).unwrap();
    assert_eq!(v["ranges"], serde_json::json!([]));
    // Live view of a camera that does not exist: 404 (before any upgrade).
    let resp = f
        .get(Some(&f.admin), "/api/cameras/nosuch/live", None)
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // Events: none yet; an unknown event's thumbnail is 404.
    let resp = f.get(Some(&f.viewer), "/api/events", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body(resp).await, b"[]");
    let resp = f
        .get(Some(&f.admin), "/api/events/12345/thumbnail.jpg", None)
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_thumbnails_follow_camera_access() {
    let f = fixture().await;
    let store = f.nvr.event_store();
    let t = now_us() - 3_600_000_000;
    let jpeg = |tag: u8| vec![0xff, 0xd8, tag, 0xff, 0xd9];
    let front = store
        .insert_start("front", &["door".into()], t, 0.5, None, Some(jpeg(1)))
        .unwrap();
    store.finish(front.id, t + 5_000_000, 0.6, None).unwrap();
    let yard = store
        .insert_start("yard", &[], t + 60_000_000, 0.3, None, Some(jpeg(2)))
        .unwrap();
    let ids = |v: &serde_json::Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    let list = async |token: &str, query: &str| {
        let resp = f
            .get(Some(token), &format!("/api/events{query}"), None)
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{query}");
        serde_json::from_slice::<serde_json::Value>(&body(resp).await).unwrap()
    };
    // Admin: everything, newest first; filters by camera, zone, time and count.
    assert_eq!(ids(&list(&f.admin, "").await), [yard.id, front.id]);
    assert_eq!(ids(&list(&f.admin, "?camera=front").await), [front.id]);
    assert_eq!(ids(&list(&f.admin, "?zone=door").await), [front.id]);
    assert_eq!(
        ids(&list(&f.admin, "?zone=nosuch").await),
        Vec::<i64>::new()
    );
    let q = format!("?start_us={}&end_us={}", t + 30_000_000, t + 90_000_000);
    assert_eq!(ids(&list(&f.admin, &q).await), [yard.id]);
    assert_eq!(ids(&list(&f.admin, "?limit=1").await), [yard.id]);
    let all = list(&f.admin, "").await;
    assert_eq!(all[1]["camera"], "front");
    assert_eq!(all[1]["zones"], serde_json::json!(["door"]));
    assert_eq!(all[1]["end_us"], t + 5_000_000);
    assert_eq!(all[0]["end_us"], serde_json::Value::Null);
    // The viewer of yard sees only yard, and is refused front by name and by id.
    assert_eq!(ids(&list(&f.viewer, "").await), [yard.id]);
    let resp = f
        .get(Some(&f.viewer), "/api/events?camera=front", None)
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let thumb = |id: i64| format!("/api/events/{id}/thumbnail.jpg");
    let resp = f.get(Some(&f.viewer), &thumb(front.id), None).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = f.get(Some(&f.viewer), &thumb(yard.id), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_str(&resp, header::CONTENT_TYPE), "image/jpeg");
    assert_eq!(body(resp).await, jpeg(2));
    let resp = f.get(Some(&f.admin), &thumb(front.id), None).await;
    assert_eq!(body(resp).await, jpeg(1));
    // Not a number: 400 with the API's JSON error, not a panic or a 500.
    for uri in [
        "/api/events/x/thumbnail.jpg",
        "/api/events?limit=many",
        "/api/cameras/front/export.mp4?start_us=now&end_us=1",
        "/api/cameras/front/live?stream=main&stream=sub",
    ] {
        let resp = f.get(Some(&f.admin), uri, None).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
        let v: serde_json::Value = serde_json::from_slice(&body(resp).await).unwrap();
        assert!(v["error"].is_string(), "{uri}: {v}");
    }
}
