//! Embeds `assets/**` into the binary: generates `$OUT_DIR/assets_table.rs`, a sorted table of
//! `(path, bytes, etag)` with `include_bytes!`, so the server never reads the filesystem for the
//! UI at run time and a path from a request can only ever select one of these entries.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Editor backups and hidden files are not part of the UI.
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            walk(root, &path, out);
        } else if ft.is_file() {
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let key = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((key, path));
        }
    }
}

/// FNV-1a 64: enough for an ETag (a change detector, not a security boundary).
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest).join("assets");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    let mut code = String::from("/// Embedded UI files: (path under assets/, contents, ETag).\n");
    code.push_str("pub static TABLE: &[(&str, &[u8], &str)] = &[\n");
    for (key, path) in &files {
        let data = std::fs::read(path).unwrap_or_default();
        let _ = writeln!(
            code,
            "    ({key:?}, include_bytes!({:?}), \"\\\"{:016x}-{:x}\\\"\"),",
            path.display().to_string(),
            fnv1a(&data),
            data.len()
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    if let Err(e) = std::fs::write(out.join("assets_table.rs"), code) {
        println!("cargo:warning=cannot write the asset table: {e}");
        std::process::exit(1);
    }
}
