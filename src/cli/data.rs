//! `rolekd-run data speed`: how fast the training loader delivers a pipeline's data (read,
//! decode, crop, augment, normalise, batch), without a model, to size `workers` or to see
//! whether a run waits on its data.

use clap::{Args, Subcommand};
use rolekd_core::config::Params;
use rolekd_core::registry;
use rolekd_core::rng::Seed;
use rolekd_engine::pipeline::Pipeline;
use rolekd_engine::trainer::{build_policy, LoaderSpec, ViewSpec};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

#[derive(Subcommand, Debug)]
pub enum DataCmd {
    /// Time the training loader over a pipeline's data; prints one JSON line.
    Speed(SpeedArgs),
}

#[derive(Args, Debug)]
pub struct SpeedArgs {
    /// The pipeline whose `data:` is read.
    pipeline: PathBuf,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Loader worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Batches timed (after `warmup` untimed ones).
    #[arg(long, default_value_t = 20)]
    batches: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// The augmentation entry as YAML (default: flip only).
    #[arg(long, default_value = "{type: standard, pad: 0, flip: true}")]
    augment: String,
}

pub fn run(cmd: DataCmd) -> anyhow::Result<()> {
    let DataCmd::Speed(a) = cmd;
    // The consuming thread only turns buffers into tensors: one libtorch thread, so no
    // OpenMP team spins on the cores the workers decode on (torchvision's benchmark side
    // sets the same).
    tch::set_num_threads(1);
    let p = Pipeline::load(&a.pipeline, &[])?;
    let data = registry::dataset(&p.data.type_name()?)?(&p.data, Seed(p.seed).child("data"))?;
    let entry = Params::from_yaml(&a.augment)?;
    let policy = build_policy(Some(&entry), &data, 1)?;
    let spec = LoaderSpec {
        split: data.train.clone(),
        mean: data.mean.clone(),
        std: data.std.clone(),
        classes: data.num_classes(),
        batch_size: a.batch,
        views: vec![ViewSpec {
            policy,
            seed: Seed(p.seed).child("speed"),
            mixes: false,
        }],
        workers: a.workers,
        prefetch: 2,
        shuffle_seed: Seed(p.seed).child("shuffle"),
        epochs: 1,
        channels_last: false,
        eval: false,
    };
    let per_epoch = data.train.len().div_ceil(a.batch.max(1)).max(1);
    let (mut images, mut timed_from, mut seen) = (0usize, None, 0usize);
    let stop = AtomicBool::new(false);
    let mut epoch = 0;
    let total = a.warmup + a.batches;
    while seen < total {
        rolekd_engine::trainer::for_each_batch(
            &spec,
            epoch,
            0,
            tch::Device::Cpu,
            &stop,
            |_, b| {
                if seen == a.warmup {
                    timed_from = Some(Instant::now());
                }
                if seen >= a.warmup {
                    images += b.len;
                }
                seen += 1;
                if seen == total {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(())
            },
        )?;
        epoch += 1;
        anyhow::ensure!(
            epoch <= total + per_epoch,
            "the training split gives no batches"
        );
    }
    let seconds = timed_from.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
    let rss = peak_rss_kib();
    println!(
        "{}",
        serde_json::json!({
            "dataset": data.name,
            "train_images": data.train.len(),
            "batch": a.batch,
            "workers": a.workers,
            "images": images,
            "seconds": seconds,
            "images_per_s": images as f64 / seconds.max(1e-9),
            "max_rss_kib": rss,
        })
    );
    Ok(())
}

/// The process's peak resident memory (`VmHWM`), in KiB; 0 where /proc cannot tell.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
