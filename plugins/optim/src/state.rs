//! Restoring optimizer state: every entry must belong to a parameter and a known buffer,
//! and have that parameter's shape.

use rolekd_core::{Error, Result};
use std::collections::HashMap;
use tch::Tensor;

/// The entries of a saved state, looked up by name; remembers what was used so leftovers
/// (another model's or another optimizer's state) are reported.
pub struct StateTable<'a> {
    optimizer: &'static str,
    entries: HashMap<&'a str, &'a Tensor>,
}

impl<'a> StateTable<'a> {
    /// Indexes `state`; a name given twice is an error.
    pub fn new(optimizer: &'static str, state: &'a [(String, Tensor)]) -> Result<Self> {
        let mut entries = HashMap::with_capacity(state.len());
        for (k, t) in state {
            if entries.insert(k.as_str(), t).is_some() {
                return Err(Error::Invalid(format!(
                    "{optimizer} state: entry `{k}` appears twice"
                )));
            }
        }
        Ok(StateTable { optimizer, entries })
    }

    /// Removes and returns the entry `key`, if present.
    pub fn take(&mut self, key: &str) -> Option<&'a Tensor> {
        self.entries.remove(key)
    }

    /// A fresh buffer shaped like `param` holding the entry `<name>.<buffer>`, or None when
    /// the state has no such entry. A shape mismatch is an error.
    pub fn take_like(
        &mut self,
        name: &str,
        buffer: &str,
        param: &Tensor,
    ) -> Result<Option<Tensor>> {
        let key = format!("{name}.{buffer}");
        let Some(saved) = self.take(&key) else {
            return Ok(None);
        };
        if saved.size() != param.size() {
            return Err(Error::Invalid(format!(
                "{} state: `{key}` has shape {:?} but parameter `{name}` has shape {:?}",
                self.optimizer,
                saved.size(),
                param.size()
            )));
        }
        let mut buf = param.zeros_like();
        buf.f_copy_(saved)?;
        Ok(Some(buf))
    }

    /// The step count `<name>.step` (a one-element tensor holding a whole number >= 0).
    pub fn take_step(&mut self, name: &str) -> Result<Option<u64>> {
        let key = format!("{name}.step");
        let Some(saved) = self.take(&key) else {
            return Ok(None);
        };
        let bad = |why: &str| Error::Invalid(format!("{} state: `{key}` {why}", self.optimizer));
        if saved.numel() != 1 {
            return Err(bad(&format!(
                "must hold one number, has shape {:?}",
                saved.size()
            )));
        }
        let v = saved.f_double_value(&[])?;
        if !(v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(53)) {
            return Err(bad(&format!("must be a whole number >= 0, is {v}")));
        }
        Ok(Some(v as u64))
    }

    /// An error saying that `name` has `present` but not `missing`.
    pub fn missing(&self, name: &str, present: &str, missing: &str) -> Error {
        Error::Invalid(format!(
            "{} state: `{name}.{present}` is present but `{name}.{missing}` is missing",
            self.optimizer
        ))
    }

    /// Checks that every entry was used.
    pub fn finish(self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let mut left: Vec<&str> = self.entries.keys().copied().collect();
        left.sort_unstable();
        Err(Error::Invalid(format!(
            "{} state: unexpected entries {} (no such parameter or buffer here; was the checkpoint written for another model or optimizer?)",
            self.optimizer,
            left.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// A detached copy of a buffer, for [`rolekd_core::plugin::optim::Optimizer::state`].
pub fn snapshot(t: &Tensor) -> Tensor {
    tch::no_grad(|| t.detach().copy())
}

/// A step count as a saved tensor (int64 scalar on the CPU).
pub fn step_tensor(step: u64) -> Tensor {
    Tensor::from(step as i64)
}
