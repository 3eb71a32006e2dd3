//! `rolekd-run schedule import|show|plot`: augmentation schedule files.

use anyhow::Context;
use clap::Subcommand;
use rolekd_augment::{plot, schedule};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ScheduleCmd {
    /// Decode a PBA / role-wise `pbt_policy_<k>.txt` log into a schedule file.
    Import {
        /// Log format (only `pba`).
        #[arg(long = "from", default_value = "pba")]
        from: String,
        /// The log file.
        log: PathBuf,
        /// Epochs the search ran for (segment lengths sum to this).
        #[arg(long)]
        epochs: usize,
        /// Output schedule JSON.
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// Print a schedule as a table per segment.
    Show { schedule: PathBuf },
    /// Plot per-op probability and magnitude over epochs (PNG).
    Plot {
        schedule: PathBuf,
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
}

pub fn run(cmd: ScheduleCmd) -> anyhow::Result<()> {
    match cmd {
        ScheduleCmd::Import {
            from,
            log,
            epochs,
            output,
        } => {
            if from != "pba" {
                anyhow::bail!("--from {from}: only `pba` logs can be imported");
            }
            if epochs == 0 {
                anyhow::bail!("--epochs must be at least 1");
            }
            let text = std::fs::read_to_string(&log)
                .with_context(|| format!("cannot read {}", log.display()))?;
            let s = schedule::import_pba_log(&text, epochs)
                .with_context(|| log.display().to_string())?;
            schedule::save(&s, &output)?;
            println!(
                "{} segments over {} epochs -> {}",
                s.segments.len(),
                s.epochs,
                output.display()
            );
        }
        ScheduleCmd::Show { schedule: path } => {
            let s = schedule::load(&path)?;
            print!("{}", schedule::render_table(&s));
        }
        ScheduleCmd::Plot {
            schedule: path,
            output,
        } => {
            let s = schedule::load(&path)?;
            plot::plot_png(&s, &output)?;
            println!("wrote {}", output.display());
        }
    }
    Ok(())
}
