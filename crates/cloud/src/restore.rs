//! Reading the bucket back with an identity and nothing else: `vigil cloud ls` and
//! `vigil cloud restore` work with the recorder's data directory gone (the stolen-recorder
//! case).
//!
//! Restore rebuilds the index rows of the range from the hours' manifests into an
//! in-memory index, and plans the clip with the recorder's own export
//! ([`vigil_recorder::export::plan`]) over a storage whose files are the parts in the bucket:
//! the result is the local export of the same range, byte for byte. Media bytes are read
//! with ranged GETs of just the age chunks that hold them (a 64 KiB chunk maps to a fixed
//! byte range of the object), so an hour of one camera costs that hour's bytes, and one
//! minute of it about one minute's.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use age::x25519::Identity;
use futures::TryStreamExt;
use object_store::ObjectStore;
use serde::Serialize;
use tokio::runtime::Handle;
use vigil_recorder::archive::Archive;
use vigil_recorder::clock::RealClock;
use vigil_recorder::db::Db;
use vigil_recorder::db_cloud::{hour_of, HOUR_US};
use vigil_recorder::retention::RetentionConfig;
use vigil_recorder::storage::{Storage, WriteFile};

use crate::keys::{self, CHUNK, ENCRYPTED_CHUNK, PAYLOAD_NONCE};
use crate::layout::{self, KeyObject, Layout, Manifest, PartEntry};
use crate::uploader::MAX_PART_US;
use crate::{store, CloudConfig, Error};

/// The bucket, read with identities.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    identities: Arc<Vec<Identity>>,
}

/// One camera stream's day in the bucket (`vigil cloud ls`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DaySummary {
    /// Camera.
    pub camera: String,
    /// Stream.
    pub stream: String,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Hours with footage.
    pub hours: u32,
    /// Footage, seconds.
    pub footage_s: f64,
    /// Bytes in the bucket.
    pub bytes: u64,
    /// First footage (µs).
    pub start_us: i64,
    /// End of the last footage (µs).
    pub end_us: i64,
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    /// Bytes written.
    pub bytes: u64,
    /// Video frames.
    pub frames: u64,
    /// Wall clock of the first frame (µs).
    pub start_wall_us: i64,
    /// After the last frame (µs).
    pub end_wall_us: i64,
    /// Object bytes fetched (headers, chunks, manifests).
    pub fetched: u64,
    /// Parts the range touches.
    pub parts: usize,
}

impl Bucket {
    /// The configured bucket, read with `identities`.
    pub fn open(cfg: &CloudConfig, identities: Vec<Identity>) -> Result<Self, Error> {
        Ok(Self {
            store: store::open(cfg)?,
            layout: Layout::new(&cfg.prefix),
            identities: Arc::new(identities),
        })
    }

    async fn get_all(&self, relative: &str) -> Result<Vec<u8>, Error> {
        let r = self.store.get(&self.layout.full(relative)).await?;
        Ok(r.bytes().await?.to_vec())
    }

    async fn list(&self, dir: &str) -> Result<Vec<object_store::ObjectMeta>, Error> {
        Ok(self
            .store
            .list(Some(&self.layout.full(dir)))
            .try_collect()
            .await?)
    }

    /// Every recorder's naming key that the identities open.
    pub async fn naming_keys(&self) -> Result<Vec<Vec<u8>>, Error> {
        let mut out = Vec::new();
        let objects = self.list("keys").await?;
        let mut refused = 0;
        for meta in &objects {
            let Some(rel) = self.layout.relative(meta.location.as_ref()) else {
                continue;
            };
            let ct = self.get_all(rel).await?;
            match keys::decrypt(&self.identities, &ct, rel) {
                Ok(plain) => {
                    let k: KeyObject = serde_json::from_slice(&plain)
                        .map_err(|e| Error::Corrupt(format!("{rel}: {e}")))?;
                    out.push(
                        hex::decode(&k.naming_key)
                            .map_err(|e| Error::Corrupt(format!("{rel}: {e}")))?,
                    );
                }
                Err(_) => refused += 1,
            }
        }
        if out.is_empty() {
            return Err(if objects.is_empty() {
                Error::NotFound("the bucket holds no Vigil footage under this prefix".into())
            } else {
                Error::Key(format!(
                    "the identity opens none of the bucket's {refused} key object(s): wrong key?"
                ))
            });
        }
        Ok(out)
    }

    /// The newest version of the manifest in `dir` (None: no manifest there).
    async fn newest_manifest(&self, dir: &str) -> Result<Option<Manifest>, Error> {
        let newest = self
            .list(dir)
            .await?
            .into_iter()
            .filter_map(|m| {
                let rel = self.layout.relative(m.location.as_ref())?.to_owned();
                let (_, v) = layout::manifest_version(&rel)?;
                Some((v, rel))
            })
            .max();
        let Some((_, rel)) = newest else {
            return Ok(None);
        };
        let ct = self.get_all(&rel).await?;
        let plain = keys::decrypt(&self.identities, &ct, &rel)?;
        let m: Manifest =
            serde_json::from_slice(&plain).map_err(|e| Error::Corrupt(format!("{rel}: {e}")))?;
        for p in &m.parts {
            p.check()?;
        }
        Ok(Some(m))
    }

    /// The parts of a stream's hour, from every recorder's manifest, in time order.
    pub async fn hour_parts(
        &self,
        naming_keys: &[Vec<u8>],
        camera: &str,
        stream: &str,
        hour_us: i64,
    ) -> Result<Vec<PartEntry>, Error> {
        let mut parts: BTreeMap<(i64, String), PartEntry> = BTreeMap::new();
        for k in naming_keys {
            let dir = layout::manifest_dir(k, camera, stream, hour_us);
            if let Some(m) = self.newest_manifest(&dir).await? {
                if m.camera != camera || m.stream != stream || m.hour_us != hour_us {
                    return Err(Error::Corrupt(format!("{dir}: manifest of another hour")));
                }
                for p in m.parts {
                    let start = p.fragments.first().map_or(0, |f| f.start_wall_us);
                    parts.insert((start, p.object.clone()), p);
                }
            }
        }
        Ok(parts.into_values().collect())
    }

    /// Every camera stream's days in the bucket (reads every manifest's newest version).
    pub async fn ls(&self) -> Result<Vec<DaySummary>, Error> {
        // The key objects first: a wrong identity is said as such.
        self.naming_keys().await?;
        let mut newest: HashMap<String, (u32, String)> = HashMap::new();
        for meta in self.list("m").await? {
            let Some(rel) = self.layout.relative(meta.location.as_ref()) else {
                continue;
            };
            let Some((dir, v)) = layout::manifest_version(rel) else {
                continue;
            };
            let e = newest.entry(dir.to_owned()).or_insert((v, rel.to_owned()));
            if v > e.0 {
                *e = (v, rel.to_owned());
            }
        }
        let mut days: BTreeMap<(String, String, String), DaySummary> = BTreeMap::new();
        for (_, rel) in newest.into_values() {
            let ct = self.get_all(&rel).await?;
            let plain = keys::decrypt(&self.identities, &ct, &rel)?;
            let m: Manifest = serde_json::from_slice(&plain)
                .map_err(|e| Error::Corrupt(format!("{rel}: {e}")))?;
            let day = day_of(m.hour_us);
            let d = days
                .entry((m.camera.clone(), m.stream.clone(), day.clone()))
                .or_insert_with(|| DaySummary {
                    camera: m.camera.clone(),
                    stream: m.stream.clone(),
                    day,
                    hours: 0,
                    footage_s: 0.0,
                    bytes: 0,
                    start_us: i64::MAX,
                    end_us: i64::MIN,
                });
            d.hours += 1;
            for p in &m.parts {
                d.bytes += p.object_bytes;
                for f in &p.fragments {
                    d.footage_s += (f.end_wall_us - f.start_wall_us) as f64 / 1e6;
                    d.start_us = d.start_us.min(f.start_wall_us);
                    d.end_us = d.end_us.max(f.end_wall_us);
                }
            }
        }
        Ok(days.into_values().collect())
    }

    /// Rebuilds `[start_us, end_us)` of a camera stream into an MP4 at `output` (written to
    /// a temporary name, then renamed).
    pub async fn restore(
        &self,
        camera: &str,
        stream: &str,
        start_us: i64,
        end_us: i64,
        output: &Path,
    ) -> Result<RestoreReport, Error> {
        if end_us <= start_us {
            return Err(Error::Config("the end must be after the start".into()));
        }
        let naming_keys = self.naming_keys().await?;
        // A part starts at most MAX_PART_US before footage it holds.
        let from = start_us.saturating_sub(MAX_PART_US);
        let mut parts = Vec::new();
        let mut hour = hour_of(from);
        while hour < end_us {
            for p in self.hour_parts(&naming_keys, camera, stream, hour).await? {
                let (Some(first), Some(last)) = (p.fragments.first(), p.fragments.last()) else {
                    continue;
                };
                // Enough before the start to walk back to a key frame.
                if last.end_wall_us > from && first.start_wall_us < end_us {
                    parts.push(p);
                }
            }
            hour += HOUR_US;
        }
        if parts.is_empty() {
            return Err(Error::NotFound(format!(
                "the bucket holds nothing of {camera}/{stream} in that range"
            )));
        }
        let n_parts = parts.len();
        let storage = Arc::new(PartStorage::new(
            self.store.clone(),
            self.layout.clone(),
            self.identities.clone(),
            Handle::current(),
            parts,
        ));
        let (camera, stream, output) = (camera.to_owned(), stream.to_owned(), output.to_owned());
        tokio::task::spawn_blocking(move || {
            restore_blocking(
                storage, &camera, &stream, start_us, end_us, &output, n_parts,
            )
        })
        .await
        .map_err(|e| Error::Corrupt(format!("restore task: {e}")))?
    }
}

fn day_of(hour_us: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(hour_us.div_euclid(1_000_000))
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

fn restore_blocking(
    storage: Arc<PartStorage>,
    camera: &str,
    stream: &str,
    start_us: i64,
    end_us: i64,
    output: &Path,
    n_parts: usize,
) -> Result<RestoreReport, Error> {
    let plan = plan_over_parts(&storage, camera, stream, start_us, end_us)?;
    storage.schedule(&plan);
    let tmp = output.with_extension("part");
    let mut f = std::fs::File::create(&tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    {
        let mut w = io::BufWriter::new(&mut f);
        plan.write_range_with(0, plan.total_len, &mut w, |path, off, len| {
            storage.read_range(path, off, len)
        })
        .and_then(|()| w.flush())
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    }
    f.sync_all()
        .and_then(|()| std::fs::rename(&tmp, output))
        .map_err(|e| Error::io(format!("writing {}", output.display()), e))?;
    Ok(RestoreReport {
        bytes: plan.total_len,
        frames: plan.frames,
        start_wall_us: plan.start_wall_us,
        end_wall_us: plan.end_wall_us,
        fetched: storage.fetched.load(Ordering::Relaxed),
        parts: n_parts,
    })
}

/// Plans the export of `[start_us, end_us)` over parts: the index rows the recorder had,
/// rebuilt from the parts' manifest entries in an in-memory index, planned by the recorder's
/// own export. The plan's ranges are read with `storage.read_range`.
pub(crate) fn plan_over_parts(
    storage: &Arc<PartStorage>,
    camera: &str,
    stream: &str,
    start_us: i64,
    end_us: i64,
) -> Result<vigil_recorder::ExportPlan, Error> {
    let mut db = Db::open_in_memory()?;
    let stream_id = db.stream_id(camera, stream)?;
    let mut by_file: BTreeMap<(i64, String), Vec<&PartEntry>> = BTreeMap::new();
    for p in &storage.parts {
        by_file
            .entry((p.file.start_wall_us, p.file.path.clone()))
            .or_default()
            .push(p);
    }
    for ((start, path), parts) in &by_file {
        let init_len = parts.first().map_or(0, |p| p.file.init_len);
        let file_id = db.insert_file(stream_id, path, *start, init_len)?;
        let mut rows = BTreeMap::new();
        for p in parts {
            for f in &p.fragments {
                rows.insert(f.seq, f.to_row(file_id)?);
            }
        }
        let rows: Vec<_> = rows.into_values().collect();
        db.insert_fragments(&rows)?;
        db.close_file(file_id)?;
    }
    let archive = Archive::new(
        storage.clone(),
        db,
        Arc::new(RealClock::new()),
        RetentionConfig::default(),
    );
    Ok(vigil_recorder::export::plan(
        &archive, stream_id, start_us, end_us,
    )?)
}

/// A read-only [`Storage`] whose files are the recorder's files as the bucket's parts
/// hold them: a read of bytes `[off, off+len)` of a file is served by the part holding them,
/// decrypting only the chunks they are in.
pub(crate) struct PartStorage {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    identities: Arc<Vec<Identity>>,
    handle: Handle,
    parts: Vec<PartEntry>,
    readers: Mutex<HashMap<String, OpenPart>>,
    fetched: Arc<AtomicU64>,
    /// The parts in the order a plan reads them, with how far into each it reads
    /// (ciphertext end), set by [`PartStorage::schedule`]; empty: no prefetching.
    order: Mutex<Schedule>,
}

/// Where a plan's reads go, and the fetches started ahead of them.
#[derive(Default)]
struct Schedule {
    /// (object, ciphertext end needed), in reading order.
    parts: Vec<(String, u64)>,
    /// Index in `parts` of each object.
    index: HashMap<String, usize>,
    /// Whole needed spans `[0, end)` being fetched ahead, not yet taken by a reader.
    ahead: HashMap<String, Prefetch>,
    /// Parts whose prefetch was started (taken or not).
    started: std::collections::HashSet<String>,
}

/// A fetch started ahead of the reads.
type Prefetch = tokio::task::JoinHandle<Result<bytes::Bytes, object_store::Error>>;

/// Parts fetched ahead of the one being read: the network works while a part decrypts.
const PREFETCH_AHEAD: usize = 3;

impl PartStorage {
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        layout: Layout,
        identities: Arc<Vec<Identity>>,
        handle: Handle,
        parts: Vec<PartEntry>,
    ) -> Self {
        Self {
            store,
            layout,
            identities,
            handle,
            parts,
            readers: Mutex::new(HashMap::new()),
            fetched: Arc::new(AtomicU64::new(0)),
            order: Mutex::new(Schedule::default()),
        }
    }

    /// Tells the storage the order and extent of `plan`'s reads, so that each part's span
    /// is fetched a few parts ahead (one GET per part, started while earlier parts decrypt)
    /// and readers of parts left behind are dropped.
    pub(crate) fn schedule(&self, plan: &vigil_recorder::ExportPlan) {
        let mut sched = Schedule::default();
        for (path, off, len) in &plan.ranges {
            let name = path.to_string_lossy();
            let Some((part, pt_off)) = self.locate(&name, *off, *len) else {
                continue;
            };
            let end =
                (HEADER_SLACK + PAYLOAD_NONCE + (pt_off + len).div_ceil(CHUNK) * ENCRYPTED_CHUNK)
                    .min(if part.object_bytes > 0 {
                        part.object_bytes
                    } else {
                        u64::MAX
                    });
            match sched.index.get(&part.object) {
                Some(&i) => {
                    if let Some(e) = sched.parts.get_mut(i) {
                        e.1 = e.1.max(end);
                    }
                }
                None => {
                    sched.index.insert(part.object.clone(), sched.parts.len());
                    sched.parts.push((part.object.clone(), end));
                }
            }
        }
        *self.order.lock().unwrap_or_else(|e| e.into_inner()) = sched;
        // Readers opened while planning (each file's init segment) start over, so that every
        // part is read through its prefetch rather than beside it.
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The part holding bytes `[offset, offset + len)` of file `name`, and where they start
    /// in its plaintext.
    fn locate(&self, name: &str, offset: u64, len: u64) -> Option<(&PartEntry, u64)> {
        self.parts
            .iter()
            .filter(|p| p.file.path == name)
            .find_map(|p| p.part_offset(offset, len).map(|o| (p, o)))
    }

    /// Starts the fetches of the parts after `object` (up to [`PREFETCH_AHEAD`]), takes
    /// `object`'s own if one was started, and says which parts are behind it.
    fn advance(&self, object: &str) -> (Option<Prefetch>, Vec<String>) {
        let mut sched = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let Some(&i) = sched.index.get(object) else {
            return (None, Vec::new());
        };
        let upto = (i + 1 + PREFETCH_AHEAD).min(sched.parts.len());
        for j in i..upto {
            let Some((name, end)) = sched.parts.get(j).cloned() else {
                continue;
            };
            // The part being opened now is read lazily unless its fetch is under way.
            if j == i || sched.started.contains(&name) {
                continue;
            }
            sched.started.insert(name.clone());
            let store = self.store.clone();
            let path = self.layout.full(&name);
            let fetched = self.fetched.clone();
            let task = self.handle.spawn(async move {
                let b = store.get_range(&path, 0..end).await?;
                fetched.fetch_add(b.len() as u64, Ordering::Relaxed);
                Ok(b)
            });
            sched.ahead.insert(name, task);
        }
        let own = sched.ahead.remove(object);
        let behind = sched
            .parts
            .get(..i.saturating_sub(1))
            .unwrap_or_default()
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        (own, behind)
    }

    fn unsupported() -> io::Error {
        io::Error::new(io::ErrorKind::Unsupported, "the bucket is read-only here")
    }
}

impl Storage for PartStorage {
    fn create(&self, _: &Path) -> io::Result<Box<dyn WriteFile>> {
        Err(Self::unsupported())
    }
    fn open_append(&self, _: &Path) -> io::Result<Box<dyn WriteFile>> {
        Err(Self::unsupported())
    }
    fn read(&self, _: &Path) -> io::Result<Vec<u8>> {
        Err(Self::unsupported())
    }
    fn read_range(&self, path: &Path, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let name = path.to_string_lossy();
        let (part, pt_off) = self.locate(&name, offset, len).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no part in the bucket holds bytes {offset}+{len} of {name}"),
            )
        })?;
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if !readers.contains_key(&part.object) {
            let (prefetched, behind) = self.advance(&part.object);
            // Parts the plan has left behind are not read again: free their buffers.
            for b in behind {
                readers.remove(&b);
            }
            let want_end = Arc::new(AtomicU64::new(0));
            let obj = RangeObject {
                store: self.store.clone(),
                path: self.layout.full(&part.object),
                size: part.object_bytes,
                pos: 0,
                buf_start: 0,
                buf: bytes::Bytes::new(),
                want_end: want_end.clone(),
                handle: self.handle.clone(),
                fetched: self.fetched.clone(),
                prefetched,
            };
            let dec = age::Decryptor::new(obj).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", part.object))
            })?;
            let r = dec
                .decrypt(self.identities.iter().map(|i| i as &dyn age::Identity))
                .map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", part.object))
                })?;
            readers.insert(part.object.clone(), (r, want_end));
        }
        let (r, want_end) = readers
            .get_mut(&part.object)
            .ok_or_else(|| io::Error::other("reader vanished"))?;
        // Fetch exactly the chunks that hold [pt_off, pt_off + len) (plus the header slack).
        let chunks_to_end = (pt_off + len).div_ceil(CHUNK);
        want_end.store(
            HEADER_SLACK + PAYLOAD_NONCE + chunks_to_end * ENCRYPTED_CHUNK,
            Ordering::Relaxed,
        );
        r.seek(SeekFrom::Start(pt_off))?;
        let mut out = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
        r.read_exact(&mut out)
            .map_err(|e| io::Error::new(e.kind(), format!("{} ({name}): {e}", part.object)))?;
        Ok(out)
    }
    fn truncate(&self, _: &Path, _: u64) -> io::Result<()> {
        Err(Self::unsupported())
    }
    fn rename(&self, _: &Path, _: &Path) -> io::Result<()> {
        Err(Self::unsupported())
    }
    fn remove(&self, _: &Path) -> io::Result<()> {
        Err(Self::unsupported())
    }
    fn len(&self, path: &Path) -> io::Result<u64> {
        let name = path.to_string_lossy();
        self.parts
            .iter()
            .filter(|p| p.file.path == name)
            .map(|p| p.byte_end)
            .max()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.into_owned()))
    }
    fn free_space(&self) -> io::Result<u64> {
        Ok(0)
    }
    fn list(&self) -> io::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
    fn host_path(&self, _: &Path) -> Option<PathBuf> {
        None
    }
}

/// A part being read: its decrypting reader and how far its next read goes.
type OpenPart = (age::stream::StreamReader<RangeObject>, Arc<AtomicU64>);

/// Bytes allowed for an age header (two X25519 recipients take about 300).
const HEADER_SLACK: u64 = 1024;
/// The smallest GET (the header, a stray read).
const MIN_FETCH: u64 = 4096;
/// The largest GET.
const MAX_FETCH: u64 = 16 << 20;

/// A blocking `Read + Seek` over an object, fetching ranges on demand (`want_end` says how
/// far the current read will go, so one GET fetches all the chunks it needs).
struct RangeObject {
    store: Arc<dyn ObjectStore>,
    path: object_store::path::Path,
    size: u64,
    pos: u64,
    buf_start: u64,
    buf: bytes::Bytes,
    want_end: Arc<AtomicU64>,
    handle: Handle,
    fetched: Arc<AtomicU64>,
    /// The span `[0, end)` fetched ahead, if one was started for this part.
    prefetched: Option<Prefetch>,
}

impl Read for RangeObject {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.size == 0 {
            let meta = self
                .handle
                .block_on(self.store.head(&self.path))
                .map_err(io::Error::other)?;
            self.size = meta.size;
        }
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if self.pos < self.buf_start || self.pos >= buf_end {
            // The span fetched ahead starts at 0; a failed one is fetched again below.
            if let Some(task) = self.prefetched.take() {
                if let Ok(Ok(bytes)) = self.handle.block_on(task) {
                    if self.pos < bytes.len() as u64 {
                        self.buf_start = 0;
                        self.buf = bytes;
                        return self.read(out);
                    }
                }
            }
            let want = self.want_end.load(Ordering::Relaxed);
            let end = want
                .max(self.pos + MIN_FETCH)
                .min(self.pos + MAX_FETCH)
                .min(self.size);
            let bytes = self
                .handle
                .block_on(self.store.get_range(&self.path, self.pos..end))
                .map_err(|e| match e {
                    object_store::Error::NotFound { .. } => io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "{} is missing from the bucket (deleted by cloud retention?)",
                            self.path
                        ),
                    ),
                    e => io::Error::other(e),
                })?;
            self.fetched
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            self.buf_start = self.pos;
            self.buf = bytes;
            if self.buf.is_empty() {
                return Ok(0);
            }
        }
        let at = usize::try_from(self.pos - self.buf_start).map_err(io::Error::other)?;
        let avail = self.buf.get(at..).unwrap_or_default();
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeObject {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::other("seek out of range"))?;
        Ok(self.pos)
    }
}
