//! Offsite share links end to end against a real S3 server (SeaweedFS): publish an
//! ffmpeg-made MP4, fetch the page and the clip the way a recipient's browser does (with
//! the presigned URLs only, no credentials), decrypt with the link's key, withdraw.

// Helpers outside #[test] functions too: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::ObjectStore as _;
use vigil_auth::secret::Secret;
use vigil_cloud::share::{self, Fragment, OffsiteMeta, OffsitePublisher};
use vigil_cloud::{CloudConfig, Error};
use vigil_testkit::s3::SeaweedS3;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn config(s3: &SeaweedS3) -> CloudConfig {
    let mut cfg = CloudConfig::new(
        &s3.bucket,
        &s3.access_key,
        Secret::new(s3.secret_key.clone()),
        Vec::new(),
    );
    cfg.endpoint = Some(s3.endpoint());
    cfg.region = s3.region.clone();
    cfg.path_style = true;
    cfg.prefix = "house".into();
    cfg
}

/// The bucket with full credentials, to look at what the provider holds.
fn bucket(s3: &SeaweedS3) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(s3.endpoint())
        .with_allow_http(true)
        .with_bucket_name(&s3.bucket)
        .with_access_key_id(&s3.access_key)
        .with_secret_access_key(&s3.secret_key)
        .with_region(&s3.region)
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap()
}

fn make_mp4(dir: &Path) -> Vec<u8> {
    let out = dir.join("clip.mp4");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc=size=320x240:rate=25")
        .args(["-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .args(["-movflags", "+faststart", "-y"])
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg failed");
    std::fs::read(out).unwrap()
}

fn ffprobe_ok(path: &Path) -> bool {
    Command::new("ffprobe")
        .args(["-v", "error", "-show_format"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run ffprobe")
        .success()
}

/// `data` as a stream of `piece`-byte reads, as a file or an export would come.
fn stream(
    data: &[u8],
    piece: usize,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + Unpin + use<> {
    let pieces: Vec<std::io::Result<Bytes>> = data
        .chunks(piece)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(pieces)
}

fn meta() -> OffsiteMeta {
    OffsiteMeta {
        camera: "backdoorcam".into(),
        start_us: 1_796_000_000_000_000,
        end_us: 1_796_000_003_000_000,
        label: "Parcel taken".into(),
        allow_download: true,
        file_name: "backdoorcam-2026-12-01.mp4".into(),
    }
}

async fn names(store: &object_store::aws::AmazonS3) -> Vec<String> {
    let mut n: Vec<String> = store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsite_share_end_to_end() {
    let s3 = tokio::task::spawn_blocking(|| SeaweedS3::start("vigil"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mp4 = make_mp4(dir.path());
    assert!(ffprobe_ok(&dir.path().join("clip.mp4")));
    let publisher = OffsitePublisher::new(&config(&s3)).unwrap();
    let http = reqwest::Client::new();
    let store = bucket(&s3);

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let shared = publisher
        .publish(stream(&mp4, 65_536), &meta(), DAY)
        .await
        .unwrap();
    assert_eq!(shared.clip_bytes, mp4.len() as u64);
    assert_eq!(shared.id.len(), 32);
    assert!(shared
        .id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    let exp = before + DAY.as_micros() as i64;
    assert!((exp..exp + 60_000_000).contains(&shared.expires_us));

    // Opaque names: the id only, never the camera or a time.
    assert_eq!(
        names(&store).await,
        [
            format!("house/s/{}/c", shared.id),
            format!("house/s/{}/p", shared.id)
        ]
    );

    let (page_url, _) = shared.url.split_once('#').unwrap();
    let frag = Fragment::parse(&shared.url).unwrap();
    assert_eq!(frag.meta, meta());
    assert!(page_url.contains("X-Amz-Signature="), "{page_url}");
    assert!(page_url.contains("X-Amz-Expires=86400"), "{page_url}");

    // The page: HTML, the CSP, nothing of this share in it.
    let r = http.get(page_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/html; charset=utf-8"
    );
    let page = r.text().await.unwrap();
    assert_eq!(page, share::page());
    assert!(page.contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'sha256-"));
    let k = shared
        .url
        .split("k=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    for secret in ["backdoorcam", "Parcel", k, &shared.id] {
        assert!(!page.contains(secret), "the page holds {secret:?}");
    }

    // The clip: ciphertext (ffprobe refuses it), and exactly the MP4 once decrypted.
    let r = http.get(&frag.clip_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let sealed = r.bytes().await.unwrap();
    assert_eq!(sealed.len() as u64, share::sealed_len(mp4.len() as u64));
    assert_eq!(&sealed[..4], b"VGS1");
    assert!(!sealed
        .windows(4)
        .any(|w| w == b"ftyp" || w == b"moov" || w == b"avc1"));
    let sealed_path = dir.path().join("sealed.bin");
    std::fs::write(&sealed_path, &sealed).unwrap();
    assert!(!ffprobe_ok(&sealed_path), "ffprobe reads the stored clip");
    assert!(share::open(&frag.key, &sealed).unwrap() == mp4);

    // A clip over one multipart part (8 MiB), streamed in odd pieces: three parts.
    let big: Vec<u8> = (0..(17u32 << 20) + 12_345)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big_share = publisher
        .publish(stream(&big, 100_003), &meta(), Duration::from_secs(600))
        .await
        .unwrap();
    let f = Fragment::parse(&big_share.url).unwrap();
    let got = http
        .get(&f.clip_url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(share::open(&f.key, &got).unwrap() == big);
    publisher.delete(&big_share.id).await.unwrap();

    // Withdrawn: both links answer 403 or 404; deleting again is fine.
    publisher.delete(&shared.id).await.unwrap();
    for url in [page_url, frag.clip_url.as_str()] {
        let s = http.get(url).send().await.unwrap().status().as_u16();
        assert!(s == 403 || s == 404, "{url}: {s}");
    }
    publisher.delete(&shared.id).await.unwrap();
    assert!(names(&store).await.is_empty());
    assert!(matches!(
        publisher.delete("../../d/0123").await,
        Err(Error::Config(_))
    ));
    assert!(matches!(
        publisher.delete(&shared.id.to_uppercase()).await,
        Err(Error::Config(_))
    ));

    // Limits: over 7 days, or none, is refused before anything is uploaded.
    for bad in [8 * DAY, Duration::ZERO] {
        let e = publisher
            .publish(stream(&mp4, 65_536), &meta(), bad)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e}");
    }
    assert!(publisher
        .publish(stream(&mp4, 65_536), &meta(), 7 * DAY)
        .await
        .is_ok());

    // A read error mid-clip fails the publish and leaves no object.
    let before = names(&store).await;
    let failing = futures::stream::iter(vec![
        Ok(Bytes::from(vec![1u8; 9 << 20])),
        Err(std::io::Error::other("disk gone")),
    ]);
    let e = publisher.publish(failing, &meta(), DAY).await.unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert_eq!(names(&store).await, before);
}
