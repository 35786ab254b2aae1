//! Writing responses: every dynamic value goes through [`escape`].

/// Namespace declarations used by all responses.
const NAMESPACES: &str = concat!(
    " xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\"",
    " xmlns:ter=\"http://www.onvif.org/ver10/error\"",
    " xmlns:tt=\"http://www.onvif.org/ver10/schema\"",
    " xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\"",
    " xmlns:trt=\"http://www.onvif.org/ver10/media/wsdl\"",
);

/// Escapes text for element content and attribute values (XML 1.0 §2.4, §3.3.3).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 §2.2 does not allow at all are dropped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// Wraps `body` (already escaped) in a SOAP 1.2 envelope.
pub fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<env:Envelope{NAMESPACES}><env:Body>{body}</env:Body></env:Envelope>"
    )
}
