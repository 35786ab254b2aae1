//! Offsite share links: a clip that keeps playing for its recipient when the recorder is
//! off, and that the storage provider cannot read.
//!
//! The recorder encrypts the clip (a progressive MP4) under a fresh random key, uploads it
//! and a static viewer page to the cloud tier's bucket, and hands the owner a link: a
//! presigned URL of the page whose **fragment** (after `#`, which browsers never send) holds
//! the key, the clip's presigned URL and its metadata. The page fetches the clip from the same
//! bucket, decrypts it with WebCrypto and plays it. `docs/cloud.md` ("Offsite shares") has
//! what the provider sees and the limits.
//!
//! # Format `VGS1` (sans-IO: [`ShareSealer`], [`ShareOpener`])
//!
//! ```text
//! "VGS1"  then for i = 0, 1, …:  AES-256-GCM(key, IV_i, chunk_i) ‖ tag_i (16 bytes)
//! chunk_i = plaintext[i·2^20 .. (i+1)·2^20)   the last may be shorter; an empty
//!                                             plaintext is one final empty chunk
//! IV_i    = u64_be(i) ‖ u32_be(final ? 1 : 0), no AAD
//! ```
//!
//! The index in the IV makes reordering or dropping a middle chunk fail to authenticate;
//! the final flag makes cutting the file at a chunk boundary fail too (the last chunk left
//! was sealed as not final). The IVs are a counter, which is safe because every share has its
//! own key, used for nothing else. A final chunk may be a full 1 MiB, so a reader knows a
//! chunk is not the last only once a byte after it has arrived.
//!
//! AEAD: `ring` (0.17), already built for rustls, so no new crate; its AES-GCM uses AES-NI
//! and carry-less multiplication (or ARMv8 crypto) in constant time, and falls back to a
//! constant-time software AES. RustCrypto's `aes-gcm` is not in the lock file, and `aws-lc-rs`
//! would add a C build to the cloud crate for the same primitive.
//!
//! # Objects
//!
//! `<prefix>/s/<id>/c` (the sealed clip) and `<prefix>/s/<id>/p` (the page), `id` 32 random
//! hex: nothing in a name says which camera or when. The rest of the crate lists only `d/`,
//! `m/` and `keys/`, so shares are neither restored nor expired by the cloud retention.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt as _;
use http::Method;
use object_store::aws::AmazonS3;
use object_store::signer::Signer as _;
use object_store::{
    Attribute, Attributes, MultipartUpload, ObjectStore as _, PutMultipartOptions, PutOptions,
    PutPayload, PutPayloadMut,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::RngCore as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::layout::Layout;
use crate::{CloudConfig, Error};

/// The first four bytes of a sealed share.
pub const MAGIC: &[u8; 4] = b"VGS1";
/// Plaintext bytes per chunk (the last chunk may be shorter).
pub const CHUNK_LEN: usize = 1 << 20;
/// The AES-GCM tag after each chunk's ciphertext.
pub const TAG_LEN: usize = 16;
/// A sealed full chunk.
const SEALED_LEN: usize = CHUNK_LEN + TAG_LEN;
/// The longest a share can live: SigV4 presigned URLs expire after at most 7 days.
pub const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
/// Multipart part size of the clip upload: a multiple of the 5 MiB S3 minimum, all parts
/// equal (R2 requires it), and the bound on what publishing holds in memory (two parts in
/// flight and one filling: 24 MiB).
const PART_LEN: usize = 8 << 20;
/// Parts uploading at once.
const PARTS_IN_FLIGHT: usize = 2;

/// The viewer page's template; `{{DECRYPT_JS}}` and `{{CSP}}` are filled in by [`page`].
const PAGE_TEMPLATE: &str = include_str!("share_page.html");
/// The browser's decryptor, inlined in the page (and tested under Node).
const DECRYPT_JS: &str = include_str!("share_decrypt.js");

/// A share's AES-256 key. Its `Debug` does not show it.
#[derive(Clone)]
pub struct ShareKey([u8; 32]);

impl ShareKey {
    /// 32 fresh bytes from the OS's RNG.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self(k)
    }

    /// A key given as bytes (a link's `k`, a test vector).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key, as it goes into a link.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn aead(&self) -> LessSafeKey {
        // AES-256-GCM accepts every 32-byte key: `new` fails only on a wrong length.
        match UnboundKey::new(&AES_256_GCM, &self.0) {
            Ok(k) => LessSafeKey::new(k),
            Err(_) => unreachable!("a 32-byte key is an AES-256 key"),
        }
    }
}

impl std::fmt::Debug for ShareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShareKey(<redacted>)")
    }
}

/// Why sealed bytes do not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// The bytes do not start with `VGS1`.
    #[error("not an offsite share (no VGS1 magic)")]
    BadMagic,
    /// The file stops before its final chunk (cut short, at a chunk boundary or inside one).
    #[error("the share is cut short: its final chunk is missing")]
    Truncated,
    /// A chunk does not authenticate: a wrong key, a changed byte, or chunks moved.
    #[error("chunk {index} does not decrypt: a wrong key, or the file was altered")]
    Chunk {
        /// Which chunk (from 0).
        index: u64,
    },
}

impl From<ShareError> for Error {
    fn from(e: ShareError) -> Self {
        Error::Crypto {
            context: "offsite share".into(),
            message: e.to_string(),
        }
    }
}

/// IV of chunk `index`: u64 big-endian index ‖ u32 big-endian final flag.
fn nonce(index: u64, last: bool) -> Nonce {
    let mut iv = [0u8; 12];
    iv[..8].copy_from_slice(&index.to_be_bytes());
    iv[8..].copy_from_slice(&u32::from(last).to_be_bytes());
    Nonce::assume_unique_for_key(iv)
}

/// The sealed size of `plain_len` bytes of plaintext.
pub fn sealed_len(plain_len: u64) -> u64 {
    let chunks = plain_len.div_ceil(CHUNK_LEN as u64).max(1);
    MAGIC.len() as u64 + plain_len + chunks * TAG_LEN as u64
}

/// Streaming encryption: [`push`](Self::push) plaintext, send what it returns, then
/// [`finish`](Self::finish). Holds at most one chunk of plaintext.
#[derive(Debug)]
pub struct ShareSealer {
    key: LessSafeKey,
    index: u64,
    buf: Vec<u8>,
    started: bool,
}

impl ShareSealer {
    /// A sealer under `key` (which must seal nothing else: the IVs are a counter).
    pub fn new(key: &ShareKey) -> Self {
        Self {
            key: key.aead(),
            index: 0,
            buf: Vec::with_capacity(SEALED_LEN),
            started: false,
        }
    }

    /// Takes plaintext; returns the sealed bytes now known (the magic first, then every
    /// chunk that more plaintext follows), possibly none.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<Bytes> {
        let mut out = self.start();
        while !data.is_empty() {
            if self.buf.len() == CHUNK_LEN {
                // A byte follows this full chunk, so it is not the final one.
                out.push(self.seal(false));
            }
            let n = (CHUNK_LEN - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        out
    }

    /// The rest: the magic if nothing was sent yet, and the final chunk.
    pub fn finish(mut self) -> Vec<Bytes> {
        let mut out = self.start();
        out.push(self.seal(true));
        out
    }

    fn start(&mut self) -> Vec<Bytes> {
        if std::mem::replace(&mut self.started, true) {
            Vec::new()
        } else {
            vec![Bytes::from_static(MAGIC)]
        }
    }

    fn seal(&mut self, last: bool) -> Bytes {
        let mut chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(SEALED_LEN));
        // Fails only past ring's per-call limit (~64 GiB), far above a 1 MiB chunk.
        if self
            .key
            .seal_in_place_append_tag(nonce(self.index, last), Aad::empty(), &mut chunk)
            .is_err()
        {
            unreachable!("AES-GCM seals 1 MiB");
        }
        self.index += 1;
        Bytes::from(chunk)
    }
}

/// Streaming decryption: [`push`](Self::push) sealed bytes as they arrive, get the plaintext
/// chunks known not to be the last; [`finish`](Self::finish) gives the final one. Holds at
/// most one sealed chunk.
#[derive(Debug)]
pub struct ShareOpener {
    key: LessSafeKey,
    index: u64,
    magic: usize,
    buf: Vec<u8>,
}

impl ShareOpener {
    /// An opener under `key`.
    pub fn new(key: &ShareKey) -> Self {
        Self {
            key: key.aead(),
            index: 0,
            magic: 0,
            buf: Vec::with_capacity(SEALED_LEN),
        }
    }

    /// Takes sealed bytes; returns the plaintext of every chunk that more bytes follow.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<Vec<u8>>, ShareError> {
        while self.magic < MAGIC.len() {
            let Some((&b, rest)) = data.split_first() else {
                return Ok(Vec::new());
            };
            if b != MAGIC[self.magic] {
                return Err(ShareError::BadMagic);
            }
            self.magic += 1;
            data = rest;
        }
        let mut out = Vec::new();
        while !data.is_empty() {
            if self.buf.len() == SEALED_LEN {
                out.push(self.open(false)?);
            }
            let n = (SEALED_LEN - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        Ok(out)
    }

    /// The end of the bytes: the final chunk's plaintext.
    pub fn finish(mut self) -> Result<Vec<u8>, ShareError> {
        if self.magic < MAGIC.len() || self.buf.len() < TAG_LEN {
            return Err(ShareError::Truncated);
        }
        let sealed = self.buf.clone();
        match self.open(true) {
            Ok(p) => Ok(p),
            // A full chunk that opens as not final: the chunks after it were cut off. The
            // second try costs one chunk's decryption, and only on failure.
            Err(e) if sealed.len() == SEALED_LEN => {
                self.buf = sealed;
                match self.open(false) {
                    Ok(_) => Err(ShareError::Truncated),
                    Err(_) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn open(&mut self, last: bool) -> Result<Vec<u8>, ShareError> {
        let mut chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(SEALED_LEN));
        let index = self.index;
        let n = self
            .key
            .open_in_place(nonce(index, last), Aad::empty(), &mut chunk)
            .map_err(|_| ShareError::Chunk { index })?
            .len();
        chunk.truncate(n);
        self.index += 1;
        Ok(chunk)
    }
}

/// Seals a whole plaintext held in memory (tests, small clips).
pub fn seal(key: &ShareKey, plain: &[u8]) -> Vec<u8> {
    let mut s = ShareSealer::new(key);
    let mut out: Vec<u8> = s.push(plain).into_iter().flatten().collect();
    out.extend(s.finish().into_iter().flatten());
    out
}

/// Opens a whole sealed share held in memory.
pub fn open(key: &ShareKey, sealed: &[u8]) -> Result<Vec<u8>, ShareError> {
    let mut o = ShareOpener::new(key);
    let mut out: Vec<u8> = o.push(sealed)?.into_iter().flatten().collect();
    out.extend(o.finish()?);
    Ok(out)
}

/// What the recipient's page shows about a clip. It travels only in the link's fragment
/// (base64url JSON), never in an object or a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsiteMeta {
    /// The camera's name.
    pub camera: String,
    /// Start of the clip, µs since the epoch (UTC).
    pub start_us: i64,
    /// End of the clip, µs since the epoch (UTC).
    pub end_us: i64,
    /// The owner's words ("Break-in at the back door").
    pub label: String,
    /// Whether the page offers a download link (playback alone is no protection: whoever
    /// can play a clip can record it).
    pub allow_download: bool,
    /// The downloaded file's name.
    pub file_name: String,
}

/// A published share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsiteShare {
    /// 32 lowercase hex: names the objects, and what [`OffsitePublisher::delete`] takes.
    pub id: String,
    /// The link: the presigned page URL, `#`, the fragment (holds the key: a secret).
    pub url: String,
    /// When the presigned URLs stop working, µs since the epoch.
    pub expires_us: i64,
    /// Bytes of the clip (plaintext MP4) the recipient gets.
    pub clip_bytes: u64,
}

/// The parts of a link's fragment (`k=…&c=…&m=…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// The clip's key.
    pub key: ShareKey,
    /// The clip's presigned URL.
    pub clip_url: String,
    /// The clip's metadata.
    pub meta: OffsiteMeta,
}

impl PartialEq for ShareKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for ShareKey {}

/// Percent-encodes all but RFC 3986's unreserved characters, so that the clip URL's own `&`,
/// `=`, `%` and `#` cannot be taken for the fragment's separators.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl Fragment {
    /// `k=<base64url key>&c=<percent-encoded clip URL>&m=<base64url JSON meta>`.
    pub fn encode(&self) -> Result<String, Error> {
        let meta = serde_json::to_vec(&self.meta)
            .map_err(|e| Error::Corrupt(format!("share metadata: {e}")))?;
        Ok(format!(
            "k={}&c={}&m={}",
            URL_SAFE_NO_PAD.encode(self.key.as_bytes()),
            utf8_percent_encode(&self.clip_url, COMPONENT),
            URL_SAFE_NO_PAD.encode(meta)
        ))
    }

    /// Parses a fragment (with or without its `#`), or a whole link.
    pub fn parse(link: &str) -> Result<Self, Error> {
        let frag = link.rsplit_once('#').map_or(link, |(_, f)| f);
        let bad = |m: &str| Error::Key(format!("share link: {m}"));
        let (mut k, mut c, mut m) = (None, None, None);
        for pair in frag.split('&') {
            match pair.split_once('=') {
                Some(("k", v)) => k = Some(v),
                Some(("c", v)) => c = Some(v),
                Some(("m", v)) => m = Some(v),
                _ => {}
            }
        }
        let key: [u8; 32] = URL_SAFE_NO_PAD
            .decode(k.ok_or_else(|| bad("no key (k)"))?)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| bad("the key (k) is not 32 bytes of base64url"))?;
        let clip_url = percent_encoding::percent_decode_str(c.ok_or_else(|| bad("no clip (c)"))?)
            .decode_utf8()
            .map_err(|_| bad("the clip URL (c) is not UTF-8"))?
            .into_owned();
        let meta = URL_SAFE_NO_PAD
            .decode(m.ok_or_else(|| bad("no metadata (m)"))?)
            .ok()
            .and_then(|m| serde_json::from_slice(&m).ok())
            .ok_or_else(|| bad("the metadata (m) does not parse"))?;
        Ok(Self {
            key: ShareKey::from_bytes(key),
            clip_url,
            meta,
        })
    }
}

/// The viewer page: the template with the decryptor inlined and a CSP that allows exactly
/// the inline script and style, by their SHA-256 (never `'unsafe-inline'`). It holds nothing
/// of any share: the same bytes for every clip.
pub fn page() -> String {
    let html = PAGE_TEMPLATE.replace("{{DECRYPT_JS}}", DECRYPT_JS.trim_end());
    let csp = format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
         connect-src 'self'; media-src blob:; img-src data:; base-uri 'none'; \
         form-action 'none'",
        inline_hash(&html, "<script>", "</script>"),
        inline_hash(&html, "<style>", "</style>"),
    );
    html.replace("{{CSP}}", &csp)
}

/// Base64 SHA-256 of the text between `open` and `close` (CSP Level 2 hash source). The
/// template has one of each; a unit test holds it to that.
fn inline_hash(html: &str, open: &str, close: &str) -> String {
    let body = html
        .split_once(open)
        .and_then(|(_, rest)| rest.split_once(close))
        .map_or("", |(body, _)| body);
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes()))
}

/// Publishes and withdraws offsite shares in the cloud tier's bucket.
#[derive(Debug)]
pub struct OffsitePublisher {
    s3: AmazonS3,
    layout: Layout,
}

impl OffsitePublisher {
    /// A publisher for the configured bucket and prefix.
    pub fn new(cfg: &CloudConfig) -> Result<Self, Error> {
        Ok(Self {
            s3: crate::store::open_s3(cfg)?,
            layout: Layout::new(&cfg.prefix),
        })
    }

    /// Encrypts `clip` (an MP4, streamed: never whole in memory) under a new key, uploads it
    /// and the viewer page, and returns the link, valid for `expires_in` (at most 7 days).
    pub async fn publish(
        &self,
        clip: impl futures::Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
        meta: &OffsiteMeta,
        expires_in: Duration,
    ) -> Result<OffsiteShare, Error> {
        check_expiry(expires_in)?;
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let id = hex::encode(raw);
        let key = ShareKey::generate();
        let clip_path = self.layout.full(&format!("s/{id}/c"));
        let page_path = self.layout.full(&format!("s/{id}/p"));

        let clip_bytes = self.upload_clip(&clip_path, clip, &key).await?;
        let opts = PutOptions {
            attributes: Attributes::from_iter([(
                Attribute::ContentType,
                "text/html; charset=utf-8",
            )]),
            ..Default::default()
        };
        self.s3
            .put_opts(&page_path, PutPayload::from(page()), opts)
            .await?;

        // Both URLs are signed now, so both die at the same instant.
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let clip_url = self
            .s3
            .signed_url(Method::GET, &clip_path, expires_in)
            .await?;
        let page_url = self
            .s3
            .signed_url(Method::GET, &page_path, expires_in)
            .await?;
        let fragment = Fragment {
            key,
            clip_url: clip_url.to_string(),
            meta: meta.clone(),
        }
        .encode()?;
        Ok(OffsiteShare {
            id,
            url: format!("{page_url}#{fragment}"),
            expires_us: now_us.saturating_add(expires_in.as_micros() as i64),
            clip_bytes,
        })
    }

    /// Seals and uploads the clip in `PART_LEN` parts; aborts the upload on any error so no
    /// orphan parts stay billed. Returns the plaintext bytes.
    async fn upload_clip(
        &self,
        path: &object_store::path::Path,
        clip: impl futures::Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
        key: &ShareKey,
    ) -> Result<u64, Error> {
        // The loop below asks once more after the end (to finish the sealer); many streams
        // (`unfold`, an HTTP body) panic when polled past their end, so fuse it.
        let mut clip = clip.fuse();
        let opts = PutMultipartOptions {
            attributes: Attributes::from_iter([(
                Attribute::ContentType,
                "application/octet-stream",
            )]),
            ..Default::default()
        };
        let mut upload = self.s3.put_multipart_opts(path, opts).await?;
        let result = async {
            let mut sealer = Some(ShareSealer::new(key));
            let mut in_flight = futures::stream::FuturesUnordered::new();
            let mut part = PutPayloadMut::new();
            let mut plain = 0u64;
            loop {
                let sealed = match clip.next().await {
                    Some(item) => {
                        let data = item.map_err(|e| Error::io("reading the clip to share", e))?;
                        plain += data.len() as u64;
                        sealer.as_mut().map_or_else(Vec::new, |s| s.push(&data))
                    }
                    None => match sealer.take() {
                        Some(s) => s.finish(),
                        None => break,
                    },
                };
                for mut b in sealed {
                    while !b.is_empty() {
                        let n = (PART_LEN - part.content_length()).min(b.len());
                        part.push(b.split_to(n));
                        if part.content_length() == PART_LEN {
                            while in_flight.len() >= PARTS_IN_FLIGHT {
                                if let Some(r) = in_flight.next().await {
                                    r?;
                                }
                            }
                            in_flight.push(upload.put_part(std::mem::take(&mut part).freeze()));
                        }
                    }
                }
            }
            if part.content_length() > 0 {
                in_flight.push(upload.put_part(part.freeze()));
            }
            while let Some(r) = in_flight.next().await {
                r?;
            }
            upload.complete().await?;
            Ok::<_, Error>(plain)
        }
        .await;
        if result.is_err() {
            if let Err(e) = upload.abort().await {
                tracing::warn!("offsite share: aborting the failed upload of {path}: {e}");
            }
        }
        result
    }

    /// Withdraws a share: deletes its clip and page (an absent object is fine). The link
    /// then answers 403 or 404.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        if id.len() != 32 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Error::Config(format!(
                "share id {id:?}: expected 32 lowercase hex digits"
            )));
        }
        for name in ["c", "p"] {
            match self
                .s3
                .delete(&self.layout.full(&format!("s/{id}/{name}")))
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// A share lives more than nothing and at most [`MAX_EXPIRY`].
fn check_expiry(expires_in: Duration) -> Result<(), Error> {
    if expires_in.is_zero() || expires_in > MAX_EXPIRY {
        return Err(Error::Config(format!(
            "a share link expires after 1 s to 7 days (presigned S3 URLs live at most 7 days), \
             not {expires_in:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = CHUNK_LEN;

    fn pattern(n: usize) -> Vec<u8> {
        // Period 251 (a prime), so no two chunks hold the same bytes.
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn round_trip_at_chunk_edges() {
        let key = ShareKey::generate();
        for n in [0, 1, MIB - 1, MIB, MIB + 1, 3 * MIB + MIB / 2] {
            let plain = pattern(n);
            let sealed = seal(&key, &plain);
            assert_eq!(sealed.len() as u64, sealed_len(n as u64), "size {n}");
            assert_eq!(&sealed[..4], MAGIC);
            assert_eq!(open(&key, &sealed).expect("opens"), plain, "size {n}");
        }
    }

    #[test]
    fn streaming_in_odd_pieces_matches_whole() {
        let key = ShareKey::from_bytes([7; 32]);
        let plain = pattern(2 * MIB + 12345);
        let whole = seal(&key, &plain);
        let mut s = ShareSealer::new(&key);
        let mut out = Vec::new();
        for piece in plain.chunks(65_537) {
            for b in s.push(piece) {
                out.extend_from_slice(&b);
            }
            // Never more than one chunk of plaintext held back.
            assert!(s.buf.len() <= CHUNK_LEN);
        }
        for b in s.finish() {
            out.extend_from_slice(&b);
        }
        assert_eq!(out, whole);
        let mut o = ShareOpener::new(&key);
        let mut back = Vec::new();
        for piece in whole.chunks(3).take(2) {
            back.extend(o.push(piece).expect("push").into_iter().flatten());
        }
        for piece in whole[6..].chunks(100_003) {
            back.extend(o.push(piece).expect("push").into_iter().flatten());
        }
        back.extend(o.finish().expect("finish"));
        assert_eq!(back, plain);
    }

    /// Offsets of each sealed chunk in `sealed`.
    fn chunks(sealed: &[u8]) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut at = MAGIC.len();
        while at < sealed.len() {
            let end = (at + SEALED_LEN).min(sealed.len());
            out.push(at..end);
            at = end;
        }
        out
    }

    #[test]
    fn truncation_is_detected() {
        let key = ShareKey::generate();
        for n in [MIB + 1, 3 * MIB + MIB / 2, 2 * MIB] {
            let sealed = seal(&key, &pattern(n));
            let c = chunks(&sealed);
            let cut = &sealed[..c[c.len() - 1].start];
            assert_eq!(open(&key, cut), Err(ShareError::Truncated), "size {n}");
        }
        let sealed = seal(&key, &pattern(10));
        assert_eq!(open(&key, &sealed[..4]), Err(ShareError::Truncated));
        assert_eq!(open(&key, &sealed[..2]), Err(ShareError::Truncated));
        assert_eq!(open(&key, &[]), Err(ShareError::Truncated));
        // Cut inside the final chunk: it no longer authenticates.
        assert_eq!(
            open(&key, &sealed[..sealed.len() - 1]),
            Err(ShareError::Chunk { index: 0 })
        );
    }

    #[test]
    fn reordering_is_detected() {
        let key = ShareKey::generate();
        let sealed = seal(&key, &pattern(3 * MIB + MIB / 2));
        let c = chunks(&sealed);
        let mut swapped = sealed[..4].to_vec();
        swapped.extend_from_slice(&sealed[c[1].clone()]);
        swapped.extend_from_slice(&sealed[c[0].clone()]);
        swapped.extend_from_slice(&sealed[c[2].start..]);
        assert_eq!(open(&key, &swapped), Err(ShareError::Chunk { index: 0 }));
        // A middle chunk dropped.
        let mut dropped = sealed[..c[1].start].to_vec();
        dropped.extend_from_slice(&sealed[c[2].start..]);
        assert_eq!(open(&key, &dropped), Err(ShareError::Chunk { index: 1 }));
    }

    #[test]
    fn flipped_bit_wrong_key_and_bad_magic_fail() {
        let key = ShareKey::generate();
        let plain = pattern(MIB + 1);
        let sealed = seal(&key, &plain);
        for (at, index) in [(4, 0), (4 + SEALED_LEN - 1, 0), (sealed.len() - 1, 1)] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x10;
            assert_eq!(
                open(&key, &bad),
                Err(ShareError::Chunk { index }),
                "byte {at}"
            );
        }
        assert_eq!(
            open(&ShareKey::generate(), &sealed),
            Err(ShareError::Chunk { index: 0 })
        );
        let mut bad = sealed.clone();
        bad[3] = b'2';
        assert_eq!(open(&key, &bad), Err(ShareError::BadMagic));
        let e: Error = ShareError::Truncated.into();
        assert!(matches!(e, Error::Crypto { .. }));
    }

    /// The test vector the browser's decryptor is checked against
    /// (`crates/web/assets-tests/offsite-decrypt.test.mjs`): 1 MiB + 100 bytes of
    /// `i % 251` under the key 0, 1, …, 31. The format is deterministic given the key, so
    /// this regenerates it and compares; `VIGIL_WRITE_FIXTURES=1` rewrites it.
    #[test]
    fn browser_vector_matches() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let key = ShareKey::from_bytes(std::array::from_fn(|i| i as u8));
        let plain = pattern(MIB + 100);
        let sealed = seal(&key, &plain);
        let meta = serde_json::json!({
            "key_hex": hex::encode(key.as_bytes()),
            "plaintext": "byte i is i % 251",
            "plaintext_len": plain.len(),
            "plaintext_sha256": hex::encode(Sha256::digest(&plain)),
            "sealed_len": sealed.len(),
            "sealed_sha256": hex::encode(Sha256::digest(&sealed)),
        });
        let bin = dir.join("share-vector.bin");
        let json = dir.join("share-vector.json");
        if std::env::var_os("VIGIL_WRITE_FIXTURES").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&bin, &sealed).unwrap();
            std::fs::write(&json, serde_json::to_string_pretty(&meta).unwrap() + "\n").unwrap();
        }
        assert!(
            std::fs::read(&bin).unwrap() == sealed,
            "share-vector.bin drifted"
        );
        let on_disk: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(on_disk, meta);
    }

    #[test]
    fn fragment_round_trip_and_encoding() {
        let f = Fragment {
            key: ShareKey::from_bytes([0xfb; 32]),
            clip_url: "https://b.example/s/ab/c?X-Amz-Credential=a%2Fb&X-Amz-Signature=f#x".into(),
            meta: OffsiteMeta {
                camera: "front door".into(),
                start_us: 1_796_000_000_000_000,
                end_us: 1_796_000_030_000_000,
                label: "Parcel taken & <b>gone</b>".into(),
                allow_download: true,
                file_name: "front door.mp4".into(),
            },
        };
        let s = f.encode().unwrap();
        assert!(s.starts_with("k=-_v7"), "{s}");
        let c = s.split('&').nth(1).unwrap();
        assert!(
            c.starts_with("c=https%3A%2F%2Fb.example%2Fs%2Fab%2Fc%3FX-Amz-Credential%3Da%252Fb")
        );
        assert!(!s.contains('#') && !s.contains(' ') && s.matches('&').count() == 2);
        assert_eq!(Fragment::parse(&format!("https://x/p?q=1#{s}")).unwrap(), f);
        assert!(matches!(
            Fragment::parse("k=abc&c=x&m=e30"),
            Err(Error::Key(_))
        ));
    }

    #[test]
    fn page_csp_hashes_the_inline_texts() {
        let p = page();
        assert_eq!(p.matches("<script>").count(), 1);
        assert_eq!(p.matches("<style>").count(), 1);
        assert!(!p.contains("{{"), "a placeholder left");
        assert!(!p.contains("unsafe-inline"));
        let script = p
            .split_once("<script>")
            .unwrap()
            .1
            .split_once("</script>")
            .unwrap()
            .0;
        let style = p
            .split_once("<style>")
            .unwrap()
            .1
            .split_once("</style>")
            .unwrap()
            .0;
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(t));
        assert!(p.contains(&format!("script-src 'sha256-{}'", b64(script))));
        assert!(p.contains(&format!("style-src 'sha256-{}'", b64(style))));
        assert!(script.contains("function vigilDecryptShare"));
        for must in [
            "<meta name=\"robots\" content=\"noindex, nofollow\">",
            "<meta name=\"referrer\" content=\"no-referrer\">",
            "default-src 'none';",
            "connect-src 'self'; media-src blob:; img-src data:; base-uri 'none'; form-action 'none'",
        ] {
            assert!(p.contains(must), "{must}");
        }
    }

    #[test]
    fn expiry_limits() {
        assert!(check_expiry(Duration::ZERO).is_err());
        assert!(check_expiry(MAX_EXPIRY + Duration::from_secs(1)).is_err());
        assert!(check_expiry(MAX_EXPIRY).is_ok());
        assert!(check_expiry(Duration::from_secs(1)).is_ok());
    }
}
