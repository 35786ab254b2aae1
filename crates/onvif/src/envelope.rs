//! A hardened SOAP 1.2 envelope parser (W3C SOAP 1.2 Part 1 §5).
//!
//! What it refuses, so that hostile input costs bounded time and memory:
//! - any `<!DOCTYPE`: SOAP 1.2 Part 1 §5 says a SOAP message "MUST NOT contain a Document Type
//!   Declaration", and without one there are no entity declarations, hence no billion-laughs
//!   expansion and no external (`SYSTEM "file:///…"`) entities. quick-xml never expands DTD
//!   entities anyway; we reject the DOCTYPE before it could matter.
//! - processing instructions other than the XML declaration (§5 forbids them too);
//! - any entity reference other than the five predefined ones and character references;
//! - bodies over [`Limits::max_body`], nesting over [`Limits::max_depth`], more than
//!   [`Limits::max_elements`] elements, or text over [`Limits::max_text`] per element.
//!
//! Matching is by namespace URI and local name, never by prefix.

use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;

/// SOAP 1.2 envelope namespace (SOAP 1.2 Part 1 §5).
pub const NS_SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
/// SOAP 1.1 envelope namespace: answered with a VersionMismatch fault (SOAP 1.2 Part 1 §5.4.7).
pub const NS_SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// Bounds on what one request may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted body in bytes.
    pub max_body: usize,
    /// Deepest element nesting.
    pub max_depth: usize,
    /// Most elements in one message.
    pub max_elements: usize,
    /// Longest text content of one element, in bytes.
    pub max_text: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // ONVIF requests are a few KiB at most (the largest, SetVideoEncoderConfiguration, is
        // under 2 KiB); 64 KiB leaves room for long WS-Security headers.
        Limits {
            max_body: 64 * 1024,
            max_depth: 32,
            max_elements: 1024,
            max_text: 4096,
        }
    }
}

/// Why a message was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ParseError {
    /// The body is larger than [`Limits::max_body`].
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Nesting deeper than [`Limits::max_depth`].
    #[error("elements nested too deep")]
    TooDeep,
    /// More elements than [`Limits::max_elements`].
    #[error("too many elements")]
    TooManyElements,
    /// An element's text is longer than [`Limits::max_text`].
    #[error("element text too long")]
    TextTooLong,
    /// A document type declaration (forbidden in SOAP, SOAP 1.2 Part 1 §5).
    #[error("DOCTYPE is not allowed in SOAP")]
    Doctype,
    /// A processing instruction other than the XML declaration.
    #[error("processing instructions are not allowed in SOAP")]
    ProcessingInstruction,
    /// An entity reference that is not predefined.
    #[error("undeclared entity reference")]
    Entity,
    /// Not well-formed XML or not valid UTF-8.
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    /// The root element is a SOAP 1.1 envelope or in another namespace.
    #[error("not a SOAP 1.2 envelope")]
    VersionMismatch,
    /// The envelope has no Body, or the Body has no element.
    #[error("envelope has no body element")]
    NoBody,
}

/// An element's identity: namespace URI and local name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QName {
    /// Namespace URI, empty when unqualified.
    pub ns: String,
    /// Local name.
    pub local: String,
}

impl QName {
    /// True when this is `{ns}local`.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.ns == ns && self.local == local
    }
}

/// One element with text under the Header or the Body's operation element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Names from the Header's child (or the operation's child) down to this element.
    pub path: Vec<QName>,
    /// Attributes as (namespace, local name, value); the value is unescaped.
    pub attrs: Vec<(String, String, String)>,
    /// Text content (entity references resolved), trimmed.
    pub text: String,
}

impl Field {
    /// The element's own name.
    pub fn name(&self) -> Option<&QName> {
        self.path.last()
    }
}

/// A parsed SOAP 1.2 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Leaf elements under `env:Header`.
    pub header: Vec<Field>,
    /// The Body's first element: the operation (ONVIF Core §5.1.1, document/literal).
    pub operation: QName,
    /// Leaf elements under the operation element.
    pub body: Vec<Field>,
}

impl Envelope {
    /// Text of the first operation parameter whose local name is `local` at any depth.
    pub fn param(&self, local: &str) -> Option<&str> {
        self.body
            .iter()
            .find(|f| f.name().is_some_and(|n| n.local == local))
            .map(|f| f.text.as_str())
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Where {
    Root,
    Envelope,
    Header,
    Body,
    Operation,
    AfterOperation,
}

fn ns_of(r: &ResolveResult<'_>) -> Result<String, ParseError> {
    match r {
        ResolveResult::Bound(Namespace(ns)) => std::str::from_utf8(ns)
            .map(str::to_owned)
            .map_err(|_| ParseError::Malformed("namespace not UTF-8".into())),
        ResolveResult::Unbound => Ok(String::new()),
        // XML Namespaces 1.0 §5: an unbound prefix is a namespace constraint violation.
        ResolveResult::Unknown(_) => Err(ParseError::Malformed("unbound prefix".into())),
    }
}

fn malformed(e: impl std::fmt::Display) -> ParseError {
    ParseError::Malformed(e.to_string())
}

/// Parses a SOAP 1.2 request within `limits`.
pub fn parse(input: &[u8], limits: &Limits) -> Result<Envelope, ParseError> {
    if input.len() > limits.max_body {
        return Err(ParseError::TooLarge(input.len()));
    }
    let mut reader = NsReader::from_reader(input);
    let cfg = reader.config_mut();
    cfg.check_end_names = true;
    cfg.expand_empty_elements = true;
    // Not trimmed per event: text split by entity references keeps its inner spaces;
    // each field is trimmed once when its element ends.
    cfg.trim_text(false);

    let mut at = Where::Root;
    let mut depth = 0usize;
    let mut elements = 0usize;
    // The stack of names below the Header or the operation element.
    let mut path: Vec<QName> = Vec::new();
    let mut attrs_stack: Vec<Vec<(String, String, String)>> = Vec::new();
    let mut text = String::new();
    let mut header = Vec::new();
    let mut body = Vec::new();
    let mut operation: Option<QName> = None;
    let mut seen_root = false;

    loop {
        let (res, ev) = reader.read_resolved_event().map_err(malformed)?;
        match ev {
            Event::Eof => break,
            Event::DocType(_) => return Err(ParseError::Doctype),
            Event::PI(_) => return Err(ParseError::ProcessingInstruction),
            Event::Decl(_) | Event::Comment(_) => {}
            Event::Start(e) => {
                depth += 1;
                elements += 1;
                if depth > limits.max_depth {
                    return Err(ParseError::TooDeep);
                }
                if elements > limits.max_elements {
                    return Err(ParseError::TooManyElements);
                }
                let name = QName {
                    ns: ns_of(&res)?,
                    local: std::str::from_utf8(e.local_name().as_ref())
                        .map_err(malformed)?
                        .to_owned(),
                };
                match at {
                    Where::Root => {
                        if seen_root {
                            return Err(malformed("second root element"));
                        }
                        seen_root = true;
                        if !name.is(NS_SOAP12, "Envelope") {
                            return Err(ParseError::VersionMismatch);
                        }
                        at = Where::Envelope;
                    }
                    Where::Envelope if name.is(NS_SOAP12, "Header") => at = Where::Header,
                    Where::Envelope if name.is(NS_SOAP12, "Body") => at = Where::Body,
                    Where::Envelope => return Err(malformed("unexpected element in Envelope")),
                    Where::Body => {
                        operation = Some(name);
                        at = Where::Operation;
                    }
                    Where::Header | Where::Operation | Where::AfterOperation => {
                        let mut attrs = Vec::new();
                        for a in e.attributes() {
                            let a = a.map_err(malformed)?;
                            let (r, local) = reader.resolve_attribute(a.key);
                            let ans = ns_of(&r)?;
                            let local = std::str::from_utf8(local.as_ref())
                                .map_err(malformed)?
                                .to_owned();
                            let v = a.unescape_value().map_err(|_| ParseError::Entity)?;
                            if v.len() > limits.max_text {
                                return Err(ParseError::TextTooLong);
                            }
                            attrs.push((ans, local, v.into_owned()));
                        }
                        path.push(name);
                        attrs_stack.push(attrs);
                        text.clear();
                    }
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                match at {
                    Where::Header | Where::Operation | Where::AfterOperation
                        if !path.is_empty() =>
                    {
                        let attrs = attrs_stack.pop().unwrap_or_default();
                        let field = Field {
                            path: path.clone(),
                            attrs,
                            text: std::mem::take(&mut text).trim().to_owned(),
                        };
                        path.pop();
                        match at {
                            Where::Header => header.push(field),
                            Where::Operation => body.push(field),
                            _ => {}
                        }
                    }
                    Where::Header => at = Where::Envelope,
                    Where::Operation => at = Where::AfterOperation,
                    Where::AfterOperation | Where::Body => at = Where::Envelope,
                    Where::Envelope => at = Where::Root,
                    Where::Root => {}
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(malformed)?;
                push_text(&mut text, &s, &path, limits)?;
            }
            Event::CData(t) => {
                let s = t.decode().map_err(malformed)?;
                push_text(&mut text, &s, &path, limits)?;
            }
            Event::GeneralRef(r) => {
                let c = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(malformed)?
                        .ok_or(ParseError::Entity)?
                } else {
                    // XML 1.0 §4.6: the five predefined entities; anything else would need a
                    // DTD, which we never read.
                    match r.as_ref() {
                        b"lt" => '<',
                        b"gt" => '>',
                        b"amp" => '&',
                        b"apos" => '\'',
                        b"quot" => '"',
                        _ => return Err(ParseError::Entity),
                    }
                };
                push_text(&mut text, c.encode_utf8(&mut [0; 4]), &path, limits)?;
            }
            Event::Empty(_) => return Err(malformed("unexpanded empty element")),
        }
    }
    if !seen_root || at != Where::Root {
        return Err(malformed("truncated document"));
    }
    let operation = operation.ok_or(ParseError::NoBody)?;
    Ok(Envelope {
        header,
        operation,
        body,
    })
}

fn push_text(out: &mut String, s: &str, path: &[QName], limits: &Limits) -> Result<(), ParseError> {
    if path.is_empty() {
        // Text directly in Envelope/Header/Body is ignored (whitespace in practice).
        return Ok(());
    }
    if out.len() + s.len() > limits.max_text {
        return Err(ParseError::TextTooLong);
    }
    out.push_str(s);
    Ok(())
}
