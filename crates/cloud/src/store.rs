//! The S3 client: `object_store`'s `AmazonS3`, configured from [`CloudConfig`].
//!
//! Why `object_store` (Apache Arrow's) over `aws-sdk-s3`: it is made for exactly this
//! (put, ranged get, list, delete, conditional put) across S3-compatible providers,
//! retries with back-off built in, far lighter to build (CI builds everything cold on two
//! cores), and it speaks `If-None-Match: *` for create-only puts (`PutMode::Create`).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::{Certificate, ClientOptions, ObjectStore, RetryConfig};

use crate::{CloudConfig, Error};

/// The client of the configured bucket.
pub fn open(cfg: &CloudConfig) -> Result<Arc<dyn ObjectStore>, Error> {
    Ok(Arc::new(open_s3(cfg)?))
}

/// The client of the configured bucket as the concrete S3 store (it also presigns URLs,
/// for offsite shares).
pub fn open_s3(cfg: &CloudConfig) -> Result<AmazonS3, Error> {
    let https = cfg
        .endpoint
        .as_deref()
        .is_none_or(|e| e.starts_with("https://"));
    let mut client = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(120))
        .with_allow_http(!https);
    if let Some(f) = &cfg.ca_file {
        let pem = std::fs::read(f).map_err(|e| Error::io(format!("reading {}", f.display()), e))?;
        let certs = Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::Config(format!("{}: {e}", f.display())))?;
        for c in certs {
            client = client.with_root_certificate(c);
        }
    }
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(&cfg.bucket)
        .with_region(&cfg.region)
        .with_access_key_id(&cfg.access_key_id)
        .with_secret_access_key(cfg.secret_access_key.expose())
        .with_virtual_hosted_style_request(!cfg.path_style)
        // Create-only puts send `If-None-Match: *` (S3 since 2024, SeaweedFS, MinIO, R2).
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_client_options(client)
        // Over TLS the body is not hashed into the signature (UNSIGNED-PAYLOAD): TLS
        // protects it in transit and age authenticates every chunk, and hashing each part
        // was a third of the uploader's CPU (docs/benchmarks.md). Over plain HTTP the
        // signature covers the body, so a box on the path cannot swap it.
        .with_unsigned_payload(https)
        // The uploader has its own back-off over hours; the client retries briefly.
        .with_retry(RetryConfig {
            backoff: Default::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(30),
        });
    if let Some(e) = &cfg.endpoint {
        b = b.with_endpoint(e);
    }
    Ok(b.build()?)
}
