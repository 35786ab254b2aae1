//! The audio half of the segmenter (sans-IO): places the camera's audio frames on the open
//! file's timeline and hands each fragment the frames that fall in its video time span.
//!
//! - Audio has its own clock (the sample rate). Its place on the file's 90 kHz video
//!   timeline is fixed once per file, by the first audio frame placed in it: its capture
//!   time against the latest access unit's capture time and pts. Later frames follow the
//!   audio pts from there, so reception jitter does not move them and their decode times
//!   stay monotonic (a frame that would go back is dropped).
//! - Frames before the file's first key frame (or with no file open) are dropped.
//! - A fragment takes the pending frames starting before its video end; a frame that
//!   arrives after its fragment was written goes into the next one, at its own decode
//!   time (`tfdt` per run), so nothing is shifted.
//! - The file's audio track is fixed at its start: frames with other parameters (the
//!   camera's audio changed, or audio appeared after the file started) are dropped and
//!   the file ends at the next key frame, like a video parameter change.

use std::sync::Arc;
use vigil_media::time::{rescale, MICROS_PER_SEC, VIDEO_HZ};

use bytes::Bytes;
use vigil_media::fmp4::{AudioTrack, Sample, Track};

use crate::db::{decode_samples, encode_samples};
use crate::segment::TIMESCALE;
use vigil_media::audio::{AudioFrame, AudioParams};

/// The track id of audio in recording files.
pub const AUDIO_TRACK_ID: u32 = 2;

/// The recording track for audio `params`.
pub fn audio_track(params: &AudioParams) -> Track {
    Track::Audio(AudioTrack {
        track_id: AUDIO_TRACK_ID,
        timescale: params.sample_rate.max(1),
        channels: params.channels.max(1),
        codec: params.codec.clone(),
    })
}

/// The audio samples of one fragment. Their bytes follow the video samples' in the `mdat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioRun {
    /// Decode time of the first audio sample (`tfdt`), in the audio track's timescale.
    pub base_decode_time: u64,
    /// The sample table.
    pub samples: Vec<Sample>,
}

impl AudioRun {
    /// Encodes the run for the `audio` column: `tfdt` u64, then [`encode_samples`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.base_decode_time.to_be_bytes().to_vec();
        out.extend_from_slice(&encode_samples(&self.samples));
        out
    }

    /// Decodes an `audio` column; `None` if it is too short to hold a `tfdt`.
    pub fn decode(blob: &[u8]) -> Option<AudioRun> {
        let (t, rest) = blob.split_first_chunk::<8>()?;
        Some(AudioRun {
            base_decode_time: u64::from_be_bytes(*t),
            samples: decode_samples(rest),
        })
    }
}

/// Where the latest access unit is, to place an audio frame by capture time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VideoRef {
    /// Its decode time in the file, 90 kHz.
    pub t90k: i64,
    /// Its capture time, µs since the epoch.
    pub capture_us: i64,
}

/// Audio state of one stream. See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct AudioMux {
    /// The stream is recorded with audio: a new recording waits (≤ one fragment) for the
    /// audio parameters so that its first file has an audio track.
    pub expect: bool,
    /// Gave up waiting for audio once (the camera sends none); no more waiting.
    pub gave_up: bool,
    /// The latest audio parameters seen.
    pub params: Option<Arc<AudioParams>>,
    /// The open file's audio track parameters.
    pub file_params: Option<Arc<AudioParams>>,
    /// The audio parameters differ from the file's: end it at the next key frame.
    pub changed: bool,
    /// (audio pts, decode time in the file) of the frame that fixed the file's mapping.
    anchor: Option<(i64, u64)>,
    /// Placed frames not yet written: (decode time in the file, frame).
    pending: Vec<(u64, AudioFrame)>,
    /// Smallest decode time the next frame may have.
    next_t: u64,
    /// Frames dropped (no file, before the file start, going back, other parameters).
    pub dropped: u64,
}

impl AudioMux {
    /// Whether a fresh recording should wait for the audio parameters.
    pub fn waiting(&self) -> bool {
        self.expect && !self.gave_up && self.params.is_none()
    }

    /// Notes the parameters of a received frame.
    pub fn observe(&mut self, frame: &AudioFrame) {
        if self.params.as_deref() != Some(&*frame.params) {
            self.params = Some(frame.params.clone());
        }
    }

    /// A new file starts; returns its audio track and the frames left over from the
    /// previous file, to be placed again on the new timeline.
    pub fn start_file(&mut self) -> (Option<Track>, Vec<AudioFrame>) {
        self.file_params = self.params.clone();
        self.changed = false;
        self.anchor = None;
        self.next_t = 0;
        let left = std::mem::take(&mut self.pending);
        let track = self.file_params.as_deref().map(audio_track);
        (track, left.into_iter().map(|(_, f)| f).collect())
    }

    /// Forgets the open file's audio (no file open any more).
    pub fn reset(&mut self) {
        self.file_params = None;
        self.anchor = None;
        self.pending.clear();
        self.changed = false;
    }

    /// Places a frame of the open file, given the latest access unit.
    pub fn place(&mut self, frame: AudioFrame, video: VideoRef) {
        let Some(fp) = &self.file_params else {
            // Audio appeared after the file started: a new file at the next key frame.
            self.changed = true;
            self.dropped += 1;
            return;
        };
        if **fp != *frame.params {
            self.changed = true;
            self.dropped += 1;
            return;
        }
        let rate = i128::from(fp.sample_rate.max(1));
        let t = match self.anchor {
            Some((pts, t)) => i128::from(t) + i128::from(frame.pts) - i128::from(pts),
            None => {
                let t90 = i128::from(video.t90k)
                    + rescale(
                        i128::from(frame.capture_us) - i128::from(video.capture_us),
                        MICROS_PER_SEC,
                        VIDEO_HZ,
                    );
                t90 * rate / i128::from(TIMESCALE)
            }
        };
        let Ok(t) = u64::try_from(t) else {
            self.dropped += 1;
            return;
        };
        if t < self.next_t {
            self.dropped += 1;
            return;
        }
        if self.anchor.is_none() {
            self.anchor = Some((frame.pts, t));
        }
        self.next_t = t + 1;
        self.pending.push((t, frame));
    }

    /// Takes the pending frames that start before `end_90k` (the fragment's video end) as
    /// an audio run and their bytes. `None` if the file has no audio track or none is due.
    pub fn take_run(&mut self, end_90k: u64) -> Option<(AudioRun, Vec<Bytes>)> {
        let rate = u128::from(self.file_params.as_ref()?.sample_rate.max(1));
        let end = u64::try_from(u128::from(end_90k) * rate / u128::from(TIMESCALE)).ok()?;
        let n = self.pending.iter().take_while(|(t, _)| *t < end).count();
        if n == 0 {
            return None;
        }
        let next_after = self.pending.get(n).map(|(t, _)| *t);
        let taken: Vec<(u64, AudioFrame)> = self.pending.drain(..n).collect();
        let base_decode_time = taken.first().map_or(0, |(t, _)| *t);
        let mut samples = Vec::with_capacity(taken.len());
        let mut data = Vec::with_capacity(taken.len());
        for (i, (t, f)) in taken.iter().enumerate() {
            // Contiguous within the run: a frame lasts until the next one starts.
            let duration = match taken.get(i + 1).map(|(n, _)| *n).or(next_after) {
                Some(next) => u32::try_from(next - t).unwrap_or(u32::MAX),
                None => f.duration.max(1),
            };
            samples.push(Sample {
                duration,
                size: u32::try_from(f.data.len()).unwrap_or(u32::MAX),
                is_sync: true,
            });
            data.push(f.data.clone());
        }
        Some((
            AudioRun {
                base_decode_time,
                samples,
            },
            data,
        ))
    }
}

#[cfg(test)]
#[path = "segment_audio_tests.rs"]
mod tests;
