//! The camera store `<data>/cameras.json`: cameras added in the web app (or by
//! `vigil demo`), with their passwords, so the file is private (mode 0600) and replaced
//! atomically (temporary file, fsync, rename, fsync of the directory): a crash leaves
//! either the old list or the new one, never half of one.
//!
//! Also the checks every camera spec passes before it is stored or started, whichever
//! way it came in ([`validate`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{CameraSource, CameraSpec, NvrError, RecordMode, Secret};

/// File name of the store in the data directory.
pub const CAMERAS_FILE: &str = "cameras.json";

/// Version of the file format, written into it.
const FORMAT_VERSION: u32 = 1;

/// The file as written.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    version: u32,
    cameras: Vec<CameraSpec>,
}

/// `<data>/cameras.json`.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(CAMERAS_FILE)
}

/// Reads the stored cameras (none if the file does not exist). Each is checked; the
/// source is always `Ui`.
pub(crate) fn load(data_dir: &Path) -> Result<Vec<CameraSpec>, NvrError> {
    let p = path(data_dir);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NvrError::Io {
                context: format!("reading {}", p.display()),
                source,
            })
        }
    };
    let file: StoreFile = serde_json::from_str(&text)
        .map_err(|e| NvrError::Invalid(format!("{}: {e}", p.display())))?;
    if file.version != FORMAT_VERSION {
        return Err(NvrError::Invalid(format!(
            "{}: format version {} is not supported (expected {FORMAT_VERSION})",
            p.display(),
            file.version
        )));
    }
    let mut out: Vec<CameraSpec> = Vec::with_capacity(file.cameras.len());
    for mut spec in file.cameras {
        spec.source = CameraSource::Ui;
        validate(&mut spec).map_err(|e| NvrError::Invalid(format!("{}: {e}", p.display())))?;
        if out.iter().any(|c| c.name == spec.name) {
            return Err(NvrError::Invalid(format!(
                "{}: camera {:?} is stored twice",
                p.display(),
                spec.name
            )));
        }
        out.push(spec);
    }
    Ok(out)
}

/// Replaces the store with `cameras` (passwords included): mode 0600 from creation,
/// written to a temporary file, fsynced, renamed over the old one, directory fsynced.
pub(crate) fn save(data_dir: &Path, cameras: &[CameraSpec]) -> Result<(), NvrError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |context: String| move |source| NvrError::Io { context, source };
    let file = StoreFile {
        version: FORMAT_VERSION,
        cameras: cameras.to_vec(),
    };
    let json = serde_json::to_vec_pretty(&file)
        .map_err(|e| NvrError::Invalid(format!("cannot serialize the camera list: {e}")))?;
    let final_path = path(data_dir);
    let tmp = data_dir.join(format!("{CAMERAS_FILE}.tmp"));
    // A leftover from a crash may have any mode: start from a fresh file.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(format!("creating {}", tmp.display())))?;
    f.write_all(&json)
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(io(format!("writing {}", tmp.display())))?;
    drop(f);
    std::fs::rename(&tmp, &final_path).map_err(io(format!(
        "replacing {} with {}",
        final_path.display(),
        tmp.display()
    )))?;
    // The rename is durable only once the directory is.
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", data_dir.display())))?;
    Ok(())
}

/// Checks a spec and puts it in canonical form: credentials written into a URL move into
/// `username`/`password` (explicit fields win), the transport is lower case. The message
/// of an error never contains a password.
pub fn validate(spec: &mut CameraSpec) -> Result<(), NvrError> {
    let bad = |m: String| Err(NvrError::Invalid(m));
    vigil_recorder::check_name(&spec.name).map_err(|e| NvrError::Invalid(format!("name: {e}")))?;
    let (url, user, pass) = clean_url(&spec.name, "main", &spec.url)?;
    spec.url = url;
    let mut url_user = user;
    let mut url_pass = pass;
    if let Some(sub) = spec.sub_url.take().filter(|s| !s.trim().is_empty()) {
        let (url, user, pass) = clean_url(&spec.name, "sub", &sub)?;
        spec.sub_url = Some(url);
        url_user = url_user.or(user);
        url_pass = url_pass.or(pass);
    }
    if spec.username.as_deref().is_some_and(str::is_empty) {
        spec.username = None;
    }
    if spec.username.is_none() {
        spec.username = url_user;
    }
    if spec.password.is_none() {
        spec.password = url_pass.map(Secret::new);
    }
    if spec.password.is_some() && spec.username.is_none() {
        return bad(format!("camera {:?}: password without username", spec.name));
    }
    if spec
        .username
        .as_deref()
        .is_some_and(|u| u.chars().any(char::is_control))
    {
        return bad(format!("camera {:?}: bad username", spec.name));
    }
    if spec.max_age_s == Some(0) || spec.event_max_age_s == Some(0) {
        return bad(format!(
            "camera {:?}: a maximum age must be at least 1 second",
            spec.name
        ));
    }
    if let RecordMode::Motion {
        pre_roll_s,
        post_roll_s,
    } = spec.record
    {
        if pre_roll_s > 60 || post_roll_s > 3600 {
            return bad(format!(
                "camera {:?}: pre_roll_s must be at most 60 and post_roll_s at most 3600",
                spec.name
            ));
        }
        if !spec.motion.enabled {
            return bad(format!(
                "camera {:?}: motion-only recording needs motion detection enabled",
                spec.name
            ));
        }
    }
    validate_motion(&spec.name, &spec.motion)?;
    // And as the detector will take them (zone polygons on its grid).
    crate::motion::validate_settings(&spec.motion)
        .map_err(|e| NvrError::Invalid(format!("camera {:?}: {e}", spec.name)))
}

fn validate_motion(camera: &str, m: &crate::MotionSettings) -> Result<(), NvrError> {
    let bad = |m: String| Err(NvrError::Invalid(format!("camera {camera:?}: {m}")));
    if !(m.fps.is_finite() && m.fps > 0.0 && m.fps <= 30.0) {
        return bad("motion fps must be above 0 and at most 30".into());
    }
    if !(1..=100).contains(&m.sensitivity) {
        return bad("motion sensitivity must be 1 to 100".into());
    }
    let pct_ok = |p: f32| p.is_finite() && (0.0..=100.0).contains(&p);
    if !pct_ok(m.min_area_pct) {
        return bad("motion min_area_pct must be 0 to 100".into());
    }
    let secs_ok = |s: f32| s.is_finite() && (0.0..=3600.0).contains(&s);
    if !secs_ok(m.min_duration_s) || !secs_ok(m.cooldown_s) {
        return bad("motion min_duration_s and cooldown_s must be 0 to 3600".into());
    }
    if m.zones.len() > 32 {
        return bad("at most 32 zones".into());
    }
    for (i, z) in m.zones.iter().enumerate() {
        let name_ok = !z.name.is_empty()
            && z.name.len() <= 64
            && z.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return bad(format!(
                "zone #{}: name must be 1-64 of A-Z a-z 0-9 _ -",
                i + 1
            ));
        }
        if m.zones.iter().filter(|o| o.name == z.name).count() > 1 {
            return bad(format!("zone {:?} is defined twice", z.name));
        }
        if !(3..=64).contains(&z.points.len()) {
            return bad(format!("zone {:?} needs 3 to 64 points", z.name));
        }
        let in_unit = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        if !z.points.iter().all(|[x, y]| in_unit(*x) && in_unit(*y)) {
            return bad(format!(
                "zone {:?}: points must be within 0..1 (fractions of the picture)",
                z.name
            ));
        }
        if z.sensitivity.is_some_and(|s| !(1..=100).contains(&s)) {
            return bad(format!("zone {:?}: sensitivity must be 1 to 100", z.name));
        }
        if z.min_area_pct.is_some_and(|p| !pct_ok(p)) {
            return bad(format!("zone {:?}: min_area_pct must be 0 to 100", z.name));
        }
    }
    Ok(())
}

/// Checks an RTSP URL and returns it without user information, plus that information
/// (percent-decoded, RFC 3986 §3.2.1). Unparseable input is never echoed: it may hold a
/// password in a shape the parser does not recognise.
fn clean_url(
    camera: &str,
    stream: &str,
    url: &str,
) -> Result<(String, Option<String>, Option<String>), NvrError> {
    // The same check as every other way a camera becomes an ingest.
    let mut u = vigil_ingest::camera_url(url)
        .map_err(|e| NvrError::Invalid(format!("camera {camera:?}: {stream} {e}")))?;
    // IngestConfig::new does the moving and the decoding; reuse it rather than repeat it.
    let (user, pass) = if u.username().is_empty() && u.password().is_none() {
        (None, None)
    } else {
        let cfg = vigil_ingest::IngestConfig::new("validate", u.clone());
        let _ = u.set_username("");
        let _ = u.set_password(None);
        (cfg.username, cfg.password)
    };
    Ok((u.to_string(), user, pass))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MotionSettings, ZoneKind, ZoneSpec};

    pub(crate) fn spec(name: &str, url: &str) -> CameraSpec {
        CameraSpec {
            name: name.into(),
            url: url.into(),
            sub_url: None,
            username: None,
            password: None,
            transport: crate::Transport::Tcp,
            audio: true,
            max_age_s: None,
            event_max_age_s: None,
            record: RecordMode::Continuous,
            motion: MotionSettings::default(),
            source: CameraSource::Ui,
        }
    }

    #[test]
    fn the_store_round_trips_with_private_permissions() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty(), "no file = no cameras");
        let mut a = spec("porch", "rtsp://192.0.2.1/main");
        a.username = Some("viewer".into());
        a.password = Some(Secret::new("s3cret-pw"));
        a.sub_url = Some("rtsp://192.0.2.1/sub".into());
        a.max_age_s = Some(86_400);
        a.record = RecordMode::Motion {
            pre_roll_s: 5,
            post_roll_s: 10,
        };
        a.motion.zones.push(ZoneSpec {
            name: "drive".into(),
            kind: ZoneKind::Zone,
            points: vec![[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]],
            sensitivity: Some(70),
            min_area_pct: None,
        });
        let b = spec("yard", "rtsp://192.0.2.2:8554/main");
        save(dir.path(), &[a.clone(), b.clone()]).unwrap();
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        assert_eq!(load(dir.path()).unwrap(), vec![a.clone(), b]);
        // Replaced atomically: no temporary file is left, the new list is complete.
        save(dir.path(), &[a.clone()]).unwrap();
        assert_eq!(load(dir.path()).unwrap(), vec![a]);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [CAMERAS_FILE]);
    }

    #[test]
    fn a_broken_store_is_an_error_naming_the_file_not_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), b"{\"version\":1,\"cameras\":[{\"name\":").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(CAMERAS_FILE), "{e}");
        std::fs::write(
            path(dir.path()),
            br#"{"version":1,"cameras":[{"name":"../etc","url":"rtsp://h/"}]}"#,
        )
        .unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("invalid name"), "{e}");
    }

    #[test]
    fn credentials_move_out_of_the_url() {
        let mut s = spec("door", "rtsp://admin:pa%40ss@192.0.2.7:554/live");
        validate(&mut s).unwrap();
        assert_eq!(s.url, "rtsp://192.0.2.7:554/live");
        assert_eq!(s.username.as_deref(), Some("admin"));
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("pa@ss"));
        // Explicit fields win over the URL's.
        let mut s = spec("door", "rtsp://admin:old@192.0.2.7/live");
        s.username = Some("viewer".into());
        s.password = Some(Secret::new("new"));
        validate(&mut s).unwrap();
        assert_eq!(s.username.as_deref(), Some("viewer"));
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("new"));
        assert!(!s.url.contains("old"));
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let err = |f: &dyn Fn(&mut CameraSpec)| {
            let mut s = spec("cam", "rtsp://192.0.2.1/main");
            f(&mut s);
            validate(&mut s).unwrap_err().to_string()
        };
        assert!(err(&|s| s.name = "../x".into()).contains("name"));
        assert!(err(&|s| s.name = String::new()).contains("name"));
        assert!(err(&|s| s.url = "http://h/".into()).contains("rtsp://"));
        assert!(err(&|s| s.url = "rtsp:///path".into()).contains("host"));
        assert!(err(&|s| s.url = "not a url".into()).contains("not a URL"));
        assert!(err(&|s| s.sub_url = Some("https://h/".into())).contains("sub URL"));
        assert!(err(&|s| s.password = Some(Secret::new("x"))).contains("without username"));
        assert!(err(&|s| s.max_age_s = Some(0)).contains("maximum age"));
        assert!(err(&|s| {
            s.record = RecordMode::Motion {
                pre_roll_s: 5,
                post_roll_s: 5,
            };
            s.motion.enabled = false;
        })
        .contains("needs motion detection"));
        assert!(err(&|s| s.motion.sensitivity = 0).contains("sensitivity"));
        assert!(err(&|s| s.motion.fps = f32::NAN).contains("fps"));
        let zone = |points: Vec<[f32; 2]>| ZoneSpec {
            name: "z".into(),
            kind: ZoneKind::Mask,
            points,
            sensitivity: None,
            min_area_pct: None,
        };
        let two = zone(vec![[0.0, 0.0], [1.0, 1.0]]);
        assert!(err(&|s| s.motion.zones = vec![two.clone()]).contains("3 to 64 points"));
        let outside = zone(vec![[0.0, 0.0], [1.5, 0.0], [0.0, 1.0]]);
        assert!(err(&|s| s.motion.zones = vec![outside.clone()]).contains("0..1"));
        let ok = zone(vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]);
        assert!(err(&|s| s.motion.zones = vec![ok.clone(), ok.clone()]).contains("twice"));
        let mut bad_name = ok.clone();
        bad_name.name = "<img>".into();
        assert!(err(&|s| s.motion.zones = vec![bad_name.clone()]).contains("zone #1"));
        // A password in an unparseable URL is never echoed.
        let e = err(&|s| s.url = "rtsp://u:sekrit@[bad".into());
        assert!(!e.contains("sekrit"), "{e}");
        // And a good one passes.
        let mut s = spec("cam", "rtsp://192.0.2.1/main");
        s.motion.zones = vec![ok];
        validate(&mut s).unwrap();
    }

    #[test]
    fn transport_is_read_in_any_case_and_written_lowercase() {
        let read = |t: serde_json::Value| {
            serde_json::from_value::<CameraSpec>(
                serde_json::json!({"name": "a", "url": "rtsp://h/", "transport": t}),
            )
        };
        let s = read("UDP".into()).unwrap();
        assert_eq!(s.transport, crate::Transport::Udp);
        assert_eq!(serde_json::to_value(&s).unwrap()["transport"], "udp");
        assert_eq!(read("tcp".into()).unwrap().transport, crate::Transport::Tcp);
        let e = read("sctp".into()).unwrap_err().to_string();
        assert!(e.contains("transport") && e.contains("sctp"), "{e}");
        assert!(read(3.into()).is_err());
        let absent: CameraSpec =
            serde_json::from_value(serde_json::json!({"name": "a", "url": "rtsp://h/"})).unwrap();
        assert_eq!(absent.transport, crate::Transport::Tcp);
    }
}
