//! Renders a random PBA-like schedule's plot and a preview grid of a PBA policy on the
//! first Fashion-MNIST training images (or synthetic ones when the data set is missing).
//!
//! cargo run -p rolekd-augment --example preview -- OUT_DIR

use flate2::read::GzDecoder;
use rand::SeedableRng;
use rolekd_augment::plot::{plot_png, preview_grid_png};
use rolekd_augment::policy::pba::PbaPolicy;
use rolekd_augment::schedule::{render_table, Schedule};
use rolekd_augment::space::pba_explore;
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;
use std::io::Read;
use std::path::PathBuf;

fn fashion_mnist(n: usize) -> Option<Vec<Image>> {
    let dir =
        std::env::var("ROLEKD_FASHION_MNIST").unwrap_or("/usr/share/datasets/fashion-mnist".into());
    let file = std::fs::File::open(PathBuf::from(dir).join("train-images-idx3-ubyte.gz")).ok()?;
    let mut buf = Vec::new();
    GzDecoder::new(file).read_to_end(&mut buf).ok()?;
    Some(
        (0..n)
            .map(|i| Image::new(28, 28, 1, buf[16 + i * 784..16 + (i + 1) * 784].to_vec()))
            .collect(),
    )
}

fn main() -> rolekd_core::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    std::fs::create_dir_all(&out).map_err(|e| rolekd_core::Error::io(&out, e))?;
    let mut rng = StreamRng::seed_from_u64(1);
    // A lineage of explored policies, as a PBA search would leave one.
    let mut genes = vec![0i64; 60];
    let mut pieces = Vec::new();
    for _ in 0..10 {
        genes = pba_explore(&genes, &mut rng);
        pieces.push((3, genes.clone()));
    }
    let schedule = Schedule::from_pieces(&pieces)?;
    print!("{}", render_table(&schedule));
    plot_png(&schedule, &out.join("schedule.png"))?;

    let originals = fashion_mnist(8).unwrap_or_else(|| {
        (0..8)
            .map(|k| {
                Image::new(
                    28,
                    28,
                    1,
                    (0..784).map(|i| ((i * (k + 3)) % 256) as u8).collect(),
                )
            })
            .collect()
    });
    let policy = PbaPolicy::from_genes(&genes)?;
    let rows: Vec<Vec<Image>> = (0..6)
        .map(|_| {
            originals
                .iter()
                .map(|img| {
                    let mut a = img.clone();
                    policy.apply(&mut a, &mut rng);
                    a
                })
                .collect()
        })
        .collect();
    preview_grid_png(&originals, &rows, &out.join("preview.png"))?;
    println!(
        "wrote {}/schedule.png and {}/preview.png",
        out.display(),
        out.display()
    );
    Ok(())
}
