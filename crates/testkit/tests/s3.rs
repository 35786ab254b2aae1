//! The SeaweedFS harness (`vigil_testkit::s3`) driven by `object_store`, the client Vigil's
//! cloud upload uses: basic object operations, conditional create (`If-None-Match: *`),
//! enforced credentials, and an outage (stop, restart) that loses nothing; and the HTTPS
//! mode (`SeaweedS3::start_tls`), trusted through its CA's PEM.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::{
    Certificate, ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig,
};
use vigil_testkit::s3::SeaweedS3;

/// A client for `s3` with this secret key; no retries, so that failures show at once.
fn store(s3: &SeaweedS3, secret_key: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(s3.endpoint())
            .with_allow_http(true)
            .with_bucket_name(&s3.bucket)
            .with_access_key_id(&s3.access_key)
            .with_secret_access_key(secret_key)
            .with_region(&s3.region)
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(RetryConfig {
                max_retries: 0,
                retry_timeout: Duration::from_secs(5),
                ..RetryConfig::default()
            })
            .build()
            .unwrap(),
    )
}

async fn get(store: &dyn ObjectStore, path: &Path) -> Vec<u8> {
    store
        .get(path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seaweedfs_s3_with_object_store() {
    let t0 = Instant::now();
    let mut s3 = tokio::task::spawn_blocking(|| SeaweedS3::start("vigil-test"))
        .await
        .unwrap();
    eprintln!("SeaweedFS ready in {:?} at {}", t0.elapsed(), s3.endpoint());
    let store = store(&s3, &s3.secret_key.clone());

    // (a) put, get, get_range, list, delete.
    let a = Path::from("clips/cam1/a.mp4");
    let b = Path::from("clips/cam1/b.mp4");
    store
        .put(&a, PutPayload::from_static(b"0123456789"))
        .await
        .unwrap();
    store
        .put(&b, PutPayload::from_static(b"bbb"))
        .await
        .unwrap();
    assert_eq!(get(&*store, &a).await, b"0123456789");
    assert_eq!(&store.get_range(&a, 2..5).await.unwrap()[..], b"234");
    let mut listed: Vec<(String, u64)> = store
        .list(Some(&Path::from("clips/cam1")))
        .map_ok(|m| (m.location.to_string(), m.size))
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("clips/cam1/a.mp4".to_owned(), 10),
            ("clips/cam1/b.mp4".to_owned(), 3)
        ]
    );
    store.delete(&b).await.unwrap();
    let err = store.get(&b).await.unwrap_err();
    assert!(
        matches!(err, object_store::Error::NotFound { .. }),
        "get after delete: {err}"
    );

    // (b) Create on an existing key: AlreadyExists, the object unchanged.
    let create = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    let err = store
        .put_opts(&a, PutPayload::from_static(b"overwritten"), create.clone())
        .await
        .unwrap_err();
    eprintln!("Create on an existing key: {err}");
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "Create on an existing key must fail with AlreadyExists, got: {err:?}"
    );
    assert_eq!(get(&*store, &a).await, b"0123456789");
    // ... and succeeds on a new one.
    let c = Path::from("clips/cam1/c.mp4");
    store
        .put_opts(&c, PutPayload::from_static(b"ccc"), create)
        .await
        .unwrap();
    assert_eq!(get(&*store, &c).await, b"ccc");

    // (c) A wrong secret key is refused (403).
    let wrong = store_with_wrong_secret(&s3);
    let err = wrong.get(&a).await.unwrap_err();
    eprintln!("wrong secret key, get: {err}");
    assert!(
        matches!(err, object_store::Error::PermissionDenied { .. })
            && err.to_string().contains("403 Forbidden"),
        "wrong secret, get: {err:?}"
    );
    let err = wrong
        .put(&Path::from("intruder"), PutPayload::from_static(b"x"))
        .await
        .unwrap_err();
    eprintln!("wrong secret key, put: {err}");
    assert!(
        matches!(err, object_store::Error::PermissionDenied { .. })
            && err.to_string().contains("403 Forbidden"),
        "wrong secret, put: {err:?}"
    );
    assert!(matches!(
        store.head(&Path::from("intruder")).await,
        Err(object_store::Error::NotFound { .. })
    ));

    // (d) An outage: requests fail while it is down; after the restart the data is there.
    s3 = tokio::task::spawn_blocking(move || {
        s3.stop();
        s3
    })
    .await
    .unwrap();
    let err = store.get(&a).await.unwrap_err();
    eprintln!("while stopped: {err}");
    let t1 = Instant::now();
    s3 = tokio::task::spawn_blocking(move || {
        s3.restart();
        s3
    })
    .await
    .unwrap();
    eprintln!("restarted in {:?}", t1.elapsed());
    assert_eq!(get(&*store, &a).await, b"0123456789", "{}", s3.log_tail());
    assert_eq!(get(&*store, &c).await, b"ccc");
    store
        .put(&b, PutPayload::from_static(b"after"))
        .await
        .unwrap();
    assert_eq!(get(&*store, &b).await, b"after");
    eprintln!("whole test: {:?}", t0.elapsed());
}

fn store_with_wrong_secret(s3: &SeaweedS3) -> Arc<dyn ObjectStore> {
    store(s3, "not-the-secret-key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seaweedfs_s3_over_https() {
    let t0 = Instant::now();
    let s3 = tokio::task::spawn_blocking(|| SeaweedS3::start_tls("vigil-tls"))
        .await
        .unwrap();
    eprintln!(
        "SeaweedFS (TLS) ready in {:?} at {}",
        t0.elapsed(),
        s3.endpoint()
    );
    assert_eq!(s3.endpoint(), format!("https://127.0.0.1:{}", s3.port()));
    let ca = std::fs::read(s3.ca_pem_path().unwrap()).unwrap();
    let build = |client: ClientOptions| {
        AmazonS3Builder::new()
            .with_endpoint(s3.endpoint())
            .with_client_options(client)
            .with_bucket_name(&s3.bucket)
            .with_access_key_id(&s3.access_key)
            .with_secret_access_key(&s3.secret_key)
            .with_region(&s3.region)
            .with_virtual_hosted_style_request(false)
            .with_retry(RetryConfig {
                max_retries: 0,
                retry_timeout: Duration::from_secs(5),
                ..RetryConfig::default()
            })
            .build()
            .unwrap()
    };
    let store =
        build(ClientOptions::new().with_root_certificate(Certificate::from_pem(&ca).unwrap()));
    let a = Path::from("clips/cam1/a.mp4");
    store
        .put(&a, PutPayload::from_static(b"over tls"))
        .await
        .unwrap();
    assert_eq!(get(&store, &a).await, b"over tls");

    // Without the CA the certificate is refused; plain HTTP on the port gets no S3 answer.
    let untrusted = build(ClientOptions::new());
    let err = untrusted.get(&a).await.unwrap_err();
    eprintln!("without the CA: {err}");
    let plain = AmazonS3Builder::new()
        .with_endpoint(s3.endpoint().replace("https://", "http://"))
        .with_allow_http(true)
        .with_bucket_name(&s3.bucket)
        .with_access_key_id(&s3.access_key)
        .with_secret_access_key(&s3.secret_key)
        .with_region(&s3.region)
        .with_virtual_hosted_style_request(false)
        .with_retry(RetryConfig {
            max_retries: 0,
            retry_timeout: Duration::from_secs(5),
            ..RetryConfig::default()
        })
        .build()
        .unwrap();
    let err = plain.get(&a).await.unwrap_err();
    eprintln!("plain http to the https port: {err}");
    assert!(
        err.to_string().contains("HTTPS server"),
        "plain http to the https port: {err:?}"
    );
}
