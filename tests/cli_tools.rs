//! The tools around pipelines: schedule import/show/plot, augment apply/preview, models,
//! loss eval — run through the real binary.

mod common;
use common::*;
use std::path::Path;

fn hp(v: i64) -> serde_json::Value {
    serde_json::json!({ "hp_policy": vec![v; 60] })
}

/// A PBA log whose true ancestry is the last two lines (the first is a stale line).
fn pba_log() -> String {
    let lines = [
        serde_json::json!([9, 1, 2, 2, hp(0), hp(1)]),
        serde_json::json!([5, 2, 3, 3, hp(2), hp(3)]),
        serde_json::json!([5, 5, 6, 6, hp(3), hp(4)]),
    ];
    lines.iter().map(|l| l.to_string() + "\n").collect()
}

#[test]
fn schedule_import_show_and_plot() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "pbt_policy_5.txt", &pba_log());
    let o = run(
        d.path(),
        &[
            "schedule",
            "import",
            "--from",
            "pba",
            "pbt_policy_5.txt",
            "--epochs",
            "10",
            "-o",
            "s.json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(s["format"], "rolekd-schedule/1");
    let segs = s["segments"].as_array().unwrap();
    let bounds: Vec<(u64, u64)> = segs
        .iter()
        .map(|g| (g["start"].as_u64().unwrap(), g["end"].as_u64().unwrap()))
        .collect();
    assert_eq!(bounds, vec![(0, 3), (3, 6), (6, 10)]);
    // Segment k uses the policy whose genes are all 2, 3, 4 (prob = g/10).
    for (seg, g) in segs.iter().zip([2.0, 3.0, 4.0]) {
        let policy = seg["policy"].as_array().unwrap();
        assert_eq!(policy.len(), 30);
        assert_eq!(policy[0]["op"], "Rotate");
        assert!((policy[0]["prob"].as_f64().unwrap() - g / 10.0).abs() < 1e-9);
    }
    let o = run(d.path(), &["schedule", "show", "s.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Rotate"), "{}", stdout(&o));
    let o = run(d.path(), &["schedule", "plot", "s.json", "-o", "s.png"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        &std::fs::read(d.path().join("s.png")).unwrap()[..4],
        b"\x89PNG"
    );
}

#[test]
fn schedule_import_rejects_a_malformed_log() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "bad.txt", &(pba_log() + "[5, 5, not json\n"));
    let o = run(
        d.path(),
        &[
            "schedule", "import", "bad.txt", "--epochs", "10", "-o", "s.json",
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 4"), "{}", stderr(&o));
    assert!(!d.path().join("s.json").exists());
}

fn write_gray_png(path: &Path, w: u32, h: u32) {
    let data: Vec<u8> = (0..w * h).map(|i| ((i * 7) % 251) as u8 + 4).collect();
    let f = std::fs::File::create(path).unwrap();
    let mut e = png::Encoder::new(f, w, h);
    e.set_color(png::ColorType::Grayscale);
    e.set_depth(png::BitDepth::Eight);
    e.write_header().unwrap().write_image_data(&data).unwrap();
}

fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn augment_apply_is_deterministic_and_marks_uncovered_pixels() {
    let d = tempfile::tempdir().unwrap();
    write_gray_png(&d.path().join("in.png"), 28, 28);
    for out in ["a.png", "b.png"] {
        let o = run(
            d.path(),
            &[
                "augment", "apply", "--op", "Rotate", "--level", "9", "--sign", "neg", "in.png",
                out,
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (w, h, a) = read_png(&d.path().join("a.png"));
    assert_eq!((w, h), (28, 28));
    assert_eq!(a, read_png(&d.path().join("b.png")).2);
    // A 27-degree rotation uncovers the corners: written as 0 (the input has no zeros).
    assert_eq!(a[0], 0);
    assert_ne!(a, read_png(&d.path().join("in.png")).2);
    let o = run(
        d.path(),
        &[
            "augment", "apply", "--op", "Identity", "--level", "0", "in.png", "i.png",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        read_png(&d.path().join("i.png")).2,
        read_png(&d.path().join("in.png")).2
    );
    let o = run(
        d.path(),
        &[
            "augment", "apply", "--op", "Rotat", "--level", "3", "in.png", "x.png",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("did you mean `Rotate`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn augment_preview_draws_a_grid() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", &tiny_pipeline(1));
    let o = run(
        d.path(),
        &[
            "augment",
            "preview",
            f.to_str().unwrap(),
            "--stage",
            "teacher",
            "--role",
            "student",
            "-o",
            "grid.png",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (w, h, _) = read_png(&d.path().join("grid.png"));
    assert!(w > 8 * 28 && h > 6 * 28, "{w}x{h}");
}

#[test]
fn models_table_lists_sizes() {
    let d = tempfile::tempdir().unwrap();
    let o = run(d.path(), &["models"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.starts_with("resnet20 "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("272,474"), "{line}");
    assert!(out.lines().any(|l| l.starts_with("small-cnn ")), "{out}");
}

#[test]
fn loss_eval_matches_an_independent_kd_computation() {
    let d = tempfile::tempdir().unwrap();
    let s = [[1.0f32, 0.5, -0.3], [0.2, -1.0, 2.0]];
    let t = [[0.3f32, 1.5, -0.2], [1.0, 0.0, 0.5]];
    let flat = |m: &[[f32; 3]; 2]| m.iter().flatten().copied().collect::<Vec<f32>>();
    let st = tch::Tensor::from_slice(&flat(&s)).view([2, 3]);
    let tt = tch::Tensor::from_slice(&flat(&t)).view([2, 3]);
    let labels = tch::Tensor::from_slice(&[0i64, 2]);
    let path = d.path().join("in.safetensors");
    tch::Tensor::write_safetensors(
        &[
            ("student.logits", &st),
            ("teacher.logits", &tt),
            ("labels", &labels),
        ],
        &path,
    )
    .unwrap();
    let o = run(
        d.path(),
        &[
            "loss",
            "eval",
            "--loss",
            "{type: kd, temperature: 2, t_squared: true}",
            "--inputs",
            "in.safetensors",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let got: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    // KL(softmax(t/T) || softmax(s/T)) summed over classes, mean over the batch, times T^2.
    let temp = 2.0f64;
    let log_softmax = |row: &[f32; 3]| {
        let z: Vec<f64> = row.iter().map(|v| *v as f64 / temp).collect();
        let m = z.iter().cloned().fold(f64::MIN, f64::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        z.iter().map(|v| v - lse).collect::<Vec<f64>>()
    };
    let mut kl = 0.0;
    for i in 0..2 {
        let (ls, lt) = (log_softmax(&s[i]), log_softmax(&t[i]));
        kl += (0..3).map(|c| lt[c].exp() * (lt[c] - ls[c])).sum::<f64>();
    }
    let expected = kl / 2.0 * temp * temp;
    assert!(
        (got["loss"].as_f64().unwrap() - expected).abs() < 1e-5,
        "{got} vs {expected}"
    );
}
