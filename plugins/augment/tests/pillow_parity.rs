//! Pixel-for-pixel parity with Pillow: the goldens in tests/goldens/pba_ops.bin.gz were
//! written by tests/goldens/gen_pillow_goldens.py, which runs PBA's ops through Pillow on
//! three Fashion-MNIST images (LA mode) and three synthetic RGB images (RGBA mode). Each
//! case replays the same ops here and compares every value and every uncovered mark.

use flate2::read::GzDecoder;
use rand::SeedableRng;
use rolekd_augment::ops::basic::cutout_at;
use rolekd_augment::ops::pba::{cutout_fill, cutout_size, PbaOp};
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;
use std::collections::BTreeMap;
use std::io::Read;

struct Reader {
    buf: Vec<u8>,
    at: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        s
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take(2).try_into().unwrap())
    }
    fn i16(&mut self) -> i16 {
        i16::from_le_bytes(self.take(2).try_into().unwrap())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn string(&mut self, n: usize) -> String {
        String::from_utf8(self.take(n).to_vec()).unwrap()
    }
}

struct Op {
    name: String,
    level: u8,
    negate: bool,
    centre: Option<(usize, usize)>,
}

struct Case {
    input: usize,
    ops: Vec<Op>,
    data: Vec<u8>,
    mask: Vec<bool>,
}

fn load() -> (String, Vec<(String, Image)>, Vec<Case>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/goldens/pba_ops.bin.gz"
    );
    let file = std::fs::File::open(path).expect("goldens present");
    let mut buf = Vec::new();
    GzDecoder::new(file).read_to_end(&mut buf).unwrap();
    let mut r = Reader { buf, at: 0 };
    assert_eq!(r.take(8), b"RKDGOLD1");
    let n = r.u32() as usize;
    let version = r.string(n);
    let mut inputs = Vec::new();
    for _ in 0..r.u32() {
        let n = r.u16() as usize;
        let name = r.string(n);
        let (w, h, c) = (r.u16() as usize, r.u16() as usize, r.u8() as usize);
        let data = r.take(w * h * c).to_vec();
        inputs.push((name, Image::new(w, h, c, data)));
    }
    let mut cases = Vec::new();
    for _ in 0..r.u32() {
        let input = r.u16() as usize;
        let mut ops = Vec::new();
        for _ in 0..r.u8() {
            let n = r.u8() as usize;
            let name = r.string(n);
            let (level, negate) = (r.u8(), r.u8() != 0);
            let (cx, cy) = (r.i16(), r.i16());
            let centre = (cx >= 0).then_some((cx as usize, cy as usize));
            ops.push(Op {
                name,
                level,
                negate,
                centre,
            });
        }
        let img = &inputs[input].1;
        let data = r.take(img.data.len()).to_vec();
        let mask = r.take(img.pixels()).iter().map(|&m| m != 0).collect();
        cases.push(Case {
            input,
            ops,
            data,
            mask,
        });
    }
    assert_eq!(r.at, r.buf.len());
    (version, inputs, cases)
}

fn replay(img: &Image, ops: &[Op]) -> Image {
    let mut img = img.clone();
    let mut rng = StreamRng::seed_from_u64(0);
    for op in ops {
        let pba = PbaOp::from_name(&op.name).unwrap_or_else(|| panic!("op {}", op.name));
        match (pba, op.centre) {
            (PbaOp::Cutout, Some((cx, cy))) => {
                let fill = cutout_fill(img.channels);
                cutout_at(&mut img, cx, cy, cutout_size(op.level), &fill);
            }
            _ => pba.apply(&mut img, op.level, op.negate, &mut rng),
        }
    }
    img
}

#[derive(Default, Debug)]
struct Tally {
    cases: usize,
    values: usize,
    differing: usize,
    max_diff: u8,
    mask_differing: usize,
}

#[test]
fn pba_ops_match_pillow_pixel_for_pixel() {
    let (version, inputs, cases) = load();
    assert!(cases.len() > 600, "{} cases", cases.len());
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for case in &cases {
        let (name, input) = &inputs[case.input];
        let out = replay(input, &case.ops);
        let key = case
            .ops
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
            .join("+");
        let t = tallies.entry(key).or_default();
        t.cases += 1;
        t.values += out.data.len();
        for (a, b) in out.data.iter().zip(&case.data) {
            if a != b {
                t.differing += 1;
                t.max_diff = t.max_diff.max(a.abs_diff(*b));
            }
        }
        t.mask_differing += out
            .uncovered
            .iter()
            .zip(&case.mask)
            .filter(|(a, b)| a != b)
            .count();
        if out.data != case.data || out.uncovered != case.mask {
            let ops: Vec<String> = case
                .ops
                .iter()
                .map(|o| {
                    format!(
                        "{}({}{})",
                        o.name,
                        if o.negate { "-" } else { "+" },
                        o.level
                    )
                })
                .collect();
            eprintln!("differs: {name} {}", ops.join(" "));
        }
    }
    let mut failed = Vec::new();
    for (key, t) in &tallies {
        eprintln!(
            "{key:>26}: {:>3} cases, {}/{} values differ (max {}), {} marks differ",
            t.cases, t.differing, t.values, t.max_diff, t.mask_differing
        );
        if t.differing > 0 || t.mask_differing > 0 {
            failed.push(key.clone());
        }
    }
    assert!(failed.is_empty(), "not Pillow {version}-exact: {failed:?}");
}
