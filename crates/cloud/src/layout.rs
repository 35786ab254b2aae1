//! What the bucket holds and what its names reveal (sans-IO). `docs/cloud.md` draws it.
//!
//! Under the configured prefix:
//!
//! - `keys/<16 hex>`: one per recorder index, the recorder's random 256-bit naming key,
//!   age-encrypted to the recipients. Never deleted by retention.
//! - `d/<32 hex>`: a part — the init segment of a recording file followed by a run of its
//!   fragments, age-encrypted. The name is random: it says nothing of camera or time.
//! - `m/<64 hex>/<version>`: the manifest of one stream and UTC hour, age-encrypted: every
//!   uploaded part of that hour with its index rows, so listing, playback and restore read
//!   no part's header. The directory name is HMAC-SHA256(naming key, camera, stream,
//!   hour): whoever holds an identity (and so the naming key) finds an hour's manifest
//!   with one LIST; the provider sees only that some hour has one. Each new part of the hour
//!   makes a new version (create-only: a crash between the put and the index commit
//!   writes the next version, never over one); the recorder deletes the one before.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use vigil_recorder::db::{
    decode_samples, encode_samples, AudioRun, FileRow, FileState, FragmentRow,
};

use crate::Error;

/// The manifest and key format version.
pub const FORMAT: u32 = 1;

/// The largest part plaintext a manifest may describe: parts are cut at 16 MiB of
/// fragments (one fragment may exceed it) plus the init segment.
pub const MAX_PART_PLAINTEXT: u64 = 64 << 20;

/// Fuzzing and tests: parses `data` as a manifest and checks every entry; an entry that
/// passes [`PartEntry::check`] must convert to index rows and map its own ranges. Never
/// panics on any input.
pub fn check_manifest_invariants(data: &[u8]) {
    let Ok(m) = serde_json::from_slice::<Manifest>(data) else {
        return;
    };
    for p in &m.parts {
        if p.check().is_err() {
            continue;
        }
        for f in &p.fragments {
            let row = f.to_row(1).expect("a checked entry converts");
            let expect = i128::from(p.file.init_len) + i128::from(row.byte_offset)
                - i128::from(p.byte_start);
            assert_eq!(
                p.part_offset(row.byte_offset, row.byte_len).map(i128::from),
                Some(expect),
                "a checked fragment maps into its part"
            );
            assert!(expect + i128::from(row.byte_len) <= i128::from(p.plaintext_len()));
        }
        assert!(p.part_offset(0, p.file.init_len) == Some(0));
    }
}

/// Object names under a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// Names under `prefix` (no leading or trailing `/`; may be empty).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_matches('/').to_owned(),
        }
    }

    /// The full key of a name relative to the prefix.
    pub fn full(&self, relative: &str) -> object_store::path::Path {
        if self.prefix.is_empty() {
            object_store::path::Path::from(relative)
        } else {
            object_store::path::Path::from(format!("{}/{relative}", self.prefix))
        }
    }

    /// The name relative to the prefix of a full key (None: outside the prefix).
    pub fn relative<'a>(&self, full: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            Some(full)
        } else {
            full.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A new part's name (relative): `d/<32 hex>`.
pub fn new_part_name() -> String {
    format!("d/{}", random_hex(16))
}

/// A new key object's name (relative): `keys/<16 hex>`.
pub fn new_key_object_name() -> String {
    format!("keys/{}", random_hex(8))
}

/// A new naming key.
pub fn new_naming_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut k);
    k
}

/// The directory of a stream's hour's manifests (relative): `m/<64 hex>`.
pub fn manifest_dir(naming_key: &[u8], camera: &str, stream: &str, hour_us: i64) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(naming_key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"vigil-cloud manifest v1\0");
    mac.update(camera.as_bytes());
    mac.update(b"\0");
    mac.update(stream.as_bytes());
    mac.update(b"\0");
    mac.update(&hour_us.to_be_bytes());
    format!("m/{}", hex::encode(mac.finalize().into_bytes()))
}

/// A manifest version's name (relative).
pub fn manifest_name(dir: &str, version: u32) -> String {
    format!("{dir}/{version:010}")
}

/// The version of a manifest name (None: not one).
pub fn manifest_version(relative: &str) -> Option<(&str, u32)> {
    let (dir, v) = relative.rsplit_once('/')?;
    if !dir.starts_with("m/") || v.len() != 10 {
        return None;
    }
    Some((dir, v.parse().ok()?))
}

/// The plaintext of a `keys/` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyObject {
    /// [`FORMAT`].
    pub format: u32,
    /// The naming key, hex.
    pub naming_key: String,
    /// When it was made, µs since the epoch.
    pub created_us: i64,
}

/// The plaintext of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// Camera name.
    pub camera: String,
    /// Stream name.
    pub stream: String,
    /// Start of the UTC hour, µs since the epoch.
    pub hour_us: i64,
    /// The uploaded parts that start in the hour, in time order.
    pub parts: Vec<PartEntry>,
}

/// One part in a manifest: where it is, and the index rows of what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    /// Object name, relative to the prefix.
    pub object: String,
    /// Object length (ciphertext).
    #[serde(default)]
    pub object_bytes: u64,
    /// The recording file it was cut from.
    pub file: FileEntry,
    /// Offset in the file of the first fragment's `moof`: the part is the file's bytes
    /// `[0, init_len)` followed by `[byte_start, byte_end)`.
    pub byte_start: u64,
    /// End of the last fragment in the file.
    pub byte_end: u64,
    /// The fragments' index rows, with their offsets in the file.
    pub fragments: Vec<FragmentEntry>,
}

/// The file a part comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its path under `recordings/` on the recorder (camera/stream/day/time.mp4).
    pub path: String,
    /// Wall clock of its decode time 0, µs.
    pub start_wall_us: i64,
    /// Length of its `ftyp` + `moov`.
    pub init_len: u64,
}

/// A fragment's index row (`docs/schema.md`, table `fragment`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentEntry {
    /// `mfhd` sequence number.
    pub seq: u32,
    /// Offset of its `moof` in the file.
    pub byte_offset: u64,
    /// `moof` + `mdat`.
    pub byte_len: u64,
    /// Offset of its first sample's bytes in the file.
    pub data_offset: u64,
    /// `tfdt`.
    pub start_90k: u64,
    /// Duration.
    pub duration_90k: u64,
    /// Wall clock of the first sample.
    pub start_wall_us: i64,
    /// Wall clock after the last sample.
    pub end_wall_us: i64,
    /// The sample table (`samples` column encoding), base64.
    pub samples: String,
    /// The audio run (`audio` column encoding), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<String>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl FragmentEntry {
    /// From an index row.
    pub fn from_row(f: &FragmentRow) -> Self {
        Self {
            seq: f.seq,
            byte_offset: f.byte_offset,
            byte_len: f.byte_len,
            data_offset: f.data_offset,
            start_90k: f.start_90k,
            duration_90k: f.duration_90k,
            start_wall_us: f.start_wall_us,
            end_wall_us: f.end_wall_us,
            samples: b64().encode(encode_samples(&f.samples)),
            audio: f.audio.as_ref().map(|a| b64().encode(a.encode())),
        }
    }

    /// Back to an index row of file `file_id`.
    pub fn to_row(&self, file_id: i64) -> Result<FragmentRow, Error> {
        let bad =
            |what: &str| Error::Corrupt(format!("manifest: fragment {}: bad {what}", self.seq));
        let samples = b64().decode(&self.samples).map_err(|_| bad("samples"))?;
        let audio = match &self.audio {
            None => None,
            Some(a) => Some(
                AudioRun::decode(&b64().decode(a).map_err(|_| bad("audio"))?)
                    .ok_or_else(|| bad("audio run"))?,
            ),
        };
        Ok(FragmentRow {
            file_id,
            seq: self.seq,
            byte_offset: self.byte_offset,
            byte_len: self.byte_len,
            data_offset: self.data_offset,
            start_90k: self.start_90k,
            duration_90k: self.duration_90k,
            start_wall_us: self.start_wall_us,
            end_wall_us: self.end_wall_us,
            samples: decode_samples(&samples),
            audio,
        })
    }
}

impl PartEntry {
    /// The entry of fragments `frags` (contiguous, in order, non-empty) of `file`.
    pub fn new(object: String, file: &FileRow, frags: &[FragmentRow]) -> Option<Self> {
        let first = frags.first()?;
        let last = frags.last()?;
        Some(Self {
            object,
            object_bytes: 0,
            file: FileEntry {
                path: file.path.clone(),
                start_wall_us: file.start_wall_us,
                init_len: file.init_len.max(0) as u64,
            },
            byte_start: first.byte_offset,
            byte_end: last.byte_offset + last.byte_len,
            fragments: frags.iter().map(FragmentEntry::from_row).collect(),
        })
    }

    /// Plaintext length of the part.
    pub fn plaintext_len(&self) -> u64 {
        self.file
            .init_len
            .saturating_add(self.byte_end.saturating_sub(self.byte_start))
    }

    /// Where byte `offset` of the file is in the part's plaintext (None: not in it).
    pub fn part_offset(&self, offset: u64, len: u64) -> Option<u64> {
        let end = offset.checked_add(len)?;
        if end <= self.file.init_len {
            Some(offset)
        } else if offset >= self.byte_start && end <= self.byte_end {
            self.file.init_len.checked_add(offset - self.byte_start)
        } else {
            None
        }
    }

    /// Checks that the entry is self-consistent (a manifest comes from the bucket, which
    /// is not trusted to be well-formed): names, offsets and sizes that restore will use to
    /// allocate and to read must describe a part of at most [`MAX_PART_PLAINTEXT`] bytes,
    /// with every fragment's samples inside the fragment.
    pub fn check(&self) -> Result<(), Error> {
        let bad = |m: &str| {
            Err(Error::Corrupt(format!(
                "manifest entry {}: {m}",
                self.object
            )))
        };
        if !self.object.starts_with("d/")
            || self.object.len() != 34
            || !self.object.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
        {
            return bad("object name");
        }
        if self.byte_end < self.byte_start || self.byte_start < self.file.init_len {
            return bad("byte range");
        }
        if self.file.init_len == 0
            || self.plaintext_len() > MAX_PART_PLAINTEXT
            || (self.object_bytes > 0 && self.object_bytes < self.plaintext_len())
        {
            return bad("size");
        }
        if vigil_recorder::storage::check_relative(std::path::Path::new(&self.file.path)).is_err() {
            return bad("file path");
        }
        let mut pos = self.byte_start;
        for f in &self.fragments {
            let end = pos.saturating_add(f.byte_len);
            if f.byte_offset != pos || f.data_offset < f.byte_offset || f.data_offset > end {
                return bad("fragment offsets");
            }
            let row = f.to_row(0)?;
            let video: u64 = row.samples.iter().map(|s| u64::from(s.size)).sum();
            let audio: u64 = row
                .audio
                .as_ref()
                .map_or(0, |a| a.samples.iter().map(|s| u64::from(s.size)).sum());
            if f.data_offset.saturating_add(video).saturating_add(audio) > end {
                return bad("samples outside their fragment");
            }
            pos = end;
        }
        if pos != self.byte_end {
            return bad("fragment lengths");
        }
        Ok(())
    }

    /// The file row this part's file had (closed; the id is given).
    pub fn file_row(&self, id: i64, stream_id: i64) -> FileRow {
        FileRow {
            id,
            stream_id,
            path: self.file.path.clone(),
            start_90k: 0,
            end_90k: 0,
            start_wall_us: self.file.start_wall_us,
            end_wall_us: self.file.start_wall_us,
            bytes: i64::try_from(self.file.init_len).unwrap_or(i64::MAX),
            init_len: i64::try_from(self.file.init_len).unwrap_or(i64::MAX),
            state: FileState::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_media::fmp4::Sample;

    /// A manifest as the uploader writes it: two parts of one file.
    fn sample_manifest() -> Manifest {
        let file = FileRow {
            id: 7,
            stream_id: 1,
            path: "door/main/20261207/020000-000000.mp4".into(),
            start_90k: 0,
            end_90k: 0,
            start_wall_us: 1_000_000,
            end_wall_us: 0,
            bytes: 0,
            init_len: 700,
            state: FileState::Closed,
        };
        let frag = |seq: u32, offset: u64| FragmentRow {
            file_id: 7,
            seq,
            byte_offset: offset,
            byte_len: 1000,
            data_offset: offset + 100,
            start_90k: u64::from(seq - 1) * 90_000,
            duration_90k: 90_000,
            start_wall_us: 1_000_000 * i64::from(seq),
            end_wall_us: 1_000_000 * i64::from(seq + 1),
            samples: vec![
                Sample {
                    duration: 45_000,
                    size: 600,
                    is_sync: true,
                },
                Sample {
                    duration: 45_000,
                    size: 300,
                    is_sync: false,
                },
            ],
            audio: None,
        };
        let frags: Vec<FragmentRow> = (1..=4)
            .map(|s| frag(s, 700 + 1000 * u64::from(s - 1)))
            .collect();
        let mut a = PartEntry::new(new_part_name(), &file, &frags[..2]).unwrap();
        let mut b = PartEntry::new(new_part_name(), &file, &frags[2..]).unwrap();
        a.object_bytes = 3000;
        b.object_bytes = 3000;
        Manifest {
            format: FORMAT,
            camera: "door".into(),
            stream: "main".into(),
            hour_us: 0,
            parts: vec![a, b],
        }
    }

    #[test]
    fn checked_entries_map_their_fragments_and_hostile_ones_are_refused() {
        let m = sample_manifest();
        for p in &m.parts {
            p.check().unwrap();
        }
        let json = serde_json::to_vec(&m).unwrap();
        check_manifest_invariants(&json);
        // Truncations and byte flips never panic (a cheap stand-in for the fuzz target,
        // which also runs this file's seed from fuzz/corpus/cloud_manifest).
        for cut in (0..json.len()).step_by(7) {
            check_manifest_invariants(&json[..cut]);
        }
        for i in (0..json.len()).step_by(3) {
            let mut j = json.clone();
            j[i] = j[i].wrapping_add(1);
            check_manifest_invariants(&j);
        }
        let refuse = |f: &dyn Fn(&mut PartEntry)| {
            let mut p = m.parts[0].clone();
            f(&mut p);
            assert!(p.check().is_err(), "{p:?}");
        };
        refuse(&|p| p.object = "../etc/passwd".into());
        refuse(&|p| p.file.path = "/etc/passwd".into());
        refuse(&|p| p.file.path = "door/../../x".into());
        refuse(&|p| p.byte_end = u64::MAX);
        refuse(&|p| p.object_bytes = 10);
        refuse(&|p| p.fragments[1].byte_offset += 1);
        refuse(&|p| {
            p.fragments[0].samples =
                base64::engine::general_purpose::STANDARD.encode(encode_samples(&[Sample {
                    duration: 1,
                    size: 5000,
                    is_sync: true,
                }]))
        });
        refuse(&|p| p.fragments[0].samples = "!!".into());
    }

    #[test]
    fn fuzz_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/cloud_manifest");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            check_manifest_invariants(&std::fs::read(e.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n > 0, "no seed in {}", dir.display());
    }

    #[test]
    #[ignore = "writes the fuzz seed: cargo test -p vigil-cloud -- --ignored write_seed"]
    fn write_seed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/cloud_manifest");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("two-parts.json"),
            serde_json::to_vec_pretty(&sample_manifest()).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn names() {
        let l = Layout::new("vigil/home");
        assert_eq!(l.full("d/ab").as_ref(), "vigil/home/d/ab");
        assert_eq!(l.relative("vigil/home/d/ab"), Some("d/ab"));
        assert_eq!(l.relative("other/d/ab"), None);
        assert_eq!(Layout::new("").full("keys/1").as_ref(), "keys/1");
        let p = new_part_name();
        assert_eq!(p.len(), 34);
        assert_ne!(p, new_part_name());
        let k = [7u8; 32];
        let d = manifest_dir(&k, "door", "main", 3_600_000_000);
        assert_eq!(d.len(), 66);
        assert_eq!(d, manifest_dir(&k, "door", "main", 3_600_000_000));
        assert_ne!(d, manifest_dir(&k, "door", "main", 7_200_000_000));
        assert_ne!(d, manifest_dir(&[8u8; 32], "door", "main", 3_600_000_000));
        // Nothing of the camera in the name.
        assert!(!d.contains("door"));
        let n = manifest_name(&d, 12);
        assert_eq!(manifest_version(&n), Some((d.as_str(), 12)));
        assert_eq!(manifest_version("m/x/12"), None);
        assert_eq!(manifest_version("d/0000000012"), None);
    }
}
