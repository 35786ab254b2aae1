//! HTTP Digest authentication as an RTSP client does it (RFC 7616): the challenges of a 401's
//! `WWW-Authenticate` headers and the `Authorization` header answering one.

use md5::Md5;
use sha2::{Digest as _, Sha256};

use super::Response;

/// A user name and password.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// The hash algorithms a Digest challenge may name (RFC 7616 §3.3; absent means MD5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5`.
    Md5,
    /// `SHA-256`.
    Sha256,
}

impl Algorithm {
    /// The name as a challenge spells it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// The algorithm a challenge's `algorithm=` names (case-insensitive), if known.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        if name.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if name.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    fn hash_hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Digest challenge from `WWW-Authenticate` (RFC 7616 §3.3).
#[derive(Clone, Debug)]
pub struct Challenge {
    /// The hash algorithm.
    pub algorithm: Algorithm,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back if present.
    pub opaque: Option<String>,
    /// Whether `qop` offers `auth`.
    pub qop_auth: bool,
}

/// Splits `k=v, k="quoted, v"` auth parameters (RFC 7235 §2.1), names lower-cased.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_ascii_lowercase(), val.trim().to_owned()));
    }
}

/// The Digest challenges in one `WWW-Authenticate` value (which may hold several, and other
/// schemes). A challenge without realm or nonce, or naming an algorithm other than MD5 and
/// SHA-256, is left out.
pub fn parse_challenges(value: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    // Each challenge starts at its scheme token.
    for part in value.split("Digest ").skip(1) {
        let params = auth_params(part);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let algorithm = match get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => match Algorithm::from_name(&a) {
                Some(a) => a,
                None => continue,
            },
        };
        let (Some(realm), Some(nonce)) = (get("realm"), get("nonce")) else {
            continue;
        };
        out.push(Challenge {
            algorithm,
            realm,
            nonce,
            opaque: get("opaque"),
            qop_auth: get("qop").is_some_and(|q| q.split(',').any(|t| t.trim() == "auth")),
        });
    }
    out
}

/// Every Digest challenge of a (401) response, in order.
pub fn challenges(resp: &Response) -> Vec<Challenge> {
    resp.headers_all("WWW-Authenticate")
        .flat_map(parse_challenges)
        .collect()
}

/// The `Authorization: Digest ...` value answering `ch` (RFC 7616 §3.4.1), with nonce count 1
/// and a fixed client nonce when the challenge offers `qop=auth`.
pub fn authorization(ch: &Challenge, user: &str, pass: &str, method: &str, uri: &str) -> String {
    answer(ch, user, pass, method, uri, 1, "0a4f113b9e2c")
}

fn answer(
    ch: &Challenge,
    user: &str,
    pass: &str,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let alg = ch.algorithm;
    let ha1 = alg.hash_hex(&format!("{user}:{}:{pass}", ch.realm));
    let ha2 = alg.hash_hex(&format!("{method}:{uri}"));
    let mut v = format!(
        "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm={}",
        ch.realm,
        ch.nonce,
        alg.name()
    );
    if ch.qop_auth {
        let nc = format!("{nc:08x}");
        let resp = alg.hash_hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", ch.nonce));
        v.push_str(&format!(
            ", qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{resp}\""
        ));
    } else {
        let resp = alg.hash_hex(&format!("{ha1}:{}:{ha2}", ch.nonce));
        v.push_str(&format!(", response=\"{resp}\""));
    }
    if let Some(o) = &ch.opaque {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    v
}

/// A client's Digest state over a connection: the challenge it answers and the nonce count
/// (RFC 7616 §3.4), so every request carries a fresh `nc` and `cnonce`.
#[derive(Clone, Debug)]
pub struct Auth {
    /// Whose credentials.
    pub creds: Credentials,
    /// The challenge answered; `None` until the first 401.
    pub challenge: Option<Challenge>,
    nc: u32,
}

impl Auth {
    /// No challenge yet.
    pub fn new(creds: Credentials) -> Auth {
        Auth {
            creds,
            challenge: None,
            nc: 0,
        }
    }

    /// The `Authorization` value for the next request, once there is a challenge.
    pub fn authorization(&mut self, method: &str, uri: &str) -> Option<String> {
        let ch = self.challenge.as_ref()?;
        self.nc += 1;
        let cnonce = format!(
            "{:016x}",
            u64::from(std::process::id()) ^ (u64::from(self.nc) << 32)
        );
        Some(answer(
            ch,
            &self.creds.user,
            &self.creds.password,
            method,
            uri,
            self.nc,
            &cnonce,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed_and_unknown_algorithms_left_out() {
        let chs = parse_challenges(
            r#"Digest realm="vigil", nonce="abc", algorithm=SHA-256, qop="auth, auth-int", Digest realm="vigil", nonce="d\"e", algorithm=MD5"#,
        );
        assert_eq!(chs.len(), 2);
        assert_eq!(chs[0].algorithm, Algorithm::Sha256);
        assert!(chs[0].qop_auth);
        assert_eq!(chs[0].realm, "vigil");
        assert_eq!(chs[1].algorithm, Algorithm::Md5);
        assert_eq!(chs[1].nonce, "d\"e");
        assert!(!chs[1].qop_auth);
        assert!(parse_challenges("Basic realm=\"x\"").is_empty());
        assert!(parse_challenges("Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512").is_empty());
        assert!(parse_challenges("Digest realm=\"x\"").is_empty());
    }

    #[test]
    fn responses_follow_the_rfc_formulas() {
        // RFC 2617 §3.5's worked example: HA1 of Mufasa in testrealm@host.com.
        let ch = parse_challenges(
            r#"Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc""#,
        )
        .remove(0);
        let h = authorization(&ch, "Mufasa", "Circle Of Life", "GET", "/dir/index.html");
        let ha1 = Algorithm::Md5.hash_hex("Mufasa:testrealm@host.com:Circle Of Life");
        assert_eq!(ha1, "939e7578ed9e3c518a452acee763bce9");
        let ha2 = Algorithm::Md5.hash_hex("GET:/dir/index.html");
        // Without qop: response = H(HA1:nonce:HA2), RFC 2069 style.
        let want =
            Algorithm::Md5.hash_hex(&format!("{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}"));
        assert!(h.contains(&format!("response=\"{want}\"")), "{h}");
        assert!(h.ends_with(", opaque=\"5ccc\""), "{h}");

        // With qop=auth the nonce count goes up request by request.
        let mut auth = Auth::new(Credentials {
            user: "u".into(),
            password: "p".into(),
        });
        assert!(auth.authorization("DESCRIBE", "rtsp://h/").is_none());
        auth.challenge = parse_challenges(r#"Digest realm="r", nonce="n", qop="auth""#).pop();
        let first = auth.authorization("DESCRIBE", "rtsp://h/").unwrap();
        let second = auth.authorization("DESCRIBE", "rtsp://h/").unwrap();
        assert!(first.contains("nc=00000001"), "{first}");
        assert!(second.contains("nc=00000002"), "{second}");
    }
}
