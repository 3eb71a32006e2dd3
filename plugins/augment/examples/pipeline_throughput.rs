//! Images/s of the full PBA pipeline (a 60-gene policy: 0/1/2 ops per image, then pad 4 +
//! random crop, flip, cutout) on one thread, for the benchmark in bench/augment.sh.
//!
//! cargo run --release -p rolekd-augment --example pipeline_throughput -- rgb 20000

use rand::SeedableRng;
use rolekd_augment::policy::finish::{CropOffsets, Finish};
use rolekd_augment::policy::pba::PbaPolicy;
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map(String::as_str).unwrap_or("rgb");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let (side, channels, cutout) = match kind {
        "gray" => (28, 1, 8),
        _ => (32, 3, 16),
    };
    // The same deterministic pixels the Python reference uses.
    let base = Image::new(
        side,
        side,
        channels,
        (0..side * side * channels)
            .map(|i| ((i * 37) % 251) as u8)
            .collect(),
    );
    // prob gene 5 (p = 0.5) and magnitude gene 6 for every op in both slots, as the reference.
    let genes: Vec<i64> = (0..60).map(|i| if i % 2 == 0 { 5 } else { 6 }).collect();
    let policy = PbaPolicy::from_genes(&genes).expect("valid genes");
    let finish = Finish {
        pad: 4,
        crop_offsets: CropOffsets::Full,
        flip: true,
        cutout,
    };
    let mut rng = StreamRng::seed_from_u64(0);
    let t = Instant::now();
    for _ in 0..n {
        let mut img = base.clone();
        policy.apply(&mut img, &mut rng);
        finish.apply(&mut img, &mut rng);
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{{\"images\": \"{kind}\", \"images_per_s\": {:.1}}}",
        n as f64 / s
    );
}
