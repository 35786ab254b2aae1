//! The UI: files of `crates/web/assets/` embedded at compile time (see `build.rs`).
//!
//! A request path only ever selects an entry of the embedded table by exact string match, so
//! `..`, encoded slashes, absolute paths or symlinks cannot reach anything else: nothing is
//! read from the filesystem at run time. URL `/assets/X` serves the file `X` of that
//! directory; `/` and `/index.html` serve `index.html`.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

mod table {
    include!(concat!(env!("OUT_DIR"), "/assets_table.rs"));
}

/// One embedded file.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    /// Path under `assets/`, `/`-separated.
    pub path: &'static str,
    /// Contents.
    pub data: &'static [u8],
    /// Strong ETag (quoted).
    pub etag: &'static str,
}

/// Every embedded file, sorted by path.
pub fn all() -> impl Iterator<Item = Asset> {
    table::TABLE
        .iter()
        .map(|&(path, data, etag)| Asset { path, data, etag })
}

/// The embedded file at exactly `path`, if any.
pub fn get(path: &str) -> Option<Asset> {
    table::TABLE
        .binary_search_by(|(p, _, _)| (*p).cmp(path))
        .ok()
        .and_then(|i| table::TABLE.get(i))
        .map(|&(path, data, etag)| Asset { path, data, etag })
}

/// Content type by extension; unknown types are served as bytes (with `nosniff`).
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "jpg" | "jpeg" => "image/jpeg",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The embedded file `path` as a response (304 on a matching `If-None-Match`; 404 if absent).
pub fn serve_path(path: &str, headers: &HeaderMap) -> Response {
    serve(path, headers)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = get(path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "not found\n",
        )
            .into_response();
    };
    let etag = HeaderValue::from_static(asset.etag);
    // RFC 9110 §13.1.2: If-None-Match is a list of entity tags (or `*`).
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == asset.etag
        });
    // The files change with the binary: revalidate every time, cheap with the ETag.
    let cache = HeaderValue::from_static("no-cache");
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(asset.path)),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        asset.data,
    )
        .into_response()
}

/// `GET /` and `GET /index.html`.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /manifest.webmanifest`.
pub async fn manifest(headers: HeaderMap) -> Response {
    serve("manifest.webmanifest", &headers)
}

/// `GET /assets/{*path}`.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_lookup_is_exact() {
        let paths: Vec<_> = all().map(|a| a.path).collect();
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        assert_eq!(paths, sorted);
        for p in &paths {
            assert_eq!(get(p).map(|a| a.path), Some(*p));
            assert!(!p.contains(".."), "{p}");
        }
        for bad in [
            "",
            "/",
            "../Cargo.toml",
            "/etc/passwd",
            "./index.html",
            "index.html/",
        ] {
            assert!(get(bad).is_none(), "{bad}");
        }
    }

    /// The embedded table is the assets directory as it is now (the build script reruns on
    /// any change in it).
    #[test]
    fn table_matches_the_assets_directory() {
        fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name.ends_with('~') {
                    continue;
                }
                let p = e.path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    let rel = p
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    out.push((rel, std::fs::read(&p).unwrap()));
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut files = Vec::new();
        walk(&root, &root, &mut files);
        files.sort();
        let embedded: Vec<_> = all()
            .map(|a| (a.path.to_owned(), a.data.to_vec()))
            .collect();
        assert_eq!(embedded.len(), files.len());
        for ((p1, d1), (p2, d2)) in embedded.iter().zip(&files) {
            assert_eq!(p1, p2);
            assert!(d1 == d2, "{p1} differs from the file");
        }
        assert!(get("index.html").is_some(), "the UI has an index.html");
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("a/b.js"), "text/javascript; charset=utf-8");
        assert_eq!(
            content_type("manifest.webmanifest"),
            "application/manifest+json"
        );
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
