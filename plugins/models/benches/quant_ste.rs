//! DoReFa activation quantisation, forward and backward, on a ResNet-sized activation
//! ([128, 16, 28, 28]): the in-place residual form used by the models against the
//! textbook `x + (q - x).detach()`, timed in the same run. Prints the speed ratio.
//!
//!   cargo bench -p rolekd-models --bench quant_ste

use rolekd_models::quant::{quantize_k, quantize_k_reference};
use std::time::Instant;
use tch::{Kind, Tensor};

fn time(f: fn(&Tensor, u32) -> Tensor, x0: &Tensor, reps: usize) -> f64 {
    let t0 = Instant::now();
    for _ in 0..reps {
        let x = x0.detach().set_requires_grad(true);
        let y = f(&x.clamp(0.0, 1.0), 2);
        y.sum(Kind::Float).backward();
    }
    t0.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    let x0 = Tensor::randn([128, 16, 28, 28], (Kind::Float, tch::Device::Cpu));
    let reps = 30;
    // Warm up both, then alternate so load changes hit both alike.
    time(quantize_k, &x0, 3);
    time(quantize_k_reference, &x0, 3);
    let (mut ours, mut reference) = (0.0, 0.0);
    for _ in 0..3 {
        ours += time(quantize_k, &x0, reps);
        reference += time(quantize_k_reference, &x0, reps);
    }
    println!(
        "DoReFa activation fwd+bwd [128,16,28,28]: in-place residual {:.2} ms, plain formula {:.2} ms, speed-up {:.2}x",
        ours / 3.0 * 1e3,
        reference / 3.0 * 1e3,
        reference / ours
    );
}
