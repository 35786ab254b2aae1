use super::*;
use crate::testutil::{AuGen, FRAME_90K};

fn run(gen_aus: impl IntoIterator<Item = AccessUnit>, config: SegmenterConfig) -> Vec<FileOp> {
    let mut s = Segmenter::new(config);
    let mut out = Vec::new();
    for au in gen_aus {
        s.push(au, &mut out);
    }
    s.finish(&mut out);
    out
}

/// Files as lists of fragments.
fn files(ops: &[FileOp]) -> Vec<Vec<FragmentOut>> {
    let mut out: Vec<Vec<FragmentOut>> = Vec::new();
    for e in ops {
        match e {
            FileOp::StartFile { .. } => out.push(Vec::new()),
            FileOp::Fragment(f) => out.last_mut().unwrap().push(f.clone()),
            FileOp::EndFile(_) => {}
        }
    }
    out
}

#[test]
fn fragments_are_at_most_one_second_contiguous_and_start_on_keys_when_possible() {
    // A 12-second stream whose key frames come every 3 pictures (test clip), then one with
    // key frames only every 60 pictures (2 s), to force cuts at the 1 s limit.
    let mut g = AuGen::new(0);
    let mut aus: Vec<AccessUnit> = (0..360).map(|_| g.next_au()).collect();
    for (i, au) in aus.iter_mut().enumerate().skip(180) {
        au.key = i % 60 == 0;
    }
    let ops = run(aus, SegmenterConfig::default());
    let files = files(&ops);
    assert_eq!(files.len(), 1);
    let frags = &files[0];
    let mut next = 0;
    let mut total = 0;
    for f in frags {
        assert_eq!(f.base_decode_time, next, "fragments are contiguous");
        assert!(
            f.duration_90k() <= 90_000,
            "fragment of {} ticks",
            f.duration_90k()
        );
        assert!(f.samples.iter().all(|s| s.duration == FRAME_90K as u32));
        next += f.duration_90k();
        total += f.samples.len();
    }
    assert_eq!(total, 360, "every access unit is written");
    assert_eq!(
        frags.iter().map(|f| f.seq).collect::<Vec<_>>(),
        (1..=frags.len() as u32).collect::<Vec<_>>()
    );
    // In the part with 2 s GOPs, fragments run a full second.
    assert!(frags.iter().any(|f| f.duration_90k() == 90_000));
}

#[test]
fn rotates_at_key_frame_after_file_duration() {
    let mut g = AuGen::new(0);
    let aus: Vec<_> = (0..300).map(|_| g.next_au()).collect(); // 10 s
    let config = SegmenterConfig {
        file_duration_90k: 4 * 90_000,
        ..Default::default()
    };
    let ops = run(aus, config);
    let starts: Vec<_> = ops
        .iter()
        .filter_map(|e| match e {
            FileOp::StartFile { continues, .. } => Some(*continues),
            _ => None,
        })
        .collect();
    assert_eq!(
        starts,
        vec![None, Some(EndReason::Rotation), Some(EndReason::Rotation)]
    );
    let f = files(&ops);
    assert_eq!(
        f[0].iter().map(FragmentOut::duration_90k).sum::<u64>(),
        4 * 90_000
    );
    assert_eq!(
        f[1][0].base_decode_time, 0,
        "each file starts at decode time 0"
    );
    assert!(f[1][0].samples[0].is_sync);
}

#[test]
fn parameter_change_starts_a_new_file() {
    let mut g = AuGen::new(0);
    let mut aus: Vec<_> = (0..30).map(|_| g.next_au()).collect();
    let mut bigger = (*g.params).clone();
    bigger.width = 320;
    bigger.height = 240;
    g.params = Arc::new(bigger);
    g.align_to_key();
    aus.extend((0..30).map(|_| g.next_au()));
    let ops = run(aus, SegmenterConfig::default());
    let ends: Vec<_> = ops
        .iter()
        .filter_map(|e| match e {
            FileOp::EndFile(r) => Some(*r),
            _ => None,
        })
        .collect();
    assert_eq!(ends, vec![EndReason::ParamsChanged, EndReason::StreamEnd]);
    let widths: Vec<_> = ops
        .iter()
        .filter_map(|e| match e {
            FileOp::StartFile { params, .. } => Some(params.width),
            _ => None,
        })
        .collect();
    assert_eq!(widths, vec![160, 320]);
}

#[test]
fn backwards_or_jumping_timestamps_end_the_file() {
    let mut g = AuGen::new(0);
    let mut aus: Vec<_> = (0..30).map(|_| g.next_au()).collect();
    g.pts -= 10 * 90_000; // backwards
    g.align_to_key();
    aus.extend((0..30).map(|_| g.next_au()));
    g.pts += 60 * 90_000; // forward jump
    g.n += 1; // a P picture first: dropped, a file cannot start on it
    aus.push(g.next_au());
    g.align_to_key();
    aus.extend((0..30).map(|_| g.next_au()));
    let mut s = Segmenter::new(SegmenterConfig::default());
    let mut ops = Vec::new();
    for au in aus {
        s.push(au, &mut ops);
    }
    s.finish(&mut ops);
    let ends: Vec<_> = ops
        .iter()
        .filter_map(|e| match e {
            FileOp::EndFile(r) => Some(*r),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        vec![
            EndReason::TimeBackwards,
            EndReason::TimeJump,
            EndReason::StreamEnd
        ]
    );
    assert!(s.dropped() >= 1);
    for file in files(&ops) {
        // The file's last sample borrows the previous duration: no negative or zero durations.
        assert!(file
            .iter()
            .flat_map(|f| &f.samples)
            .all(|s| s.duration == FRAME_90K as u32));
    }
}

#[test]
fn waits_for_a_key_frame() {
    let mut g = AuGen::new(0);
    g.n = 1; // start on a P picture
    let ops = run((0..10).map(|_| g.next_au()), SegmenterConfig::default());
    match &ops[0] {
        FileOp::StartFile { .. } => {}
        e => panic!("{e:?}"),
    }
    let f = files(&ops);
    assert!(f[0][0].samples[0].is_sync);
}

#[test]
fn file_paths_round_trip() {
    // 2024-02-29T23:59:58.000123Z
    let t = 1_709_251_198_000_123;
    let p = file_path("door", "main", t);
    assert_eq!(p, "door/main/20240229/235958-000123.mp4");
    assert_eq!(parse_file_path(&p), Some(("door".into(), "main".into(), t)));
    assert_eq!(parse_file_path("door/main/20240229/x.mp4"), None);
    assert_eq!(parse_file_path("../main/20240229/235958-000123.mp4"), None);
    assert_eq!(
        parse_file_path("door/main/20241329/235958-000123.mp4"),
        None
    );
}

/// Events of `aus` with a discontinuity reported just before access unit `mark_before`
/// (at pts `mark_pts`).
fn run_marked(aus: Vec<AccessUnit>, mark_before: usize, mark_pts: i64) -> Vec<FileOp> {
    let mut s = Segmenter::new(SegmenterConfig::default());
    let mut out = Vec::new();
    for (i, au) in aus.into_iter().enumerate() {
        if i == mark_before {
            s.mark_discontinuity(mark_pts);
        }
        s.push(au, &mut out);
    }
    s.finish(&mut out);
    out
}

fn end_reasons(ops: &[FileOp]) -> Vec<EndReason> {
    ops.iter()
        .filter_map(|e| match e {
            FileOp::EndFile(r) => Some(*r),
            _ => None,
        })
        .collect()
}

#[test]
fn a_reported_discontinuity_starts_a_new_continuous_file_at_its_key_frame() {
    let mut g = AuGen::new(0);
    let aus: Vec<AccessUnit> = (0..60).map(|_| g.next_au()).collect();
    let key = aus
        .iter()
        .position(|a| a.key && a.pts >= 30 * FRAME_90K)
        .unwrap();
    let pts = aus[key].pts;
    let ops = run_marked(aus, key, pts);
    assert_eq!(
        end_reasons(&ops),
        [EndReason::Discontinuity, EndReason::StreamEnd]
    );
    let starts: Vec<_> = ops
        .iter()
        .filter_map(|e| match e {
            FileOp::StartFile { continues, .. } => Some(*continues),
            _ => None,
        })
        .collect();
    assert_eq!(starts, [None, Some(EndReason::Discontinuity)]);
    let fs = files(&ops);
    // Nothing dropped, the first file's last sample ends where the second file begins.
    let samples = |f: &Vec<FragmentOut>| f.iter().map(|x| x.samples.len()).sum::<usize>();
    assert_eq!(samples(&fs[0]) + samples(&fs[1]), 60);
    assert_eq!(samples(&fs[0]), key);
    let first_len: u64 = fs[0].iter().map(FragmentOut::duration_90k).sum();
    assert_eq!(first_len, pts as u64);
    assert!(EndReason::Discontinuity.is_continuous());
}

#[test]
fn a_discontinuity_mid_gop_cuts_at_the_next_key_frame_dropping_nothing() {
    let mut g = AuGen::new(0);
    let mut aus: Vec<AccessUnit> = (0..90).map(|_| g.next_au()).collect();
    // Key frames every 30 pictures (1 s GOPs).
    for (i, au) in aus.iter_mut().enumerate() {
        au.key = i % 30 == 0;
    }
    let pts = aus[40].pts;
    let ops = run_marked(aus, 40, pts);
    let fs = files(&ops);
    assert_eq!(fs.len(), 2);
    let samples = |f: &Vec<FragmentOut>| f.iter().map(|x| x.samples.len()).sum::<usize>();
    assert_eq!((samples(&fs[0]), samples(&fs[1])), (60, 30));
}

#[test]
fn a_late_report_cuts_at_the_next_key_frame_and_a_report_without_a_file_is_ignored() {
    let mut g = AuGen::new(0);
    let mut aus: Vec<AccessUnit> = (0..90).map(|_| g.next_au()).collect();
    for (i, au) in aus.iter_mut().enumerate() {
        au.key = i % 30 == 0;
    }
    // The report for pts of picture 10 arrives after picture 20 was recorded.
    let pts = aus[10].pts;
    let ops = run_marked(aus.clone(), 21, pts);
    assert_eq!(files(&ops).len(), 2);
    assert_eq!(
        end_reasons(&ops),
        [EndReason::Discontinuity, EndReason::StreamEnd]
    );

    let mut s = Segmenter::new(SegmenterConfig::default());
    s.mark_discontinuity(0);
    let mut out = Vec::new();
    for au in aus {
        s.push(au, &mut out);
    }
    s.finish(&mut out);
    assert_eq!(files(&out).len(), 1);
}
