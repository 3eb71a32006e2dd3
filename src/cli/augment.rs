//! `rolekd-run augment apply|preview`: see what an op or a role's policy does.

use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use rolekd_core::config::Params;
use rolekd_core::plugin::augment::AugmentCtx;
use rolekd_core::plugin::image::Image;
use rolekd_core::registry;
use rolekd_core::rng::Seed;
use rolekd_engine::pipeline::Pipeline;
use rolekd_engine::trainer::build_policy;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Sign {
    Pos,
    Neg,
}

#[derive(Subcommand, Debug)]
pub enum AugmentCmd {
    /// Apply one op to a PNG (uncovered pixels are written as 0, as Pillow's RGBA -> RGB).
    Apply {
        /// The op's name (`rolekd-run plugins` lists them).
        #[arg(long)]
        op: String,
        /// Magnitude level 0..=9.
        #[arg(long)]
        level: u8,
        /// Sign of a signed op.
        #[arg(long, value_enum, default_value = "pos")]
        sign: Sign,
        /// Seed for ops that draw (Cutout's position).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A plugin library to load first (its ops, policies, datasets); repeatable.
        #[arg(long = "plugin", value_name = "LIB")]
        plugin: Vec<PathBuf>,
        input: PathBuf,
        output: PathBuf,
    },
    /// A grid: original training images, then several augmented draws of each.
    Preview {
        pipeline: PathBuf,
        /// Whose policy: `student` (or the trained model) or `teacher` (its own view).
        #[arg(long, default_value = "student")]
        role: String,
        /// The stage to take the policy from (default: the first distill stage, else the
        /// first stage with an `augment`).
        #[arg(long)]
        stage: Option<String>,
        /// The epoch (schedules change with it).
        #[arg(long, default_value_t = 0)]
        epoch: usize,
        /// Images per row and augmented rows.
        #[arg(long, default_value_t = 8)]
        images: usize,
        #[arg(long, default_value_t = 5)]
        draws: usize,
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// A plugin library to load besides the pipeline's `plugins:`; repeatable.
        #[arg(long = "plugin", value_name = "LIB")]
        plugin: Vec<PathBuf>,
    },
}

pub fn run(cmd: AugmentCmd) -> anyhow::Result<()> {
    match cmd {
        AugmentCmd::Apply {
            op,
            level,
            sign,
            seed,
            plugin,
            input,
            output,
        } => {
            rolekd_engine::dynamic::load_cli(&plugin)?;
            if level > 9 {
                bail!("--level {level}: levels run 0..=9");
            }
            let factory = registry::augment_op(&op)?;
            let op_impl = factory(&Params::from_yaml("{}")?)?;
            let mut img = read_png(&input)?;
            op_impl.apply(
                &mut img,
                level,
                matches!(sign, Sign::Neg),
                &mut Seed(seed).rng(),
            );
            for (i, u) in img.uncovered.iter().enumerate() {
                if *u {
                    for c in 0..img.channels {
                        img.data[i * img.channels + c] = 0;
                    }
                }
            }
            write_png(&img, &output)?;
            println!("wrote {}", output.display());
        }
        AugmentCmd::Preview {
            pipeline,
            role,
            stage,
            epoch,
            images,
            draws,
            output,
            plugin,
        } => {
            let p = Pipeline::load(&pipeline, &[])?;
            rolekd_engine::dynamic::load_for_run(&p, &plugin)?;
            let (stage_name, entry) = find_policy(&p, stage.as_deref(), &role)?;
            let data_name = p.data.type_name()?;
            let data = registry::dataset(&data_name)?(&p.data, Seed(p.seed).child("data"))?;
            let epochs = p
                .stages
                .iter()
                .find(|(n, _)| *n == stage_name)
                .and_then(|(_, s)| s.get("epochs"))
                .and_then(|e| e.parse_value::<usize>().ok())
                .unwrap_or(epoch + 1);
            let policy = build_policy(entry.as_ref(), &data, epochs)?;
            let n = images.min(data.train.len());
            // Streamed sets: each image's evaluation view (the crop training draws varies).
            let mut originals: Vec<Image> = Vec::with_capacity(n);
            for i in 0..n {
                let mut rng = [Seed(p.seed).child("preview").rng()];
                if let Some(views) = data.train.fetch(i, &mut rng, false)? {
                    originals.extend(views);
                }
            }
            let ctx = AugmentCtx { epoch, epochs };
            let seed = Seed(p.seed).child("preview");
            let rows: Vec<Vec<Image>> = (0..draws)
                .map(|d| {
                    originals
                        .iter()
                        .enumerate()
                        .map(|(i, img)| {
                            let mut out = img.clone();
                            policy.augment(
                                &mut out,
                                &ctx,
                                &mut seed.index(d as u64).index(i as u64).rng(),
                            );
                            out
                        })
                        .collect()
                })
                .collect();
            rolekd_augment::plot::preview_grid_png(&originals, &rows, &output)?;
            println!(
                "{stage_name} ({role}), epoch {epoch}: wrote {}",
                output.display()
            );
        }
    }
    Ok(())
}

/// The augmentation entry of `role` in a stage.
fn find_policy(
    p: &Pipeline,
    stage: Option<&str>,
    role: &str,
) -> anyhow::Result<(String, Option<Params>)> {
    let kind = |s: &Params| {
        s.get("kind")
            .and_then(|k| k.parse_value::<String>().ok())
            .unwrap_or_default()
    };
    let chosen = match stage {
        Some(name) => p
            .stages
            .iter()
            .find(|(n, _)| n == name)
            .with_context(|| format!("--stage {name}: no such stage"))?,
        None => p
            .stages
            .iter()
            .find(|(_, s)| kind(s) == "distill")
            .or_else(|| p.stages.iter().find(|(_, s)| s.get("augment").is_some()))
            .context("no stage with an augmentation policy; name one with --stage")?,
    };
    let key = match role {
        "student" | "model" => "augment",
        "teacher" => "teacher_augment",
        other => bail!("--role {other}: expected student or teacher"),
    };
    Ok((
        chosen.0.clone(),
        chosen.1.get(key).filter(|v| !v.value().is_null()),
    ))
}

fn read_png(path: &Path) -> anyhow::Result<Image> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .with_context(|| format!("{}: not a PNG", path.display()))?;
    let size = reader
        .output_buffer_size()
        .with_context(|| format!("{}: image too large", path.display()))?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .with_context(|| format!("{}: damaged PNG", path.display()))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let src_channels = info.color_type.samples();
    let channels = if src_channels >= 3 { 3 } else { 1 };
    let mut data = Vec::with_capacity(w * h * channels);
    for px in buf[..w * h * src_channels].chunks(src_channels) {
        data.extend_from_slice(&px[..channels]);
    }
    Ok(Image::new(w, h, channels, data))
}

fn write_png(img: &Image, path: &Path) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), img.width as u32, img.height as u32);
    enc.set_color(if img.channels == 3 {
        png::ColorType::Rgb
    } else {
        png::ColorType::Grayscale
    });
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&img.data)?;
    Ok(())
}
