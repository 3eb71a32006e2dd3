//! The two schedule logs PBA's authors released (`tests/fixtures/pba/`, quoted trial
//! ids and bare-list policies: the two spellings the importer has branches for) import, and
//! give the segments PBA's own `parse_log` yields.
//!
//! Expected values were derived by hand from the files and the decoding rule in
//! `shared/method.md` ("PBA log format"):
//! - Each line is `[target, clone, target_iter, clone_iter, old, new]`. In both files every
//!   line's target equals the next line's clone (rcifar10: '9' -> clone '9' on line 2,
//!   '7' -> '7', '0' -> '0', ...; rsvhn: '9' -> '9', '7' -> '7', '12' -> '12', ...), so no
//!   line is stale and nothing is dropped.
//! - Segment boundaries are the clone iterations (4th field) in order, then the searched
//!   epochs: rcifar10 (16 lines, 200 epochs) 12, 34, 54, 74, 75, 81, 84, 111, 117, 138, 144,
//!   153, 160, 177, 183, 195; rsvhn (13 lines, 160 epochs) 9, 24, 30, 38, 45, 69, 75, 100,
//!   104, 108, 147, 153, 159.
//! - The first segment is line 1's old policy (all 60 genes 0 in both files); segment k
//!   (k >= 1) is line k's new policy. Genes: slot 1 is genes 0..30 and op j has probability
//!   gene 2j (tenths) and magnitude gene 2j + 1, in the order Rotate, TranslateX,
//!   TranslateY, Brightness, Color, Invert, ... So rcifar10 line 1's new policy
//!   `[0, 3, 3, 7, 1, 9, 2, 0, 2, 0, ...]` starts: Rotate p 0 (magnitude 3, unused),
//!   TranslateX p 0.3 m 7, TranslateY p 0.1 m 9, Brightness p 0.2 m 0, Color p 0.2 m 0.

use rolekd_augment::schedule::{import_pba_log, Schedule};
use std::path::PathBuf;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pba")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the fixtures in the repository)", path.display()))
}

fn ends(s: &Schedule) -> Vec<usize> {
    s.segments.iter().map(|x| x.end).collect()
}

/// Checks the probability and magnitude of `op` in slot 1 of segment `k`.
fn gene(s: &Schedule, k: usize, op: &str, prob: f64, magnitude: u8) {
    let e = s.segments[k]
        .policy
        .iter()
        .find(|e| e.op == op && e.slot == 1)
        .unwrap_or_else(|| panic!("segment {k} has no ({op}, slot 1)"));
    assert_close(e.prob, prob);
    assert_eq!(e.magnitude, magnitude, "segment {k}, {op}");
}

/// Entries with p > 0 and the sum of their probabilities.
fn active(s: &Schedule, k: usize) -> (usize, f64) {
    let p = &s.segments[k].policy;
    let n = p.iter().filter(|e| e.prob > 0.0).count();
    (n, p.iter().map(|e| e.prob).sum())
}

/// Segment `k` has `n` entries with p > 0, whose probabilities sum to `sum`.
fn active_entries(s: &Schedule, k: usize, n: usize, sum: f64) {
    let (got_n, got_sum) = active(s, k);
    assert_eq!(got_n, n, "segment {k}");
    assert_close(got_sum, sum);
}

fn assert_close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn reduced_cifar10_log_imports_as_parse_log_reads_it() {
    let s = import_pba_log(&fixture("rcifar10_16_wrn.txt"), 200).unwrap();
    assert_eq!(s.epochs, 200);
    assert_eq!(s.segments[0].start, 0);
    assert_eq!(
        ends(&s),
        [12, 34, 54, 74, 75, 81, 84, 111, 117, 138, 144, 153, 160, 177, 183, 195, 200]
    );
    assert_eq!(
        active(&s, 0).0,
        0,
        "the search starts from the all-zero policy"
    );
    gene(&s, 1, "TranslateX", 0.3, 7);
    gene(&s, 1, "TranslateY", 0.1, 9);
    gene(&s, 1, "Brightness", 0.2, 0);
    active_entries(&s, 1, 13, 3.3);
    // The last segment (epochs 195..200) is line 16's new policy.
    gene(&s, 16, "TranslateX", 0.6, 6);
    gene(&s, 16, "TranslateY", 1.0, 0);
    active_entries(&s, 16, 22, 14.9);
}

#[test]
fn reduced_svhn_log_imports_as_parse_log_reads_it() {
    let s = import_pba_log(&fixture("rsvhn_16_wrn.txt"), 160).unwrap();
    assert_eq!(s.epochs, 160);
    assert_eq!(
        ends(&s),
        [9, 24, 30, 38, 45, 69, 75, 100, 104, 108, 147, 153, 159, 160]
    );
    assert_eq!(active(&s, 0).0, 0);
    // Line 1's new policy: [0, 0, 1, 3, 1, 3, 0, 0, 2, 0, 4, 0, ...].
    gene(&s, 1, "TranslateX", 0.1, 3);
    gene(&s, 1, "TranslateY", 0.1, 3);
    gene(&s, 1, "Invert", 0.4, 0);
    active_entries(&s, 1, 13, 2.9);
    // The last segment (epoch 159) is line 13's new policy.
    gene(&s, 13, "Rotate", 0.8, 2);
    gene(&s, 13, "TranslateX", 0.9, 0);
    active_entries(&s, 13, 27, 19.2);
}
