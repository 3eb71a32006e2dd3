//! Helpers shared by the losses.

use rolekd_core::plugin::loss::LossInputs;
use rolekd_core::plugin::model::ModelOutput;
use rolekd_core::{Error, Result};

/// The teacher's output, or an error naming the loss that needs it.
pub fn teacher<'a>(inputs: &LossInputs<'a>, loss: &str) -> Result<&'a ModelOutput> {
    inputs.teacher.ok_or_else(|| {
        Error::Invalid(format!(
            "loss `{loss}` needs a teacher, but this stage has none"
        ))
    })
}
