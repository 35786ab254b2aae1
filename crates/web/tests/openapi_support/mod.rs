//! Checks real answers against the OpenAPI document the server serves: the status must be
//! documented for the route, and a JSON body must validate (JSON Schema 2020-12) against the
//! schema documented for that status. Shared by `openapi.rs` and the media tests, so every
//! fixture that produces real answers can check them.

#![allow(clippy::unwrap_used, dead_code)]

use serde_json::{json, Value};

/// The served document.
pub struct ApiDoc {
    doc: Value,
}

impl ApiDoc {
    /// Wraps the answer of `GET /api/openapi.json`.
    pub fn new(doc: Value) -> Self {
        assert_eq!(
            doc["openapi"], "3.1.0",
            "not an OpenAPI 3.1 document: {doc}"
        );
        Self { doc }
    }

    /// Whether one answer of `method route` (the route as in the document, e.g.
    /// `/api/cameras/{name}`) is what the document says; the error names the route, the
    /// status and every violation.
    pub fn check(
        &self,
        method: &str,
        route: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let at = format!("{method} {route} → {status}");
        let op = &self.doc["paths"][route][method.to_ascii_lowercase()];
        if !op.is_object() {
            return Err(format!("{at}: the route is not in the document"));
        }
        let responses = op["responses"].as_object().unwrap();
        let Some(documented) = responses.get(&status.to_string()) else {
            let known: Vec<&String> = responses.keys().collect();
            return Err(format!(
                "{at}: status {status} is not documented (documented: {known:?}); body: {}",
                String::from_utf8_lossy(body)
            ));
        };
        let Some(content) = documented["content"].as_object() else {
            return if body.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{at}: documented without a body, but got {} bytes",
                    body.len()
                ))
            };
        };
        let ct = content_type.unwrap_or("");
        let Some(json_content) = content.get("application/json") else {
            let ok = content
                .keys()
                .any(|m| m == "*/*" || ct.split(';').next().is_some_and(|c| c.trim() == m));
            return if ok {
                Ok(())
            } else {
                Err(format!(
                    "{at}: Content-Type {ct:?} is not one of the documented {:?}",
                    content.keys().collect::<Vec<_>>()
                ))
            };
        };
        if !ct.starts_with("application/json") {
            return Err(format!(
                "{at}: Content-Type {ct:?}, documented application/json"
            ));
        }
        let instance: Value = serde_json::from_slice(body).map_err(|e| {
            format!(
                "{at}: the body is no JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )
        })?;
        self.validate(&at, &json_content["schema"], &instance)
    }

    /// Validates `instance` against `schema`, which may refer to `#/components/schemas/…`.
    pub fn validate(&self, at: &str, schema: &Value, instance: &Value) -> Result<(), String> {
        // The schema is validated as part of a document that also holds the components, so
        // its references resolve as they do in the served document.
        let mut root = schema.clone();
        let Some(o) = root.as_object_mut() else {
            return Err(format!(
                "{at}: the documented schema is no object: {schema}"
            ));
        };
        o.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        o.insert("components".into(), self.doc["components"].clone());
        let validator = jsonschema::validator_for(&root)
            .map_err(|e| format!("{at}: the documented schema does not compile: {e}"))?;
        let violations: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("  at {:?}: {e}", e.instance_path().as_str()))
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{at}: the answer does not match the documented schema:\n{}\nanswer: {instance}",
                violations.join("\n")
            ))
        }
    }

    /// The document.
    pub fn doc(&self) -> &Value {
        &self.doc
    }
}
