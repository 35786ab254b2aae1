//! Which camera audio Vigil records: the SDP encoding names of the codecs in
//! [`vigil_media::audio::AudioCodec`].

use bytes::Bytes;
use vigil_media::audio::AudioCodec;

/// The codec an SDP `rtpmap` encoding name (lower case, as retina reports it) stands for,
/// if Vigil records it. AAC's config is filled in once retina has parsed it.
pub(crate) fn codec_of_encoding_name(name: &str) -> Option<AudioCodec> {
    match name {
        "mpeg4-generic" => Some(AudioCodec::Aac {
            config: Bytes::new(),
        }),
        "pcmu" => Some(AudioCodec::Pcmu),
        "pcma" => Some(AudioCodec::Pcma),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_the_recorded_codecs_only() {
        assert!(matches!(
            codec_of_encoding_name("mpeg4-generic"),
            Some(AudioCodec::Aac { .. })
        ));
        assert_eq!(codec_of_encoding_name("pcmu"), Some(AudioCodec::Pcmu));
        assert_eq!(codec_of_encoding_name("pcma"), Some(AudioCodec::Pcma));
        assert_eq!(codec_of_encoding_name("g726-32"), None);
        assert_eq!(codec_of_encoding_name("opus"), None);
    }
}
