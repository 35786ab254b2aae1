//! HTTP/RTSP Digest access authentication: RFC 7616 (SHA-256), with the RFC 2617 MD5 and
//! RFC 2069 (no `qop`) forms that older RTSP clients still send.
//!
//! This module is sans-IO: it parses `Authorization` headers, computes responses and mints and
//! checks stateless nonces. Policy (which user, which realm, throttling) lives in
//! [`crate::Authenticator`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// Longest `Authorization` header value we parse; real ones are ~400 bytes.
pub const MAX_HEADER_LEN: usize = 4096;
/// Longest value of a single auth-param.
pub const MAX_PARAM_LEN: usize = 1024;
/// Most auth-params in one header (known ones are 11).
pub const MAX_PARAMS: usize = 32;

/// Why an `Authorization: Digest ...` header was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The header is longer than [`MAX_HEADER_LEN`] or a value longer than [`MAX_PARAM_LEN`].
    #[error("header too long")]
    TooLong,
    /// The scheme is not `Digest`.
    #[error("not a Digest credential")]
    NotDigest,
    /// The auth-param list does not follow RFC 7235 §2.1.
    #[error("malformed auth-param list: {0}")]
    Syntax(&'static str),
    /// The same parameter appears twice (RFC 7235 §2.1 forbids it).
    #[error("duplicate parameter {0:?}")]
    Duplicate(String),
    /// A required parameter is absent.
    #[error("missing parameter {0}")]
    Missing(&'static str),
    /// A parameter has a value we do not accept.
    #[error("unsupported or invalid value for {0}")]
    Invalid(&'static str),
}

/// Hash algorithm of a Digest challenge/response (RFC 7616 §3.3). The `-sess` variants are not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `SHA-256`, preferred (RFC 7616).
    Sha256,
    /// `MD5`, for old clients (RFC 2617); also the default when `algorithm` is absent.
    Md5,
}

impl Algorithm {
    /// The token used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Md5 => "MD5",
        }
    }

    /// Lower-case hex digest of `data`.
    pub fn hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Sha256 => hex::encode(Sha256::digest(data)),
            Algorithm::Md5 => hex::encode(Md5::digest(data)),
        }
    }
}

/// Quality of protection (RFC 7616 §3.4). Only `auth` is offered; absence means RFC 2069 style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// `qop=auth`.
    Auth,
}

/// The fields of an `Authorization: Digest ...` header we use. Unknown parameters are ignored
/// (RFC 7616 §3.4: "any unrecognized directive MUST be ignored").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    /// `username` (or the decoded `username*`, RFC 7616 §3.4.4).
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`, as issued by us.
    pub nonce: String,
    /// `uri`: the request-target the client signed.
    pub uri: String,
    /// `response`: hex digest, lower-cased on parse.
    pub response: String,
    /// `algorithm`, defaulting to MD5 when absent (RFC 7616 §3.3).
    pub algorithm: Algorithm,
    /// `qop`, absent for RFC 2069 clients.
    pub qop: Option<Qop>,
    /// `nc` nonce count (8 hex digits), present iff `qop` is.
    pub nc: Option<u32>,
    /// `cnonce`, present iff `qop` is.
    pub cnonce: Option<String>,
    /// `opaque`, echoed from the challenge if any.
    pub opaque: Option<String>,
}

/// One auth-param: lower-cased name and unescaped value.
type Param = (String, String);

fn is_tchar(b: u8) -> bool {
    // RFC 7230 §3.2.6 tchar
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses the auth-param list after the scheme: RFC 7235 §2.1
/// `#auth-param`, `auth-param = token BWS "=" BWS ( token / quoted-string )`, with the
/// RFC 7230 §7 list rule (empty elements allowed) and §3.2.6 quoted-string / quoted-pair.
fn parse_params(s: &str) -> Result<Vec<Param>, DigestError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out: Vec<Param> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    loop {
        // Skip OWS and empty list elements.
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if i == start {
            return Err(DigestError::Syntax("expected parameter name"));
        }
        let name = s[start..i].to_ascii_lowercase();
        skip_ws(&mut i);
        if b.get(i) != Some(&b'=') {
            return Err(DigestError::Syntax("expected '='"));
        }
        i += 1;
        skip_ws(&mut i);
        let value = if b.get(i) == Some(&b'"') {
            i += 1;
            let mut v = Vec::new();
            loop {
                match b.get(i) {
                    None => return Err(DigestError::Syntax("unterminated quoted-string")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                        match b.get(i + 1) {
                            Some(&c) if c == b'\t' || c >= 0x20 && c != 0x7f => v.push(c),
                            _ => return Err(DigestError::Syntax("bad quoted-pair")),
                        }
                        i += 2;
                    }
                    Some(&c) if c == b'\t' || c >= 0x20 && c != 0x7f => {
                        v.push(c);
                        i += 1;
                    }
                    Some(_) => {
                        return Err(DigestError::Syntax("control character in quoted-string"))
                    }
                }
                if v.len() > MAX_PARAM_LEN {
                    return Err(DigestError::TooLong);
                }
            }
            // Input was a &str and we only split at ASCII bytes, so this cannot fail; map anyway.
            String::from_utf8(v).map_err(|_| DigestError::Syntax("invalid UTF-8"))?
        } else {
            let vs = i;
            while i < b.len() && is_tchar(b[i]) {
                i += 1;
            }
            if i == vs {
                return Err(DigestError::Syntax("expected token or quoted-string"));
            }
            s[vs..i].to_owned()
        };
        if value.len() > MAX_PARAM_LEN {
            return Err(DigestError::TooLong);
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(DigestError::Duplicate(name));
        }
        if out.len() >= MAX_PARAMS {
            return Err(DigestError::Syntax("too many parameters"));
        }
        out.push((name, value));
        skip_ws(&mut i);
        match b.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => return Err(DigestError::Syntax("expected ','")),
        }
    }
    Ok(out)
}

/// Splits `Scheme rest` and returns `rest` if the scheme is `scheme` (case-insensitive, RFC 7235 §2.1).
pub fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let header = header.trim_start_matches([' ', '\t']);
    let (s, rest) = match header.find([' ', '\t']) {
        Some(p) => (&header[..p], &header[p..]),
        None => (header, ""),
    };
    s.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// Decodes an RFC 8187 ext-value as used by `username*` (RFC 7616 §3.4.4): `UTF-8''percent-encoded`.
fn decode_ext_value(v: &str) -> Result<String, DigestError> {
    let bad = DigestError::Invalid("username*");
    let (charset, rest) = v.split_once('\'').ok_or(bad.clone())?;
    let (_lang, enc) = rest.split_once('\'').ok_or(bad.clone())?;
    if !charset.eq_ignore_ascii_case("UTF-8") {
        return Err(bad);
    }
    let eb = enc.as_bytes();
    let mut out = Vec::with_capacity(eb.len());
    let mut i = 0;
    while i < eb.len() {
        if eb[i] == b'%' {
            let h = eb.get(i + 1..i + 3).ok_or(bad.clone())?;
            let h = std::str::from_utf8(h).map_err(|_| bad.clone())?;
            out.push(u8::from_str_radix(h, 16).map_err(|_| bad.clone())?);
            i += 3;
        } else {
            out.push(eb[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(out).map_err(|_| bad.clone())?;
    // A plain username cannot carry control characters; neither may the extended form.
    if s.chars().any(|c| c.is_ascii_control()) {
        return Err(bad);
    }
    Ok(s)
}

/// Parses an `Authorization` header value of scheme `Digest` (RFC 7616 §3.4). Never panics;
/// rejects inputs over [`MAX_HEADER_LEN`], duplicate parameters and unsupported algorithms/qops.
pub fn parse_authorization(header: &str) -> Result<DigestCredentials, DigestError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(DigestError::TooLong);
    }
    let rest = strip_scheme(header, "Digest").ok_or(DigestError::NotDigest)?;
    let mut params = parse_params(rest)?;
    let mut take = |name: &str| {
        params
            .iter()
            .position(|(n, _)| n == name)
            .map(|p| params.swap_remove(p).1)
    };
    let username = match (take("username"), take("username*")) {
        (Some(u), None) => u,
        (None, Some(u)) => decode_ext_value(&u)?,
        (Some(_), Some(_)) => return Err(DigestError::Invalid("username")),
        (None, None) => return Err(DigestError::Missing("username")),
    };
    // We never offer userhash (RFC 7616 §3.4.4); a hashed username could not be matched.
    if let Some(u) = take("userhash") {
        if !u.eq_ignore_ascii_case("false") {
            return Err(DigestError::Invalid("userhash"));
        }
    }
    let realm = take("realm").ok_or(DigestError::Missing("realm"))?;
    let nonce = take("nonce").ok_or(DigestError::Missing("nonce"))?;
    let uri = take("uri").ok_or(DigestError::Missing("uri"))?;
    let response = take("response")
        .ok_or(DigestError::Missing("response"))?
        .to_ascii_lowercase();
    if response.is_empty() || !response.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(DigestError::Invalid("response"));
    }
    let algorithm = match take("algorithm") {
        None => Algorithm::Md5,
        Some(a) if a.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
        Some(a) if a.eq_ignore_ascii_case("SHA-256") => Algorithm::Sha256,
        Some(_) => return Err(DigestError::Invalid("algorithm")),
    };
    let qop = match take("qop") {
        None => None,
        Some(q) if q.eq_ignore_ascii_case("auth") => Some(Qop::Auth),
        Some(_) => return Err(DigestError::Invalid("qop")),
    };
    let nc = match take("nc") {
        None => None,
        // RFC 7616 §3.4: nc-value = 8LHEX
        Some(n) if n.len() == 8 && n.bytes().all(|c| c.is_ascii_hexdigit()) => {
            Some(u32::from_str_radix(&n, 16).map_err(|_| DigestError::Invalid("nc"))?)
        }
        Some(_) => return Err(DigestError::Invalid("nc")),
    };
    let cnonce = take("cnonce");
    let opaque = take("opaque");
    // RFC 7616 §3.4: cnonce and nc MUST be sent with qop and MUST NOT be sent without it.
    match (qop, &nc, &cnonce) {
        (Some(_), Some(_), Some(_)) | (None, None, None) => {}
        (Some(_), None, _) => return Err(DigestError::Missing("nc")),
        (Some(_), _, None) => return Err(DigestError::Missing("cnonce")),
        (None, _, _) => return Err(DigestError::Missing("qop")),
    }
    Ok(DigestCredentials {
        username,
        realm,
        nonce,
        uri,
        response,
        algorithm,
        qop,
        nc,
        cnonce,
        opaque,
    })
}

/// Writes `v` as an RFC 7230 §3.2.6 quoted-string.
pub fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

impl DigestCredentials {
    /// Canonical header form (the inverse of [`parse_authorization`]).
    pub fn to_header(&self) -> String {
        let mut s = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            quote(&self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri),
            quote(&self.response),
            self.algorithm.as_str(),
        );
        if let (Some(Qop::Auth), Some(nc), Some(cnonce)) = (self.qop, self.nc, &self.cnonce) {
            s.push_str(&format!(
                ", qop=auth, nc={nc:08x}, cnonce={}",
                quote(cnonce)
            ));
        }
        if let Some(o) = &self.opaque {
            s.push_str(&format!(", opaque={}", quote(o)));
        }
        s
    }
}

/// HA1 = H(username ":" realm ":" password), RFC 7616 §3.4.2 (non-`-sess` algorithms).
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// The expected `response` for `creds` given the stored HA1 (hex) and the request method:
/// RFC 7616 §3.4.1 with qop=auth, RFC 2069 §2.1.2 without qop. HA2 = H(method ":" uri), §3.4.3.
pub fn expected_response(ha1_hex: &str, method: &str, creds: &DigestCredentials) -> String {
    let alg = creds.algorithm;
    let ha2 = alg.hex(format!("{method}:{}", creds.uri).as_bytes());
    let data = match (creds.qop, creds.nc, &creds.cnonce) {
        (Some(Qop::Auth), Some(nc), Some(cnonce)) => {
            format!("{ha1_hex}:{}:{nc:08x}:{cnonce}:auth:{ha2}", creds.nonce)
        }
        _ => format!("{ha1_hex}:{}:{ha2}", creds.nonce),
    };
    alg.hex(data.as_bytes())
}

/// Constant-time comparison of two hex strings (already lower-cased).
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// What [`NonceKey::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Minted by this key and younger than the lifetime.
    Valid,
    /// Minted by this key but too old (answer with `stale=true`).
    Expired,
    /// Not minted by this key (garbled, forged, or from before a restart).
    Invalid,
}

type HmacSha256 = Hmac<Sha256>;
const TS_LEN: usize = 8;
const MAC_LEN: usize = 32;
/// Nonces dated this far in the future are still accepted (clock steps between mint and check).
const FUTURE_SKEW: Duration = Duration::from_secs(60);

/// Mints and checks stateless nonces: base64url(timestamp_be_u64 || HMAC-SHA256(secret, input)),
/// where the MAC input is the timestamp, followed by `0x01 || connection_be_u64` for a nonce
/// bound to a connection.
///
/// Stateless means no per-client memory. An unbound nonce can be replayed with a captured
/// (method, uri, response) from anywhere until it expires; a bound nonce only on the connection
/// it was issued on (RFC 7616 §5.5 leaves replay protection to the server: we tie the nonce to
/// the connection instead of tracking `nc`, which some clients, e.g. GStreamer, do not send).
pub struct NonceKey {
    secret: [u8; 32],
    lifetime: Duration,
}

impl NonceKey {
    /// A key with the given secret (random per process in production) and nonce lifetime.
    pub fn new(secret: [u8; 32], lifetime: Duration) -> Self {
        Self { secret, lifetime }
    }

    fn mac(&self, ts: &[u8], connection: Option<u64>) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        m.update(ts);
        if let Some(c) = connection {
            // The timestamp has a fixed length, so bound and unbound inputs never collide.
            m.update(&[1]);
            m.update(&c.to_be_bytes());
        }
        m
    }

    /// A fresh nonce dated `now`, valid only on `connection` when given.
    pub fn mint(&self, now: SystemTime, connection: Option<u64>) -> String {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let ts = secs.to_be_bytes();
        let mut raw = ts.to_vec();
        raw.extend_from_slice(&self.mac(&ts, connection).finalize().into_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a nonce's MAC (constant-time), its binding and its age. A nonce minted for
    /// another connection (or unbound, or bound when `connection` is `None`) is `Invalid`.
    pub fn check(&self, nonce: &str, now: SystemTime, connection: Option<u64>) -> NonceStatus {
        if nonce.len() > 128 {
            return NonceStatus::Invalid;
        }
        let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(nonce) else {
            return NonceStatus::Invalid;
        };
        if raw.len() != TS_LEN + MAC_LEN {
            return NonceStatus::Invalid;
        }
        let (ts, tag) = raw.split_at(TS_LEN);
        if self.mac(ts, connection).verify_slice(tag).is_err() {
            return NonceStatus::Invalid;
        }
        let mut tsb = [0u8; TS_LEN];
        tsb.copy_from_slice(ts);
        let Some(minted) = UNIX_EPOCH.checked_add(Duration::from_secs(u64::from_be_bytes(tsb)))
        else {
            return NonceStatus::Invalid;
        };
        match now.duration_since(minted) {
            Ok(age) if age <= self.lifetime => NonceStatus::Valid,
            Ok(_) => NonceStatus::Expired,
            Err(e) if e.duration() <= FUTURE_SKEW => NonceStatus::Valid,
            Err(_) => NonceStatus::Invalid,
        }
    }
}

/// A `WWW-Authenticate` Digest challenge (RFC 7616 §3.3) for realm, algorithm and nonce.
pub fn challenge(realm: &str, alg: Algorithm, nonce: &str, stale: bool) -> String {
    let mut s = format!(
        "Digest realm={}, qop=\"auth\", algorithm={}, nonce={}",
        quote(realm),
        alg.as_str(),
        quote(nonce)
    );
    if stale {
        s.push_str(", stale=true");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ffmpeg_style_quoted_algorithm_and_qop() {
        let h = r#"Digest username="admin", realm="vigil", nonce="abc", uri="rtsp://h/main", response="0123ABCD", algorithm="MD5", qop="auth", nc=00000001, cnonce="f00""#;
        let c = parse_authorization(h).unwrap();
        assert_eq!(c.username, "admin");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.qop, Some(Qop::Auth));
        assert_eq!(c.nc, Some(1));
        assert_eq!(c.response, "0123abcd");
    }

    #[test]
    fn quoted_pair_and_case_insensitive_names() {
        let h = r#"digest USERNAME="a\"b\\c", Realm=vigil,nonce=n , uri = "/x" ,response="00""#;
        let c = parse_authorization(h).unwrap();
        assert_eq!(c.username, "a\"b\\c");
        assert_eq!(c.realm, "vigil");
        assert_eq!(c.uri, "/x");
        let again = parse_authorization(&c.to_header()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn rejects_duplicates_bad_syntax_and_limits() {
        let dup =
            r#"Digest username="a", username="b", realm="r", nonce="n", uri="/", response="00""#;
        assert!(matches!(
            parse_authorization(dup),
            Err(DigestError::Duplicate(_))
        ));
        assert_eq!(
            parse_authorization("Basic YTpi"),
            Err(DigestError::NotDigest)
        );
        assert!(parse_authorization(r#"Digest username="a"#).is_err());
        assert!(parse_authorization("Digest username=").is_err());
        let long = format!(r#"Digest username="{}""#, "a".repeat(MAX_HEADER_LEN));
        assert_eq!(parse_authorization(&long), Err(DigestError::TooLong));
        let qop_without_nc = r#"Digest username="a", realm="r", nonce="n", uri="/", response="00", qop=auth, cnonce="c""#;
        assert_eq!(
            parse_authorization(qop_without_nc),
            Err(DigestError::Missing("nc"))
        );
        let sess = r#"Digest username="a", realm="r", nonce="n", uri="/", response="00", algorithm=MD5-sess"#;
        assert_eq!(
            parse_authorization(sess),
            Err(DigestError::Invalid("algorithm"))
        );
    }

    #[test]
    fn username_star_is_decoded() {
        let h = r#"Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm="r", nonce="n", uri="/", response="00""#;
        assert_eq!(parse_authorization(h).unwrap().username, "Jäsøn Doe");
    }

    /// RFC 7616 §3.9.1: the worked example, for SHA-256 and MD5.
    #[test]
    fn rfc7616_example() {
        for (alg, want) in [
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
        ] {
            let creds = DigestCredentials {
                username: "Mufasa".into(),
                realm: "http-auth@example.org".into(),
                nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
                uri: "/dir/index.html".into(),
                response: want.into(),
                algorithm: alg,
                qop: Some(Qop::Auth),
                nc: Some(1),
                cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ".into()),
                opaque: Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS".into()),
            };
            let h1 = ha1(alg, "Mufasa", "http-auth@example.org", "Circle of Life");
            assert_eq!(expected_response(&h1, "GET", &creds), want, "{alg:?}");
        }
    }

    #[test]
    fn nonce_lifecycle() {
        let k = NonceKey::new([7; 32], Duration::from_secs(300));
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let n = k.mint(t0, None);
        assert_eq!(
            k.check(&n, t0 + Duration::from_secs(299), None),
            NonceStatus::Valid
        );
        assert_eq!(
            k.check(&n, t0 + Duration::from_secs(301), None),
            NonceStatus::Expired
        );
        assert_eq!(
            k.check(&n, t0 - Duration::from_secs(30), None),
            NonceStatus::Valid
        );
        assert_eq!(
            k.check(&n, t0 - Duration::from_secs(3600), None),
            NonceStatus::Invalid
        );
        let other = NonceKey::new([8; 32], Duration::from_secs(300));
        assert_eq!(other.check(&n, t0, None), NonceStatus::Invalid);
        let mut tampered = n.clone().into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(k.check(&tampered, t0, None), NonceStatus::Invalid);
        assert_eq!(k.check("", t0, None), NonceStatus::Invalid);
    }

    /// Issue 17 item 1: a nonce issued on one connection is worthless on any other, so a
    /// captured `Authorization` cannot be replayed from a second connection.
    #[test]
    fn bound_nonce_is_valid_on_its_connection_only() {
        let k = NonceKey::new([7; 32], Duration::from_secs(300));
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let a = k.mint(t0, Some(41));
        assert_eq!(k.check(&a, t0, Some(41)), NonceStatus::Valid);
        assert_eq!(k.check(&a, t0, Some(42)), NonceStatus::Invalid);
        assert_eq!(k.check(&a, t0, None), NonceStatus::Invalid);
        let unbound = k.mint(t0, None);
        assert_eq!(k.check(&unbound, t0, Some(41)), NonceStatus::Invalid);
        assert_eq!(
            k.check(&a, t0 + Duration::from_secs(301), Some(41)),
            NonceStatus::Expired
        );
    }
}
