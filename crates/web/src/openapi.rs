//! `GET /api/openapi.json`: an OpenAPI 3.1 document generated from [`crate::ROUTES`], so it
//! cannot drift from what the router serves.

use axum::Json;
use serde_json::{json, Map, Value};

use crate::state::{Access, CurrentUser, RouteDoc};

/// Names of the `{param}` segments of an axum path (`{*rest}` included).
fn params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|p| p.trim_start_matches('*'))
        .collect()
}

/// The OpenAPI path of an axum path (`{*path}` → `{path}`).
fn openapi_path(path: &str) -> String {
    path.replace("{*", "{")
}

/// The document for `routes`.
pub fn document(routes: &[RouteDoc]) -> Value {
    let mut paths = Map::new();
    for d in routes {
        let entry = paths
            .entry(openapi_path(d.path))
            .or_insert_with(|| Value::Object(Map::new()));
        let mut op = json!({
            "summary": d.summary,
            "operationId": format!("{} {}", d.method, d.path),
            "responses": {
                "200": {"description": "OK"},
                "default": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            },
        });
        if let Some(o) = op.as_object_mut() {
            let ps: Vec<Value> = params(d.path)
                .into_iter()
                .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
                .collect();
            if !ps.is_empty() {
                o.insert("parameters".into(), ps.into());
            }
            match d.access {
                Access::Public => {
                    o.insert("security".into(), json!([]));
                }
                Access::User => {}
                Access::Admin => {
                    o.insert("x-vigil-role".into(), "admin".into());
                    if let Some(Value::String(s)) = o.get_mut("summary") {
                        s.push_str(" (admin)");
                    }
                }
            }
        }
        if let Some(e) = entry.as_object_mut() {
            e.insert(d.method.to_ascii_lowercase(), op);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Vigil",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Vigil's JSON API. Times are microseconds since the epoch (*_us). Requests other than GET/HEAD with a session cookie need a same-origin Origin header and X-CSRF-Token (from GET /api/session); API tokens are exempt."
        },
        "servers": [{"url": "/"}],
        "security": [{"session": []}, {"token": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE},
                "token": {"type": "http", "scheme": "bearer"}
            },
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
            }
        }
    })
}

/// `GET /api/openapi.json`.
pub async fn handler(_user: CurrentUser) -> Json<Value> {
    Json(document(crate::ROUTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document() {
        let doc = document(crate::ROUTES);
        assert_eq!(doc["openapi"], "3.1.0");
        for d in crate::ROUTES {
            let op = &doc["paths"][openapi_path(d.path)][d.method.to_ascii_lowercase()];
            assert!(op.is_object(), "{} {} missing", d.method, d.path);
            assert_eq!(
                op["security"].is_array(),
                d.access == Access::Public,
                "{d:?}"
            );
        }
        let snap = &doc["paths"]["/api/cameras/{name}/snapshot.jpg"]["get"]["parameters"][0];
        assert_eq!(snap["name"], "name");
        assert_eq!(params("/assets/{*path}"), ["path"]);
    }
}
