//! SOAP 1.2 faults with ONVIF subcodes (ONVIF Core Specification §5.11, SOAP 1.2 Part 1 §5.4).

use crate::xml::escape;

/// A fault's code, subcode and the HTTP status it travels with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// env:VersionMismatch: not a SOAP 1.2 envelope (SOAP 1.2 Part 1 §5.4.6).
    VersionMismatch,
    /// env:Sender / ter:WellFormed: not well-formed XML, DOCTYPE, PI, unknown entity (§5.11.2.1).
    WellFormed,
    /// env:Sender / ter:NotAuthorized: missing or wrong credentials (ONVIF Core §5.11.2.1, §5.12).
    NotAuthorized,
    /// env:Sender / ter:InvalidArgVal / ter:NoProfile: unknown profile token.
    NoProfile,
    /// env:Sender / ter:InvalidArgVal / ter:NoConfig: unknown configuration token.
    NoConfig,
    /// env:Sender / ter:InvalidArgVal: some other argument value is not supported.
    InvalidArgVal,
    /// env:Receiver / ter:ActionNotSupported: the operation is not implemented here.
    ActionNotSupported,
    /// env:Receiver / ter:OutofMemory: the message exceeds our limits (size, depth, count).
    OutofMemory,
}

impl Fault {
    /// (code, subcodes, reason).
    fn parts(self) -> (&'static str, &'static [&'static str], &'static str) {
        match self {
            Fault::VersionMismatch => ("env:VersionMismatch", &[], "SOAP 1.2 envelope expected"),
            Fault::WellFormed => ("env:Sender", &["ter:WellFormed"], "Message not well formed"),
            Fault::NotAuthorized => (
                "env:Sender",
                &["ter:NotAuthorized"],
                "Sender not authorized",
            ),
            Fault::NoProfile => (
                "env:Sender",
                &["ter:InvalidArgVal", "ter:NoProfile"],
                "No such profile",
            ),
            Fault::NoConfig => (
                "env:Sender",
                &["ter:InvalidArgVal", "ter:NoConfig"],
                "No such configuration",
            ),
            Fault::InvalidArgVal => (
                "env:Sender",
                &["ter:InvalidArgVal"],
                "Argument value not supported",
            ),
            Fault::ActionNotSupported => (
                "env:Receiver",
                &["ter:ActionNotSupported"],
                "Optional action not implemented",
            ),
            Fault::OutofMemory => (
                "env:Receiver",
                &["ter:OutofMemory"],
                "Message exceeds the device's limits",
            ),
        }
    }

    /// The HTTP status for this fault: SOAP 1.2 Part 2 §7.5.1.2 — Sender faults 400, others 500.
    pub fn http_status(self) -> u16 {
        match self.parts().0 {
            "env:Sender" => 400,
            _ => 500,
        }
    }

    /// The subcode local name ONVIF clients look for (`NotAuthorized`, …), or the code.
    pub fn subcode(self) -> &'static str {
        let (code, subs, _) = self.parts();
        subs.last().copied().unwrap_or(code)
    }

    /// The complete SOAP envelope carrying this fault.
    pub fn to_xml(self) -> String {
        let (code, subs, reason) = self.parts();
        let mut code_xml = String::new();
        // SOAP 1.2 Part 1 §5.4.1.3: nested Subcode elements, innermost most specific.
        for s in subs.iter().rev() {
            code_xml = format!("<env:Subcode><env:Value>{s}</env:Value>{code_xml}</env:Subcode>");
        }
        let body = format!(
            "<env:Fault><env:Code><env:Value>{code}</env:Value>{code_xml}</env:Code>\
             <env:Reason><env:Text xml:lang=\"en\">{}</env:Text></env:Reason></env:Fault>",
            escape(reason)
        );
        crate::xml::envelope(&body)
    }
}
