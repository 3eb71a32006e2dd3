//! Policy spaces a search explores. A space says what its genes are (bounds, groups: the
//! [`PolicySpace`] strategies see), how a trial trains with a member's lineage (the
//! augmentation entry), and how a lineage is written out (schedule file, plot, log config).
//! PBA's 60-gene space is the one there is; another space implements [`SearchSpace`] and is
//! named by the stage's `space:` field.

use crate::lineage::Lineage;
use rolekd_augment::plot::plot_png;
use rolekd_augment::space::PbaSpace;
use rolekd_core::config::Params;
use rolekd_core::plugin::search::PolicySpace;
use rolekd_core::yaml::Value;
use rolekd_core::{Error, Result};
use std::path::Path;

/// A policy space the `search` stage can explore.
pub trait SearchSpace: PolicySpace {
    fn name(&self) -> &'static str;
    /// Checks a trial's own `augment:` entry (None: absent) before anything runs.
    fn check_augment(&self, entry: Option<&Params>) -> Result<()>;
    /// The augmentation entry a member trains with: the trial's entry (its finishing
    /// options), pointed at the member's schedule file.
    fn augment_entry(&self, entry: Option<&Params>, schedule_file: &Path) -> Result<Params>;
    /// Writes a lineage as a schedule file covering `epochs` epochs.
    fn write_schedule(&self, lineage: &Lineage, epochs: usize, path: &Path) -> Result<()>;
    /// Plots a lineage's schedule.
    fn plot(&self, lineage: &Lineage, epochs: usize, path: &Path) -> Result<()>;
}

/// PBA's space: 60 genes, probabilities 0..=10 (tenths) at even indices and magnitudes
/// 0..=9 at odd ones; trials train with `pba-schedule`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PbaSearchSpace;

impl PolicySpace for PbaSearchSpace {
    fn gene_count(&self) -> usize {
        PbaSpace.gene_count()
    }

    fn bounds(&self, i: usize) -> (i64, i64) {
        PbaSpace.bounds(i)
    }

    fn group(&self, i: usize) -> &'static str {
        if i.is_multiple_of(2) {
            "prob"
        } else {
            "magnitude"
        }
    }
}

const PBA_SCHEDULE: &str = "pba-schedule";

impl SearchSpace for PbaSearchSpace {
    fn name(&self) -> &'static str {
        "pba"
    }

    fn check_augment(&self, entry: Option<&Params>) -> Result<()> {
        let Some(entry) = entry else { return Ok(()) };
        let name = entry.type_name()?;
        if name != PBA_SCHEDULE {
            return Err(entry
                .type_error(format!(
                    "a search over the `pba` space trains its trials with `{PBA_SCHEDULE}` (the \
                     search writes each member's schedule); give `{{type: {PBA_SCHEDULE}}}` with \
                     its finishing options (pad, crop_offsets, flip, cutout), or leave `augment` out"
                ))
                .into());
        }
        if entry.get("schedule").is_some() {
            return Err(entry
                .child_error(
                    "schedule",
                    "the search writes each member's schedule itself; leave `schedule` out",
                )
                .into());
        }
        Ok(())
    }

    fn augment_entry(&self, entry: Option<&Params>, schedule_file: &Path) -> Result<Params> {
        let base = match entry {
            Some(e) => e.clone(),
            None => Params::from_yaml(&format!("{{type: {PBA_SCHEDULE}}}"))?,
        };
        let mut value = match base.value() {
            Value::String(s) => {
                let mut m = rolekd_core::yaml::Mapping::new();
                m.insert(Value::from("type"), Value::from(s.clone()));
                Value::Mapping(m)
            }
            v => v.clone(),
        };
        let map = value
            .as_mapping_mut()
            .ok_or_else(|| Error::Config(base.error("expected a mapping")))?;
        map.insert(
            Value::from("schedule"),
            Value::from(schedule_file.display().to_string()),
        );
        Ok(Params::new(value, base.path(), base.sources().clone()))
    }

    fn write_schedule(&self, lineage: &Lineage, epochs: usize, path: &Path) -> Result<()> {
        let s = lineage.schedule(epochs)?;
        let mut text = s.to_json();
        text.push('\n');
        rolekd_core::files::write_atomic(path, text.as_bytes())
    }

    fn plot(&self, lineage: &Lineage, epochs: usize, path: &Path) -> Result<()> {
        plot_png(&lineage.schedule(epochs)?, path)
    }
}

/// The space named `name` (`pba`).
pub fn by_name(name: &str) -> Option<Box<dyn SearchSpace>> {
    match name {
        "pba" => Some(Box::new(PbaSearchSpace)),
        _ => None,
    }
}

/// Names of the spaces [`by_name`] knows.
pub const SPACES: [&str; 1] = ["pba"];

/// Checks genes against a space's bounds.
pub fn check_genes(space: &dyn PolicySpace, genes: &[i64]) -> Result<()> {
    if genes.len() != space.gene_count() {
        return Err(Error::Invalid(format!(
            "{} genes, the space has {}",
            genes.len(),
            space.gene_count()
        )));
    }
    for (i, &g) in genes.iter().enumerate() {
        let (lo, hi) = space.bounds(i);
        if !(lo..=hi).contains(&g) {
            return Err(Error::Invalid(format!(
                "gene {i} = {g} outside {lo}..={hi}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augment_entry_keeps_finishing_options() {
        let s = PbaSearchSpace;
        let e = Params::from_yaml("{type: pba-schedule, pad: 2, flip: false}").unwrap();
        s.check_augment(Some(&e)).unwrap();
        let out = s.augment_entry(Some(&e), Path::new("/x/s.json")).unwrap();
        assert_eq!(out.get("pad").unwrap().value().as_u64(), Some(2));
        assert_eq!(
            out.get("schedule").unwrap().value().as_str(),
            Some("/x/s.json")
        );
        let d = s.augment_entry(None, Path::new("s.json")).unwrap();
        assert_eq!(d.type_name().unwrap(), "pba-schedule");
        let bad = Params::from_yaml("{type: standard}").unwrap();
        assert!(s
            .check_augment(Some(&bad))
            .unwrap_err()
            .to_string()
            .contains("pba-schedule"));
        let bad = Params::from_yaml("{type: pba-schedule, schedule: a.json}").unwrap();
        assert!(s.check_augment(Some(&bad)).is_err());
    }

    #[test]
    fn groups_and_bounds() {
        let s = PbaSearchSpace;
        assert_eq!((s.group(0), s.bounds(0)), ("prob", (0, 10)));
        assert_eq!((s.group(1), s.bounds(1)), ("magnitude", (0, 9)));
        assert!(check_genes(&s, &vec![0; 60]).is_ok());
        assert!(check_genes(&s, &vec![11; 60]).is_err());
    }
}
