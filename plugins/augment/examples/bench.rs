//! Throughput of the per-image policies on 32x32 RGB images, one thread.
//!
//! cargo run --release -p rolekd-augment --example bench

use rand::SeedableRng;
use rolekd_augment::ops::pba::PbaOp;
use rolekd_augment::policy::finish::{CropOffsets, Finish};
use rolekd_augment::policy::pba::PbaPolicy;
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;
use std::time::Instant;

fn main() {
    let base = Image::new(
        32,
        32,
        3,
        (0..3072).map(|i| ((i * 37) % 251) as u8).collect(),
    );
    let n = 20_000;
    let mut rng = StreamRng::seed_from_u64(0);
    for op in PbaOp::ALL {
        let t = Instant::now();
        for _ in 0..n {
            let mut img = base.clone();
            op.apply(&mut img, 7, false, &mut rng);
        }
        let s = t.elapsed().as_secs_f64();
        println!("{:>13}: {:>9.0} images/s", op.name(), n as f64 / s);
    }
    // Every op with probability 0.5 in both slots: about 1.5 ops per image on average.
    let genes: Vec<i64> = (0..60).map(|i| if i % 2 == 0 { 5 } else { 6 }).collect();
    let policy = PbaPolicy::from_genes(&genes).unwrap();
    let finish = Finish {
        pad: 4,
        crop_offsets: CropOffsets::Full,
        flip: true,
        cutout: 16,
    };
    let t = Instant::now();
    for _ in 0..n {
        let mut img = base.clone();
        policy.apply(&mut img, &mut rng);
        finish.apply(&mut img, &mut rng);
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "PBA policy + pad-crop + flip + cutout: {:.0} images/s",
        n as f64 / s
    );
}
