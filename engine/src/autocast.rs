//! bf16 autocast for training: `precision: bf16` runs every role's forward pass under
//! bf16 autocast (convolutions and matrix products in bf16: AMX/AVX-512-BF16 on CPUs that
//! have them, tensor cores on GPUs), while the weights, the optimizer state, the loss terms
//! and the checkpoints stay fp32. Backward passes run outside the region, as PyTorch's
//! autocast recipe has them.
//!
//! tch's own `autocast` switches CUDA only, at fp16; the guard here goes through a small C++
//! shim (`csrc/autocast.cpp`, built by `build.rs`) into libtorch's per-device autocast state.

use rolekd_core::precision::Precision;
use rolekd_core::{Error, Result};
use tch::Device;

/// Whether this build and a device can run a [`Precision`] (the shim is the engine's).
pub trait CheckPrecision {
    /// Checks that this build and `device` can run it (before any training starts).
    fn check(self, device: Device) -> Result<()>;
}

impl CheckPrecision for Precision {
    fn check(self, device: Device) -> Result<()> {
        if self == Precision::Fp32 {
            return Ok(());
        }
        if !cfg!(rolekd_autocast) {
            return Err(Error::Invalid(
                "precision bf16: this build has no autocast shim (torch-sys gave build.rs no \
                 libtorch directory on this platform)"
                    .into(),
            ));
        }
        match device {
            Device::Cpu | Device::Cuda(_) => Ok(()),
            other => Err(Error::Invalid(format!(
                "precision bf16 runs on cpu and cuda, not on {other:?}"
            ))),
        }
    }
}

/// Whether this CPU computes bf16 natively (`avx512_bf16` or `amx_bf16` among its flags);
/// `None` where `/proc/cpuinfo` cannot tell. Without it oneDNN emulates bf16, and a bf16 run
/// is many times slower than fp32 (docs/benchmarks.md), so the trainer warns.
pub fn cpu_has_native_bf16() -> Option<bool> {
    static NATIVE: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    *NATIVE.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        let flags = info.lines().find(|l| l.starts_with("flags"))?;
        Some(
            flags
                .split_whitespace()
                .any(|f| f == "avx512_bf16" || f == "amx_bf16"),
        )
    })
}

#[cfg(rolekd_autocast)]
mod ffi {
    use std::os::raw::c_int;
    extern "C" {
        pub fn rolekd_autocast_enter(
            cuda: c_int,
            was_enabled: *mut c_int,
            was_dtype: *mut c_int,
        ) -> c_int;
        pub fn rolekd_autocast_exit(cuda: c_int, was_enabled: c_int, was_dtype: c_int) -> c_int;
        pub fn rolekd_autocast_enabled(cuda: c_int) -> c_int;
    }
}

/// A bf16 autocast region on the calling thread (autocast state is per thread), ended when
/// dropped. Holding it across a backward pass is a mistake: end it first.
#[must_use = "autocast ends when the guard is dropped"]
pub struct Autocast {
    /// `(cuda, was_enabled, was_dtype)` while a region is open.
    open: Option<(i32, i32, i32)>,
}

impl Autocast {
    /// Opens a region for `precision` on `device`'s type; for fp32 (or a device without
    /// autocast, refused earlier by [`Precision::check`]) the guard does nothing.
    pub fn begin(precision: Precision, device: Device) -> Autocast {
        if precision != Precision::Bf16 {
            return Autocast { open: None };
        }
        let cuda = match device {
            Device::Cpu => 0,
            Device::Cuda(_) => 1,
            _ => return Autocast { open: None },
        };
        Autocast {
            open: enter(cuda).map(|(e, d)| (cuda, e, d)),
        }
    }

    /// Whether this guard opened a region.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        if let Some((cuda, was_enabled, was_dtype)) = self.open.take() {
            exit(cuda, was_enabled, was_dtype);
        }
    }
}

#[cfg(rolekd_autocast)]
fn enter(cuda: i32) -> Option<(i32, i32)> {
    let (mut was_enabled, mut was_dtype) = (0, 0);
    // SAFETY: the shim writes both out-parameters before returning and catches every C++
    // exception.
    let rc = unsafe { ffi::rolekd_autocast_enter(cuda, &mut was_enabled, &mut was_dtype) };
    (rc == 0).then_some((was_enabled, was_dtype))
}

#[cfg(not(rolekd_autocast))]
fn enter(_cuda: i32) -> Option<(i32, i32)> {
    None
}

#[cfg(rolekd_autocast)]
fn exit(cuda: i32, was_enabled: i32, was_dtype: i32) {
    // SAFETY: restores values `enter` read from libtorch; the shim catches C++ exceptions.
    unsafe { ffi::rolekd_autocast_exit(cuda, was_enabled, was_dtype) };
}

#[cfg(not(rolekd_autocast))]
fn exit(_cuda: i32, _was_enabled: i32, _was_dtype: i32) {}

/// Whether bf16 autocast is on for this thread on `device`'s type.
pub fn autocast_enabled(device: Device) -> bool {
    #[cfg(rolekd_autocast)]
    {
        let cuda = i32::from(device.is_cuda());
        // SAFETY: a read of libtorch's thread-local state; exceptions are caught.
        unsafe { ffi::rolekd_autocast_enabled(cuda) == 1 }
    }
    #[cfg(not(rolekd_autocast))]
    {
        let _ = device;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rolekd_core::precision::to_fp32;
    use tch::{Kind, Tensor};

    #[test]
    fn a_region_casts_convolutions_to_bf16_and_ends_with_the_guard() {
        let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
        let plain = x.conv2d(&w, None::<Tensor>, [1], [1], [1], 1);
        assert_eq!(plain.kind(), Kind::Float);
        assert!(!autocast_enabled(Device::Cpu));
        {
            let guard = Autocast::begin(Precision::Bf16, Device::Cpu);
            assert!(guard.is_open() && autocast_enabled(Device::Cpu));
            let inner = Autocast::begin(Precision::Bf16, Device::Cpu);
            let y = x.conv2d(&w, None::<Tensor>, [1], [1], [1], 1);
            assert_eq!(y.kind(), Kind::BFloat16);
            drop(inner);
            // The outer region is still open after an inner one ends.
            assert!(autocast_enabled(Device::Cpu));
            // Close to fp32, at bf16's 8-bit mantissa.
            let diff = (to_fp32(&y) - &plain).abs().max().double_value(&[]);
            let scale = plain.abs().max().double_value(&[]);
            assert!(
                diff < 0.02 * scale,
                "bf16 conv off by {diff} (scale {scale})"
            );
        }
        assert!(!autocast_enabled(Device::Cpu));
        let after = x.conv2d(&w, None::<Tensor>, [1], [1], [1], 1);
        assert_eq!(after.kind(), Kind::Float);
        assert!(after.equal(&plain));
    }

    #[test]
    fn fp32_guards_do_nothing_and_names_round_trip() {
        let g = Autocast::begin(Precision::Fp32, Device::Cpu);
        assert!(!g.is_open() && !autocast_enabled(Device::Cpu));
        for p in [Precision::Fp32, Precision::Bf16] {
            assert_eq!(Precision::parse(p.name()), Ok(p));
        }
        let e = Precision::parse("fp16").unwrap_err();
        assert!(e.contains("`fp16`") && e.contains("fp32 or bf16"), "{e}");
        assert!(Precision::Bf16.check(Device::Cpu).is_ok());
        assert!(Precision::Bf16.check(Device::Mps).is_err());
    }

    #[test]
    fn gradients_reach_fp32_weights_through_a_bf16_forward() {
        let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        let y = {
            let _g = Autocast::begin(Precision::Bf16, Device::Cpu);
            x.conv2d(&w, None::<Tensor>, [1], [1], [1], 1)
        };
        let loss = to_fp32(&y).square().mean(Kind::Float);
        assert_eq!(loss.kind(), Kind::Float);
        loss.backward();
        let g = w.grad();
        assert_eq!(g.kind(), Kind::Float);
        assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }
}
