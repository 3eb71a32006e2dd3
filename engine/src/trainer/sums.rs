//! The running sums an epoch keeps of its steps (losses, hits, the health check's late
//! figures), kept on the device and saved exactly with a mid-epoch state.

use rolekd_core::error::{Error, Result};
use tch::{Device, Kind, Tensor};

/// A trained role's running figures over an epoch.
pub(super) struct RoleSums {
    pub correct: Tensor,
    /// Cross-entropy and hits over the epoch's second half, for the health check.
    pub late_ce: Tensor,
    pub late_correct: Tensor,
    pub late_seen: usize,
    pub late_steps: usize,
}

/// An epoch's running sums (on the device, read once at the end).
pub(super) struct EpochSums {
    /// Per term, unweighted, times batch size.
    pub terms: Vec<Tensor>,
    /// Per term, after its weight.
    pub weighted: Vec<Tensor>,
    pub total: Tensor,
    pub seen: usize,
    /// One per trained role.
    pub roles: Vec<RoleSums>,
    /// The first trained role's last learning rate.
    pub lr: f64,
    pub seconds: f64,
}

/// A zero scalar on the device, for sums and running totals.
pub(super) fn zero(kind: Kind, device: Device) -> Tensor {
    Tensor::zeros([], (kind, device))
}

impl EpochSums {
    pub fn new(terms: usize, trained: usize, device: Device) -> EpochSums {
        EpochSums {
            terms: (0..terms).map(|_| zero(Kind::Double, device)).collect(),
            weighted: (0..terms).map(|_| zero(Kind::Double, device)).collect(),
            total: zero(Kind::Double, device),
            seen: 0,
            roles: (0..trained)
                .map(|_| RoleSums {
                    correct: zero(Kind::Int64, device),
                    late_ce: zero(Kind::Double, device),
                    late_correct: zero(Kind::Int64, device),
                    late_seen: 0,
                    late_steps: 0,
                })
                .collect(),
            lr: 0.0,
            seconds: 0.0,
        }
    }

    /// The sums as named tensors, for a mid-epoch state: stored exactly, so an epoch
    /// resumed from them ends with the figures of an uninterrupted one.
    pub fn to_tensors(&self) -> Vec<(String, Tensor)> {
        let count = |n: usize| Tensor::scalar_tensor(n as f64, (Kind::Int64, Device::Cpu));
        let real = |x: f64| Tensor::scalar_tensor(x, (Kind::Double, Device::Cpu));
        let mut out = vec![
            ("seen".to_string(), count(self.seen)),
            ("lr".to_string(), real(self.lr)),
            ("seconds".to_string(), real(self.seconds)),
            ("total".to_string(), self.total.shallow_clone()),
        ];
        for (k, (t, w)) in self.terms.iter().zip(&self.weighted).enumerate() {
            out.push((format!("terms.{k}"), t.shallow_clone()));
            out.push((format!("weighted.{k}"), w.shallow_clone()));
        }
        for (i, r) in self.roles.iter().enumerate() {
            out.push((format!("roles.{i}.correct"), r.correct.shallow_clone()));
            out.push((format!("roles.{i}.late_ce"), r.late_ce.shallow_clone()));
            out.push((
                format!("roles.{i}.late_correct"),
                r.late_correct.shallow_clone(),
            ));
            out.push((format!("roles.{i}.late_seen"), count(r.late_seen)));
            out.push((format!("roles.{i}.late_steps"), count(r.late_steps)));
        }
        out
    }

    /// The sums [`EpochSums::to_tensors`] saved, for a run with `terms` loss terms and
    /// `trained` trained roles; an error names what is missing.
    pub fn from_tensors(
        saved: &[(String, Tensor)],
        terms: usize,
        trained: usize,
        device: Device,
    ) -> Result<EpochSums> {
        let get = |name: &str| -> Result<Tensor> {
            saved
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.to_device(device))
                .ok_or_else(|| Error::Data(format!("mid-epoch sums: no `{name}`")))
        };
        let count = |name: &str| -> Result<usize> { Ok(get(name)?.int64_value(&[]) as usize) };
        let mut sums = EpochSums::new(terms, trained, device);
        sums.seen = count("seen")?;
        sums.lr = get("lr")?.double_value(&[]);
        sums.seconds = get("seconds")?.double_value(&[]);
        sums.total = get("total")?;
        for k in 0..terms {
            sums.terms[k] = get(&format!("terms.{k}"))?;
            sums.weighted[k] = get(&format!("weighted.{k}"))?;
        }
        for (i, r) in sums.roles.iter_mut().enumerate() {
            r.correct = get(&format!("roles.{i}.correct"))?;
            r.late_ce = get(&format!("roles.{i}.late_ce"))?;
            r.late_correct = get(&format!("roles.{i}.late_correct"))?;
            r.late_seen = count(&format!("roles.{i}.late_seen"))?;
            r.late_steps = count(&format!("roles.{i}.late_steps"))?;
        }
        Ok(sums)
    }

    /// The mean total loss so far (for the progress line).
    pub fn mean_total(&self) -> f64 {
        self.total.double_value(&[]) / self.seen.max(1) as f64
    }
}
