//! The upload task: local-first, so recording never waits on the cloud.
//!
//! One task per recorder loops: (1) cut new fragments into parts (rows in the index, see
//! [`crate::cut`]); (2) upload the due parts, oldest footage first, each read back from its
//! file, encrypted, and put create-only under the name chosen when it was cut; (3) write a
//! new version of each manifest whose hour gained a part; (4) every hour, delete objects
//! past the cloud retention. A failure stops the pass and backs the network steps off (1 s
//! doubling to 60 s, jittered), so a recorder offline for hours resumes within a minute of
//! the network's return, where its queue left off: the queue is in the index and survives
//! `kill -9`. Step (1) is local and keeps running every pass through an outage.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use age::x25519::Recipient;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use rand::Rng;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use vigil_recorder::archive::Archive;
use vigil_recorder::db::FileState;
use vigil_recorder::db_cloud::{CloudTotals, NewPart, PendingPart};

use crate::cut::{self, Frag, Limits};
use crate::layout::{self, KeyObject, Layout, Manifest, PartEntry, FORMAT};
use crate::{keys, store, CloudConfig, Error};

/// Longest part, in footage: bounds how far back restore looks for a part overlapping a
/// range (one hour of manifests before the range's start covers it).
pub const MAX_PART_US: i64 = 10 * 60 * 1_000_000;

/// How often the cutter looks for new fragments.
const PASS_INTERVAL: Duration = Duration::from_secs(2);
/// Longest back-off after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often cloud retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// What the System page shows of the cloud tier.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CloudStatus {
    /// Endpoint (or "AWS S3").
    pub endpoint: String,
    /// Bucket.
    pub bucket: String,
    /// Prefix.
    pub prefix: String,
    /// Number of recipients footage is encrypted to.
    pub recipients: usize,
    /// Streams going up (`camera/stream`).
    pub streams: Vec<String>,
    /// Waiting parts.
    pub pending_parts: u64,
    /// Waiting plaintext bytes.
    pub pending_bytes: u64,
    /// Wall clock (µs) of the oldest footage waiting.
    pub oldest_pending_us: Option<i64>,
    /// Uploaded parts the recorder tracks.
    pub uploaded_parts: u64,
    /// Their bytes in the bucket.
    pub uploaded_bytes: u64,
    /// Last successful upload (µs).
    pub last_upload_us: Option<i64>,
    /// The latest error, if the latest attempt failed.
    pub last_error: Option<String>,
    /// Files deleted locally (disk full, byte limit) before their footage was uploaded.
    pub lost_files: u64,
    /// Their bytes.
    pub lost_bytes: u64,
    /// Upload rate limit, bytes per second.
    pub max_upload_rate: Option<u64>,
    /// Cloud retention, seconds.
    pub retention_s: Option<u64>,
}

/// The running upload task.
pub struct Uploader {
    status: Arc<Mutex<CloudStatus>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

struct Ctx {
    archive: Arc<Archive>,
    status: Arc<Mutex<CloudStatus>>,
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    recipients: Arc<Vec<Recipient>>,
    cfg: CloudConfig,
    naming_key: Vec<u8>,
    key_object: String,
}

impl Uploader {
    /// Starts uploading the selected streams of `archive` (those of `streams`, camera and
    /// stream names, and any selected stream that starts recording later). Only footage
    /// recorded from now on goes up; a stream uploaded before resumes where it stopped.
    pub fn start(
        archive: Arc<Archive>,
        cfg: CloudConfig,
        streams: &[(String, String)],
    ) -> Result<Uploader, Error> {
        cfg.validate()?;
        let recipients = Arc::new(keys::parse_recipients(&cfg.recipients)?);
        let store = store::open(&cfg)?;
        let (naming_key, key_object) = {
            let mut db = archive.index();
            for (c, s) in streams.iter().filter(|(c, s)| cfg.select.includes(c, s)) {
                db.stream_id(c, s)?;
            }
            sync_streams(&mut db, &cfg, archive.clock.wall_us())?;
            let nk = db.cloud_state_init("naming_key", &layout::new_naming_key())?;
            let ko = db.cloud_state_init("key_object", layout::new_key_object_name().as_bytes())?;
            (nk, String::from_utf8_lossy(&ko).into_owned())
        };
        let base = CloudStatus {
            endpoint: cfg.endpoint.clone().unwrap_or_else(|| "AWS S3".into()),
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
            recipients: cfg.recipients.len(),
            streams: streams
                .iter()
                .filter(|(c, s)| cfg.select.includes(c, s))
                .map(|(c, s)| format!("{c}/{s}"))
                .collect(),
            max_upload_rate: cfg.max_upload_rate,
            retention_s: cfg.retention.map(|d| d.as_secs()),
            ..CloudStatus::default()
        };
        info!(
            bucket = %cfg.bucket,
            endpoint = %base.endpoint,
            streams = ?base.streams,
            "cloud tier: uploading, encrypted to {} recipient(s)",
            recipients.len()
        );
        let status = Arc::new(Mutex::new(base));
        let ctx = Arc::new(Ctx {
            archive,
            status: status.clone(),
            store,
            layout: Layout::new(&cfg.prefix),
            recipients,
            cfg,
            naming_key,
            key_object,
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(ctx, stop_rx));
        Ok(Uploader {
            status,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// The System page's figures, as of the last pass (at most a few seconds old).
    pub fn status(&self) -> CloudStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops: the uploads in flight get 5 s to finish, then are dropped (whatever is not
    /// done stays queued and goes up after the next start).
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut t) = task {
            if tokio::time::timeout(Duration::from_secs(5), &mut t)
                .await
                .is_err()
            {
                t.abort();
                let _ = t.await;
            }
        }
    }
}

/// Back-off after `failures` failed passes in a row: 1 s doubling to [`MAX_BACKOFF`],
/// ±25 % jitter so that many recorders behind one outage do not return in step.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1)
        .saturating_mul(1u32 << failures.min(6))
        .min(MAX_BACKOFF);
    base.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
}

/// Makes the selected streams of the index the uploaded ones (new ones from `now_us`).
fn sync_streams(
    db: &mut vigil_recorder::db::Db,
    cfg: &CloudConfig,
    now_us: i64,
) -> Result<(), Error> {
    let ids: Vec<(i64, i64)> = db
        .all_streams()?
        .into_iter()
        .filter(|(_, c, s)| cfg.select.includes(c, s))
        .map(|(id, _, _)| (id, now_us))
        .collect();
    // Most passes change nothing: no write transaction (and fsync) then.
    let current: Vec<i64> = db.cloud_streams()?.iter().map(|s| s.stream_id).collect();
    if current != ids.iter().map(|s| s.0).collect::<Vec<_>>() {
        db.cloud_set_streams(&ids)?;
    }
    Ok(())
}

/// Refreshes the System page's figures from the index.
async fn refresh_status(ctx: &Ctx) -> Result<(), Error> {
    let archive = ctx.archive.clone();
    let t: CloudTotals = tokio::task::spawn_blocking(move || archive.index().cloud_totals())
        .await
        .map_err(|e| Error::Corrupt(format!("status task: {e}")))??;
    let mut s = ctx.status.lock().unwrap_or_else(|e| e.into_inner());
    s.pending_parts = t.pending_parts;
    s.pending_bytes = t.pending_bytes;
    s.oldest_pending_us = t.oldest_pending_us;
    s.uploaded_parts = t.uploaded_parts;
    s.uploaded_bytes = t.uploaded_bytes;
    s.last_upload_us = t.last_upload_us;
    s.last_error = t.last_error;
    s.lost_files = t.lost_files;
    s.lost_bytes = t.lost_bytes;
    Ok(())
}

async fn run(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    let mut key_uploaded = false;
    let mut last_retention: Option<tokio::time::Instant> = None;
    let mut limiter = RateLimiter::new(ctx.cfg.max_upload_rate);
    // When the network may next be tried; `None` while it works.
    let mut next_attempt: Option<tokio::time::Instant> = None;
    loop {
        // Local first: cutting runs every pass whatever the network does, so that
        // through an outage the queue (and the System page's backlog) stays current and
        // a file deleted for space before its upload is counted as lost, not forgotten.
        let result = match cut_pass(&ctx).await {
            Err(e) => Some(Err(e)),
            Ok(()) if next_attempt.is_some_and(|t| tokio::time::Instant::now() < t) => None,
            Ok(()) => Some(
                async {
                    if !key_uploaded {
                        put_key_object(&ctx).await?;
                        key_uploaded = true;
                    }
                    upload_pass(&ctx, &mut limiter, &stop).await?;
                    manifest_pass(&ctx).await?;
                    if ctx.cfg.retention.is_some()
                        && last_retention.is_none_or(|t| t.elapsed() >= RETENTION_INTERVAL)
                    {
                        retention_pass(&ctx).await?;
                        last_retention = Some(tokio::time::Instant::now());
                    }
                    Ok::<_, Error>(())
                }
                .await,
            ),
        };
        match result {
            None => {}
            Some(Ok(())) => {
                if failures > 0 {
                    info!("cloud tier: uploads resumed after {failures} failed attempt(s)");
                }
                failures = 0;
                next_attempt = None;
            }
            Some(Err(e)) => {
                failures += 1;
                let msg = e.to_string();
                if failures == 1 || failures.is_multiple_of(30) {
                    warn!("cloud tier: {msg} (attempt {failures}; retrying with back-off)");
                }
                let archive = ctx.archive.clone();
                let _ =
                    tokio::task::spawn_blocking(move || archive.index().cloud_set_last_error(&msg))
                        .await;
                next_attempt = Some(tokio::time::Instant::now() + backoff(failures));
            }
        }
        if let Err(e) = refresh_status(&ctx).await {
            warn!("cloud tier: reading the queue's figures: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(PASS_INTERVAL) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Puts this index's naming key, encrypted (create-only: it is written once).
async fn put_key_object(ctx: &Ctx) -> Result<(), Error> {
    let obj = KeyObject {
        format: FORMAT,
        naming_key: hex::encode(&ctx.naming_key),
        created_us: ctx.archive.clock.wall_us(),
    };
    let plain = serde_json::to_vec(&obj).map_err(|e| Error::Corrupt(e.to_string()))?;
    let ct = keys::encrypt(&ctx.recipients, &plain)?;
    put_create(ctx, &ctx.key_object, ct).await.map(|_| ())
}

/// Create-only put; an object already there under the name counts as done (a previous
/// attempt that died before its index commit): returns the object's length.
async fn put_create(ctx: &Ctx, relative: &str, body: Vec<u8>) -> Result<u64, Error> {
    let path = ctx.layout.full(relative);
    let len = body.len() as u64;
    let opts = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match ctx
        .store
        .put_opts(&path, PutPayload::from(Bytes::from(body)), opts)
        .await
    {
        Ok(_) => Ok(len),
        Err(object_store::Error::AlreadyExists { .. }) => {
            let meta = ctx.store.head(&path).await?;
            info!("cloud tier: {relative} was already uploaded (an earlier attempt)");
            Ok(meta.size)
        }
        Err(e) => Err(e.into()),
    }
}

/// Cuts every uploaded stream's new fragments into parts.
async fn cut_pass(ctx: &Ctx) -> Result<(), Error> {
    let archive = ctx.archive.clone();
    let limits = Limits {
        part_bytes: ctx.cfg.part_bytes,
        max_part_us: MAX_PART_US,
        delay_us: i64::try_from(ctx.cfg.upload_delay.as_micros()).unwrap_or(i64::MAX),
    };
    let cfg = ctx.cfg.clone();
    tokio::task::spawn_blocking(move || -> Result<(), Error> {
        let now = archive.clock.wall_us();
        // Cameras added in the web app start recording later: they join here.
        sync_streams(&mut archive.index(), &cfg, now)?;
        let streams = archive.index().cloud_streams()?;
        for s in streams {
            let files = archive.index().cloud_uncut_files(&s)?;
            let mut parts = Vec::new();
            let mut cut_file_id = s.cut_file_id;
            let mut contiguous = true;
            for uf in files {
                let new: Vec<_> = archive
                    .index()
                    .fragments_of_file_after(uf.file.id, uf.covered_seq)?
                    .into_iter()
                    .filter(|f| f.end_wall_us > s.since_us)
                    .collect();
                let closed = uf.file.state == FileState::Closed;
                let info: Vec<Frag> = new
                    .iter()
                    .map(|f| Frag {
                        byte_len: f.byte_len,
                        start_wall_us: f.start_wall_us,
                        end_wall_us: f.end_wall_us,
                    })
                    .collect();
                let ranges = cut::cut(&info, closed, now, limits);
                let mut done = 0;
                for r in ranges {
                    done = r.end;
                    let Some(run) = new.get(r) else { continue };
                    let object = layout::new_part_name();
                    let Some(entry) = PartEntry::new(object.clone(), &uf.file, run) else {
                        continue;
                    };
                    let (Some(first), Some(last)) = (run.first(), run.last()) else {
                        continue;
                    };
                    parts.push(NewPart {
                        stream_id: s.stream_id,
                        file_id: uf.file.id,
                        first_seq: first.seq,
                        last_seq: last.seq,
                        start_wall_us: first.start_wall_us,
                        end_wall_us: last.end_wall_us,
                        bytes: entry.plaintext_len(),
                        object,
                        entry: serde_json::to_vec(&entry)
                            .map_err(|e| Error::Corrupt(e.to_string()))?,
                    });
                }
                // The mark moves past files cut to their end, up to the first that is not.
                if contiguous && closed && done == new.len() {
                    cut_file_id = uf.file.id;
                } else {
                    contiguous = false;
                }
            }
            if !parts.is_empty() || cut_file_id != s.cut_file_id {
                archive
                    .index()
                    .cloud_insert_parts(s.stream_id, &parts, cut_file_id)?;
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::Corrupt(format!("cut task: {e}")))?
}

/// Uploads the due parts; stops at the first failure (the caller backs off).
async fn upload_pass(
    ctx: &Ctx,
    limiter: &mut RateLimiter,
    stop: &watch::Receiver<bool>,
) -> Result<(), Error> {
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let archive = ctx.archive.clone();
        let batch = 4 * ctx.cfg.concurrency as u32;
        let due = tokio::task::spawn_blocking(move || {
            archive
                .index()
                .cloud_due_parts(archive.clock.wall_us(), batch)
        })
        .await
        .map_err(|e| Error::Corrupt(format!("queue task: {e}")))??;
        if due.is_empty() {
            return Ok(());
        }
        let concurrency = if limiter.rate.is_some() {
            1
        } else {
            ctx.cfg.concurrency.max(1)
        };
        let mut results = futures::stream::iter(due.into_iter().map(|p| async move {
            let started = tokio::time::Instant::now();
            let r = upload_part(ctx, &p).await;
            (p, r, started)
        }))
        .buffer_unordered(concurrency);
        let mut first_err = None;
        while let Some((p, r, started)) = results.next().await {
            let archive = ctx.archive.clone();
            match r {
                Ok(Uploaded::Done(object_bytes)) => {
                    limiter.spent(object_bytes, started).await;
                    tokio::task::spawn_blocking(move || {
                        let now = archive.clock.wall_us();
                        archive.index().cloud_mark_uploaded(p.id, object_bytes, now)
                    })
                    .await
                    .map_err(|e| Error::Corrupt(format!("queue task: {e}")))??;
                }
                Ok(Uploaded::Lost(why)) => {
                    warn!(
                        "cloud tier: footage of {} at {} cannot be uploaded: {why}",
                        p.object, p.start_wall_us
                    );
                    tokio::task::spawn_blocking(move || archive.index().cloud_mark_lost(p.id))
                        .await
                        .map_err(|e| Error::Corrupt(format!("queue task: {e}")))??;
                }
                Err(e) => {
                    let msg = e.to_string();
                    let next = ctx.archive.clock.wall_us()
                        + i64::try_from(backoff(p.attempts.saturating_add(1)).as_micros())
                            .unwrap_or(i64::MAX);
                    tokio::task::spawn_blocking(move || {
                        archive.index().cloud_mark_failed(p.id, &msg, next)
                    })
                    .await
                    .map_err(|e| Error::Corrupt(format!("queue task: {e}")))??;
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
    }
}

enum Uploaded {
    /// In the bucket, this many bytes.
    Done(u64),
    /// Its file is gone (deleted for space before upload).
    Lost(String),
}

/// Reads a part back from its file, encrypts it and puts it.
async fn upload_part(ctx: &Ctx, p: &PendingPart) -> Result<Uploaded, Error> {
    let entry: PartEntry = serde_json::from_slice(&p.entry)
        .map_err(|e| Error::Corrupt(format!("queued part {}: {e}", p.object)))?;
    let archive = ctx.archive.clone();
    let recipients = ctx.recipients.clone();
    let sealed = tokio::task::spawn_blocking(move || -> Result<Result<Vec<u8>, String>, Error> {
        let path = std::path::Path::new(&entry.file.path);
        // The file may have gone since the part was picked (disk full).
        let read = archive
            .storage
            .read_range(path, 0, entry.file.init_len)
            .and_then(|mut plain| {
                let frags = archive.storage.read_range(
                    path,
                    entry.byte_start,
                    entry.byte_end - entry.byte_start,
                )?;
                plain.extend_from_slice(&frags);
                Ok(plain)
            });
        let plain = match read {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err(format!("{} was deleted", entry.file.path)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(Err(format!(
                    "{} is shorter than its index",
                    entry.file.path
                )))
            }
            Err(e) => return Err(Error::io(format!("reading {}", entry.file.path), e)),
        };
        // The index said a fragment starts here: a file that disagrees is not uploaded.
        let moof = entry.file.init_len as usize + 4..entry.file.init_len as usize + 8;
        if plain.get(moof) != Some(b"moof".as_slice()) {
            return Ok(Err(format!(
                "{}: no moof at offset {}",
                entry.file.path, entry.byte_start
            )));
        }
        Ok(Ok(keys::encrypt(&recipients, &plain)?))
    })
    .await
    .map_err(|e| Error::Corrupt(format!("encrypt task: {e}")))??;
    match sealed {
        Err(why) => Ok(Uploaded::Lost(why)),
        Ok(body) => Ok(Uploaded::Done(put_create(ctx, &p.object, body).await?)),
    }
}

/// Writes a new version of each manifest whose hour gained parts.
async fn manifest_pass(ctx: &Ctx) -> Result<(), Error> {
    let archive = ctx.archive.clone();
    let dirty = tokio::task::spawn_blocking(move || -> Result<_, Error> {
        let db = archive.index();
        let mut out = Vec::new();
        for (stream_id, hour, version) in db.cloud_dirty_manifests()? {
            let (camera, stream) = db.stream_names(stream_id)?;
            let entries = db.cloud_hour_entries(stream_id, hour)?;
            let mut parts = Vec::with_capacity(entries.len());
            for e in entries {
                let mut p: PartEntry = serde_json::from_slice(&e.entry)
                    .map_err(|err| Error::Corrupt(format!("queued manifest entry: {err}")))?;
                p.object_bytes = e.object_bytes;
                parts.push(p);
            }
            out.push((
                stream_id,
                version,
                Manifest {
                    format: FORMAT,
                    camera,
                    stream,
                    hour_us: hour,
                    parts,
                },
            ));
        }
        Ok(out)
    })
    .await
    .map_err(|e| Error::Corrupt(format!("manifest task: {e}")))??;
    for (stream_id, version, m) in dirty {
        let dir = layout::manifest_dir(&ctx.naming_key, &m.camera, &m.stream, m.hour_us);
        let plain = serde_json::to_vec(&m).map_err(|e| Error::Corrupt(e.to_string()))?;
        let recipients = ctx.recipients.clone();
        let body = tokio::task::spawn_blocking(move || keys::encrypt(&recipients, &plain))
            .await
            .map_err(|e| Error::Corrupt(format!("encrypt task: {e}")))??;
        // A version left by a crash before its index commit is skipped, not overwritten.
        let mut v = version + 1;
        loop {
            let path = ctx.layout.full(&layout::manifest_name(&dir, v));
            let opts = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match ctx
                .store
                .put_opts(&path, PutPayload::from(Bytes::from(body.clone())), opts)
                .await
            {
                Ok(_) => break,
                Err(object_store::Error::AlreadyExists { .. }) if v < version + 8 => v += 1,
                Err(e) => return Err(e.into()),
            }
        }
        let archive = ctx.archive.clone();
        let hour = m.hour_us;
        tokio::task::spawn_blocking(move || {
            archive
                .index()
                .cloud_manifest_written(stream_id, hour, v, false)
        })
        .await
        .map_err(|e| Error::Corrupt(format!("manifest task: {e}")))??;
        // The versions before are superseded (the new one lists all their parts).
        for old in version.max(1)..v {
            let path = ctx.layout.full(&layout::manifest_name(&dir, old));
            match ctx.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => warn!("cloud tier: deleting superseded manifest: {e}"),
            }
        }
    }
    Ok(())
}

/// Deletes parts and manifests older than the cloud retention (by the bucket's own
/// last-modified time, so objects of a lost index expire too; key objects never do).
async fn retention_pass(ctx: &Ctx) -> Result<(), Error> {
    let Some(age) = ctx.cfg.retention else {
        return Ok(());
    };
    let now = ctx.archive.clock.wall_us();
    let cutoff_us = now - i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
    let mut deleted = 0u64;
    for dir in ["d", "m"] {
        let prefix = ctx.layout.full(dir);
        let old: Vec<object_store::path::Path> = ctx
            .store
            .list(Some(&prefix))
            .try_filter_map(|meta| async move {
                let t = meta.last_modified.timestamp_micros();
                Ok((t < cutoff_us).then_some(meta.location))
            })
            .try_collect()
            .await?;
        for p in old {
            match ctx.store.delete(&p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    let archive = ctx.archive.clone();
    tokio::task::spawn_blocking(move || archive.index().cloud_forget_before(cutoff_us))
        .await
        .map_err(|e| Error::Corrupt(format!("retention task: {e}")))??;
    if deleted > 0 {
        info!("cloud retention: deleted {deleted} objects older than {age:?}");
    }
    Ok(())
}

/// An average upload rate cap: after each part, wait until the bytes sent so far fit the
/// rate (a part itself goes at the link's speed; parts are a few MiB).
struct RateLimiter {
    rate: Option<u64>,
    next: tokio::time::Instant,
}

impl RateLimiter {
    fn new(rate: Option<u64>) -> Self {
        Self {
            rate,
            next: tokio::time::Instant::now(),
        }
    }

    /// `bytes` went up in a put that started at `started`: waits until they fit the rate
    /// (the put's own duration counts).
    async fn spent(&mut self, bytes: u64, started: tokio::time::Instant) {
        let Some(rate) = self.rate else { return };
        self.next = self.next.max(started) + Duration::from_secs_f64(bytes as f64 / rate as f64);
        tokio::time::sleep_until(self.next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_rate_cap_holds_on_average() {
        let mut l = RateLimiter::new(Some(1_000_000));
        let t0 = tokio::time::Instant::now();
        for _ in 0..5 {
            l.spent(400_000, tokio::time::Instant::now()).await;
        }
        // 2 MB at 1 MB/s: 2 s after the first byte, however fast the puts were.
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        // A put that itself took as long as its bytes allow waits no more.
        let started = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        l.spent(1_000_000, started).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(3));
        RateLimiter::new(None).spent(u64::MAX, t0).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(3));
    }

    #[test]
    fn backoff_grows_to_a_minute() {
        for _ in 0..50 {
            let b1 = backoff(1);
            assert!(b1 >= Duration::from_millis(1500) && b1 <= Duration::from_millis(2500));
            assert!(backoff(30) <= MAX_BACKOFF.mul_f64(1.25));
            assert!(backoff(30) >= MAX_BACKOFF.mul_f64(0.75));
        }
    }
}
