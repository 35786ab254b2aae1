//! Test input: real x264 access units from `crates/media/testdata`, looped with synthetic
//! timestamps (each loop starts with an IDR picture and its SPS/PPS, so it decodes).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use vigil_media::h264::{nal_type, stream_params, AccessUnitSplitter};
use vigil_media::{AccessUnit, StreamParams};

/// One frame interval at 30 fps in 90 kHz ticks.
pub const FRAME_90K: i64 = 3000;

/// The pictures of the test clip: (AVCC data, is_idr), and their parameters.
pub fn clip() -> (Arc<StreamParams>, Vec<(Bytes, bool)>) {
    let data = include_bytes!("../../media/testdata/x264-160x120-2slices.h264");
    let mut splitter = AccessUnitSplitter::new();
    let mut aus = splitter.push_annexb(data);
    aus.extend(splitter.flush());
    let mut sps = None;
    let mut pps = None;
    for au in &aus {
        for n in &au.nals {
            match nal_type(n) {
                Some(7) => sps = Some(n.clone()),
                Some(8) => pps = Some(n.clone()),
                _ => {}
            }
        }
    }
    let params = stream_params(&sps.unwrap(), &pps.unwrap()).unwrap();
    let pics = aus
        .into_iter()
        .filter(|a| a.has_picture())
        .map(|a| (Bytes::from(a.to_avcc()), a.is_idr))
        .collect();
    (Arc::new(params), pics)
}

/// Generates access units: picture `i` of the looped clip at pts `pts0 + i * FRAME_90K`.
pub struct AuGen {
    /// Parameters attached to each access unit.
    pub params: Arc<StreamParams>,
    pics: Vec<(Bytes, bool)>,
    /// Index of the next picture.
    pub n: usize,
    /// pts of the next access unit.
    pub pts: i64,
    /// capture time of the next access unit.
    pub capture_us: i64,
}

impl AuGen {
    /// Starts at pts 0 and capture time `capture_us`.
    pub fn new(capture_us: i64) -> Self {
        let (params, pics) = clip();
        Self {
            params,
            pics,
            n: 0,
            pts: 0,
            capture_us,
        }
    }

    /// The next access unit.
    pub fn next_au(&mut self) -> AccessUnit {
        let (data, key) = self.pics[self.n % self.pics.len()].clone();
        let au = AccessUnit {
            params: self.params.clone(),
            pts: self.pts,
            capture_us: self.capture_us,
            key,
            data,
        };
        self.n += 1;
        self.pts += FRAME_90K;
        self.capture_us += FRAME_90K * 1_000_000 / 90_000;
        au
    }

    /// Skips to the next loop start (a key frame) so that the next AU is a key frame.
    pub fn align_to_key(&mut self) {
        while !self.pics[self.n % self.pics.len()].1 {
            self.n += 1;
        }
    }
}

/// Storage whose fsync takes `delay` (an SD card, a busy disk), around another storage.
pub struct SlowSync<S> {
    /// The storage that does the work.
    pub inner: S,
    /// How long each `sync` takes.
    pub delay: std::time::Duration,
}

struct SlowFile {
    inner: Box<dyn crate::storage::WriteFile>,
    delay: std::time::Duration,
}

impl crate::storage::WriteFile for SlowFile {
    fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.append(buf)
    }
    fn append_vectored(&mut self, bufs: &[&[u8]]) -> std::io::Result<()> {
        self.inner.append_vectored(bufs)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.sync()
    }
}

impl<S: crate::storage::Storage> crate::storage::Storage for SlowSync<S> {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn crate::storage::WriteFile>> {
        let inner = self.inner.create(path)?;
        Ok(Box::new(SlowFile {
            inner,
            delay: self.delay,
        }))
    }
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn crate::storage::WriteFile>> {
        let inner = self.inner.open_append(path)?;
        Ok(Box::new(SlowFile {
            inner,
            delay: self.delay,
        }))
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn read_range(&self, path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        self.inner.read_range(path, offset, len)
    }
    fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()> {
        self.inner.truncate(path, len)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn len(&self, path: &Path) -> std::io::Result<u64> {
        self.inner.len(path)
    }
    fn free_space(&self) -> std::io::Result<u64> {
        self.inner.free_space()
    }
    fn list(&self) -> std::io::Result<Vec<PathBuf>> {
        self.inner.list()
    }
    fn host_path(&self, path: &Path) -> Option<PathBuf> {
        self.inner.host_path(path)
    }
}
