//! Cloud-only footage in the web app: the timeline shows the spans whose local files
//! retention deleted after upload, and `export.mp4` plays them from the bucket.
//!
//! Only with `identity_file` in `[cloud]`: the recorder then holds a key that opens the
//! bucket, so a thief of the recorder can read the offsite copy too (docs/cloud.md says so).
//! The spans come from the recorder's own queue (`cloud_part` rows, no bucket request); a
//! plan reads the parts' chunks on demand, as restore does.

use std::io;
use std::path::Path;
use std::sync::Arc;

use age::x25519::Identity;
use object_store::ObjectStore;
use tokio::runtime::Handle;
use vigil_recorder::archive::Archive;
use vigil_recorder::storage::Storage;
use vigil_recorder::ExportPlan;

use crate::layout::{Layout, PartEntry};
use crate::restore::{plan_over_parts, PartStorage};
use crate::uploader::MAX_PART_US;
use crate::{keys, store, CloudConfig, Error};

/// Reads cloud-only footage for the web app.
pub struct CloudPlayback {
    archive: Arc<Archive>,
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    identities: Arc<Vec<Identity>>,
    handle: Handle,
}

impl std::fmt::Debug for CloudPlayback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudPlayback")
            .field("identities", &self.identities.len())
            .finish_non_exhaustive()
    }
}

/// Reads the bytes of a cloud plan (blocking: call on the blocking pool).
#[derive(Clone)]
pub struct CloudReader(Arc<PartStorage>);

impl CloudReader {
    /// Bytes `[offset, offset + len)` of a plan range's file.
    pub fn read_range(&self, path: &Path, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        self.0.read_range(path, offset, len)
    }
}

impl CloudPlayback {
    /// Opens the bucket of `cfg` with the identity in `identity_file` (inside the runtime).
    pub fn open(
        archive: Arc<Archive>,
        cfg: &CloudConfig,
        identity_file: &Path,
    ) -> Result<Self, Error> {
        Ok(Self {
            archive,
            store: store::open(cfg)?,
            layout: Layout::new(&cfg.prefix),
            identities: Arc::new(keys::read_identities(identity_file)?),
            handle: Handle::current(),
        })
    }

    fn parts(
        &self,
        camera: &str,
        stream: &str,
        start_us: i64,
        end_us: i64,
    ) -> Result<Vec<(PartEntry, i64, i64)>, Error> {
        let db = self.archive.index();
        let Some(id) = db.find_stream(camera, stream)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (e, s, t) in db.cloud_only_parts(id, start_us, end_us)? {
            let mut p: PartEntry = serde_json::from_slice(&e.entry)
                .map_err(|err| Error::Corrupt(format!("queued manifest entry: {err}")))?;
            p.object_bytes = e.object_bytes;
            p.check()?;
            out.push((p, s, t));
        }
        Ok(out)
    }

    /// The spans of `[start_us, end_us)` that only the cloud holds, merged, in order
    /// (blocking: reads the index).
    pub fn ranges(
        &self,
        camera: &str,
        stream: &str,
        start_us: i64,
        end_us: i64,
    ) -> Result<Vec<(i64, i64)>, Error> {
        let mut out: Vec<(i64, i64)> = Vec::new();
        for (_, s, e) in self.parts(camera, stream, start_us, end_us)? {
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        Ok(out)
    }

    /// The export of `[start_us, end_us)` from cloud-only footage, and its reader (blocking:
    /// reads the index and each touched file's init segment from the bucket).
    /// `Error::NotFound` if the cloud holds nothing there that the disk lacks.
    pub fn plan(
        &self,
        camera: &str,
        stream: &str,
        start_us: i64,
        end_us: i64,
    ) -> Result<(ExportPlan, CloudReader), Error> {
        let parts: Vec<PartEntry> = self
            .parts(camera, stream, start_us.saturating_sub(MAX_PART_US), end_us)?
            .into_iter()
            .map(|(p, _, _)| p)
            .collect();
        if parts.is_empty() {
            return Err(Error::NotFound(
                "no cloud-only footage in that range".into(),
            ));
        }
        let storage = Arc::new(PartStorage::new(
            self.store.clone(),
            self.layout.clone(),
            self.identities.clone(),
            self.handle.clone(),
            parts,
        ));
        let plan = plan_over_parts(&storage, camera, stream, start_us, end_us)?;
        storage.schedule(&plan);
        Ok((plan, CloudReader(storage)))
    }
}
