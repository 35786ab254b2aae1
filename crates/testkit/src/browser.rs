//! Helpers for driving Vigil's web app in a real Chromium (WebDriver): shared by the browser
//! end-to-end tests and the `browser` benchmark.

use serde_json::Value;

/// Waits for the next frame of the video matching `arguments[0]`, draws it on a canvas and
/// returns the luma of its top rows (where the test pattern's code is), base64, with the
/// frame's display time on the wall clock (`displayMs`) and its `mediaTime`.
pub const GRAB_FRAME_JS: &str = "const [css, rows, done] = arguments;
    const v = document.querySelector(css);
    if (!v || !v.requestVideoFrameCallback) { done(null); return; }
    const timer = setTimeout(() => done(null), 5000);
    v.requestVideoFrameCallback((now, meta) => {
        clearTimeout(timer);
        const displayMs = Date.now() + (meta.expectedDisplayTime - performance.now());
        const w = v.videoWidth, h = Math.min(rows, v.videoHeight);
        const c = document.createElement('canvas');
        c.width = w; c.height = v.videoHeight;
        const g = c.getContext('2d', {willReadFrequently: true});
        g.drawImage(v, 0, 0);
        const px = g.getImageData(0, 0, w, h).data;
        const y = new Uint8Array(w * h);
        for (let i = 0; i < w * h; i++) {
            // BT.601 studio range, as the camera encoded it.
            y[i] = Math.round(16 + 0.257 * px[4*i] + 0.504 * px[4*i+1] + 0.098 * px[4*i+2]);
        }
        let s = '';
        for (let i = 0; i < y.length; i += 8192) s += String.fromCharCode.apply(null, y.subarray(i, i + 8192));
        done({w, h, y: btoa(s), displayMs, mediaTime: meta.mediaTime});
    });";

/// Latencies (ms) of `cam` reported between two snapshots of the web app's `window.__vigil.stats`. The player keeps
/// only its newest samples, so the count comes from its `frames` counter.
pub fn new_latencies(before: &Value, after: &Value, cam: &str) -> Vec<f64> {
    let all: Vec<f64> = after[cam]["latencies"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let old_len = before[cam]["latencies"].as_array().map_or(0, Vec::len);
    let new = match (
        before[cam]["frames"].as_u64(),
        after[cam]["frames"].as_u64(),
    ) {
        (Some(f0), Some(f1)) => usize::try_from(f1.saturating_sub(f0)).unwrap_or(usize::MAX),
        _ => all.len().saturating_sub(old_len),
    };
    all.get(all.len().saturating_sub(new)..)
        .map(<[f64]>::to_vec)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_latencies_counts_frames_not_lengths() {
        let before = json!({"a": {"latencies": [1.0, 2.0], "frames": 2}});
        let after = json!({"a": {"latencies": [1.0, 2.0, 3.0, 4.0, 5.0], "frames": 5}});
        assert_eq!(new_latencies(&before, &after, "a"), vec![3.0, 4.0, 5.0]);
        // The player dropped its oldest samples: the frame counter still says how many are new.
        let trimmed = json!({"a": {"latencies": [4.0, 5.0, 6.0], "frames": 6}});
        assert_eq!(new_latencies(&before, &trimmed, "a"), vec![4.0, 5.0, 6.0]);
        assert!(new_latencies(&before, &json!(null), "a").is_empty());
    }
}
