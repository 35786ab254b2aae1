//! Writes the service's answer to every implemented operation (and a NotAuthorized fault) into
//! a directory, for `testdata/zeep/check_responses.py`, which deserializes each with zeep and
//! the ONVIF WSDLs that ship with onvif-zeep: an independent reading of our XML.
//!
//! `cargo run -p vigil-onvif --example dump_responses -- DIR`

use vigil_onvif::{ops, tests_support, Endpoint, Fault, Limits, Request, Service};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).ok_or("usage: dump_responses DIR")?;
    let mut s = Service::new(tests_support::info(), Limits::default());
    for (endpoint, names, p) in [
        (Endpoint::Device, ops::DEVICE_OPS, "tds"),
        (Endpoint::Media, ops::MEDIA_OPS, "trt"),
    ] {
        for op in names {
            let config = if op.contains("Source") {
                "VideoSourceConfig_1"
            } else {
                "main"
            };
            let body = format!(
                "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" \
                 xmlns:tds=\"{}\" xmlns:trt=\"{}\"><s:Body><{p}:{op}>\
                 <{p}:ProfileToken>main</{p}:ProfileToken>\
                 <{p}:ConfigurationToken>{config}</{p}:ConfigurationToken>\
                 </{p}:{op}></s:Body></s:Envelope>",
                ops::NS_DEVICE,
                ops::NS_MEDIA
            );
            let r = s.handle(
                &Request {
                    endpoint,
                    body: body.as_bytes(),
                    http_user: Some("admin"),
                    tls: false,
                    now: time::OffsetDateTime::now_utc(),
                },
                &tests_support::Creds,
            );
            std::fs::write(format!("{out}/{p}_{op}.xml"), r.body)?;
        }
    }
    std::fs::write(format!("{out}/fault.xml"), Fault::NotAuthorized.to_xml())?;
    Ok(())
}
