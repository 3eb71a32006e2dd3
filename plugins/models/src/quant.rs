//! DoReFa quantisation (Zhou et al., "DoReFa-Net", arXiv:1606.06160), shared by every model.
//!
//! - `Q_k(x) = round(x (2^k - 1)) / (2^k - 1)` for `x` in `[0, 1]`, with a straight-through
//!   estimator for `round`: `x + (q - x).detach()` (tch has no custom autograd function).
//! - Weights, k bits: `w_q = 2 Q_k(tanh(w) / (2 max|tanh(w)|) + 0.5) - 1`;
//!   1 bit: `w_q = E sign(w)` with `E = mean|w|` (a constant for autograd) and the
//!   straight-through estimator for `sign`.
//! - Activations: `Q_k(clip(x, 0, 1))` in place of ReLU.
//! - The first conv and the classifier stay full precision unless `quantize_first_last`;
//!   BatchNorm always stays full precision; 32 bits means "off" (plain weights, plain ReLU).

use rolekd_core::plugin::model::QuantSpec;
use rolekd_core::precision::to_fp32;
use rolekd_core::{Error, Result};
use tch::Tensor;

/// Bit widths at or above this are full precision.
pub const FULL_PRECISION: u32 = 32;

/// `Q_k` with a straight-through estimator; `x` is expected in `[0, 1]`.
pub fn quantize_k(x: &Tensor, bits: u32) -> Tensor {
    if bits >= FULL_PRECISION {
        return x.shallow_clone();
    }
    let n = ((1u64 << bits) - 1) as f64;
    // `x + (q - x).detach()`, with the rounding residual `q - x` computed outside autograd
    // and in place: one buffer and no graph nodes instead of four of each. The arithmetic
    // is the same, so the values are bit-identical (tested against the plain formula).
    let residual = tch::no_grad(|| {
        let mut r = x.detach() * n;
        let _ = r.round_();
        let _ = r.g_div_scalar_(n);
        let _ = r.g_sub_(x);
        r
    });
    x + residual
}

/// The textbook form of [`quantize_k`], kept as its test oracle and benchmark reference.
pub fn quantize_k_reference(x: &Tensor, bits: u32) -> Tensor {
    if bits >= FULL_PRECISION {
        return x.shallow_clone();
    }
    let n = ((1u64 << bits) - 1) as f64;
    let q = (x * n).round() / n;
    x + (q - x).detach()
}

/// DoReFa weight quantisation (`bits >= 32`: the weight itself).
pub fn quantize_weight(w: &Tensor, bits: u32) -> Tensor {
    if bits >= FULL_PRECISION {
        return w.shallow_clone();
    }
    if bits == 1 {
        let e = w.abs().mean(None).detach();
        let s = w + (w.sign() - w).detach();
        return s * e;
    }
    let t = w.tanh();
    // Guard against an all-zero weight (0/0); DoReFa itself has no such guard.
    let m = t.abs().max().clamp_min(1e-12);
    let x = &t / (m * 2.0) + 0.5;
    quantize_k(&x, bits) * 2.0 - 1.0
}

/// DoReFa activation quantisation: `Q_k(clip(x, 0, 1))`. Under bf16 autocast the input
/// arrives in bf16; it is quantised in fp32, where the levels `i / (2^k - 1)` are as exact as
/// without autocast (bf16 would put 1/3 at 0.3340 and could round `x (2^k - 1)` differently).
pub fn quantize_activation(x: &Tensor, bits: u32) -> Tensor {
    quantize_k(&to_fp32(x).clamp(0.0, 1.0), bits)
}

/// A nonlinearity: ReLU (or ReLU6), or its DoReFa replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Relu,
    Relu6,
    /// `Q_k(clip(x, 0, 1))` with k bits.
    Quant(u32),
}

impl Act {
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Act::Relu => x.relu(),
            Act::Relu6 => x.clamp(0.0, 6.0),
            Act::Quant(bits) => quantize_activation(x, bits),
        }
    }

    /// [`Act::apply`] on a temporary the caller no longer needs: ReLU runs in place, saving
    /// one activation buffer per layer. Only for outputs of BatchNorm or of an addition,
    /// whose backward passes do not read their output.
    pub fn apply_owned(self, mut x: Tensor) -> Tensor {
        match self {
            Act::Relu => x.relu_(),
            other => other.apply(&x),
        }
    }

    /// ReLU6 where the model uses it, unless quantised.
    pub fn six(self) -> Act {
        match self {
            Act::Relu => Act::Relu6,
            other => other,
        }
    }
}

/// Which bit widths each part of a model gets, from the role's [`QuantSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantPlan {
    pub weight_bits: u32,
    pub activation_bits: u32,
    pub quantize_first_last: bool,
}

impl QuantPlan {
    /// Checks the bit widths (1..=16, or 32 for off).
    pub fn new(spec: &QuantSpec) -> Result<Self> {
        for (what, bits) in [
            ("weight_bits", spec.weight_bits),
            ("activation_bits", spec.activation_bits),
        ] {
            if !(1..=16).contains(&bits) && bits != FULL_PRECISION {
                return Err(Error::Invalid(format!(
                    "quant.{what} = {bits}: expected 1..=16, or 32 for full precision"
                )));
            }
        }
        Ok(QuantPlan {
            weight_bits: spec.weight_bits,
            activation_bits: spec.activation_bits,
            quantize_first_last: spec.quantize_first_last,
        })
    }

    /// Full precision everywhere.
    pub fn off() -> Self {
        QuantPlan {
            weight_bits: FULL_PRECISION,
            activation_bits: FULL_PRECISION,
            quantize_first_last: false,
        }
    }

    /// Weight bits of a body layer.
    pub fn body_weight(&self) -> u32 {
        self.weight_bits
    }

    /// Weight bits of the first conv and of the classifier.
    pub fn edge_weight(&self) -> u32 {
        if self.quantize_first_last {
            self.weight_bits
        } else {
            FULL_PRECISION
        }
    }

    /// The nonlinearity inside the body.
    pub fn act(&self) -> Act {
        if self.activation_bits >= FULL_PRECISION {
            Act::Relu
        } else {
            Act::Quant(self.activation_bits)
        }
    }

    /// The nonlinearity whose output feeds the classifier (full precision unless
    /// `quantize_first_last`, as the classifier's input is part of the classifier).
    pub fn last_act(&self) -> Act {
        if self.quantize_first_last {
            self.act()
        } else {
            Act::Relu
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    fn distinct(t: &Tensor) -> Vec<f64> {
        let mut v: Vec<f64> = Vec::<f64>::try_from(t.flatten(0, -1).to_kind(Kind::Double)).unwrap();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
        v
    }

    #[test]
    fn weights_take_exactly_two_to_the_k_levels() {
        // A symmetric spread of weights (independent of the global RNG, which other tests
        // share) reaches both ends, so every level must be taken.
        let w = Tensor::linspace(-0.4, 0.4, 64 * 16 * 9, (Kind::Float, tch::Device::Cpu))
            .view([64, 16, 3, 3]);
        for bits in [2u32, 3, 4] {
            let q = quantize_weight(&w, bits);
            let levels = distinct(&q);
            let n = (1u64 << bits) as usize;
            assert_eq!(levels.len(), n, "{bits} bits: {levels:?}");
            for (i, l) in levels.iter().enumerate() {
                let expect = 2.0 * i as f64 / (n - 1) as f64 - 1.0;
                assert!(
                    (l - expect).abs() < 1e-5,
                    "{bits} bits: level {l} vs {expect}"
                );
            }
        }
        let q1 = quantize_weight(&w, 1);
        let e = f64::try_from(w.abs().mean(None)).unwrap();
        let levels = distinct(&q1);
        assert_eq!(levels.len(), 2);
        assert!((levels[0] + e).abs() < 1e-6 && (levels[1] - e).abs() < 1e-6);
        assert!(quantize_weight(&w, 32).equal(&w));
    }

    #[test]
    fn activations_take_two_to_the_k_levels_in_unit_range() {
        let x = Tensor::linspace(-1.0, 2.0, 1001, (Kind::Float, tch::Device::Cpu));
        let q = quantize_activation(&x, 2);
        let levels = distinct(&q);
        assert_eq!(levels.len(), 4);
        assert!((levels[0]).abs() < 1e-6 && (levels[3] - 1.0).abs() < 1e-6);
        assert!((levels[1] - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn bf16_autocast_keeps_the_fp32_levels() {
        use rolekd_core::precision::Precision;
        use rolekd_engine::autocast::Autocast;
        let cpu = tch::Device::Cpu;
        let x = Tensor::linspace(-1.0, 2.0, 1001, (Kind::Float, cpu)).to_kind(Kind::BFloat16);
        let w = Tensor::linspace(-0.4, 0.4, 16 * 9, (Kind::Float, cpu)).view([4, 4, 3, 3]);
        let bits = [1u32, 2, 3, 4];
        // The fp32 path on the same values, outside any autocast region.
        let plain: Vec<(Tensor, Tensor)> = bits
            .iter()
            .map(|&b| {
                let xf = x.to_kind(Kind::Float);
                (quantize_activation(&xf, b), quantize_weight(&w, b))
            })
            .collect();
        let region = Autocast::begin(Precision::Bf16, cpu);
        assert!(region.is_open());
        for (&b, (qa_plain, qw_plain)) in bits.iter().zip(&plain) {
            // Activations arrive in bf16 and leave in fp32, on the exact levels i / (2^k - 1).
            let qa = quantize_activation(&x, b);
            assert_eq!(qa.kind(), Kind::Float);
            assert!(qa.equal(qa_plain), "{b} bits: activations differ from fp32");
            let levels = distinct(&qa);
            assert_eq!(levels.len(), 1 << b, "{b} bits: {levels:?}");
            let n = ((1u64 << b) - 1) as f32;
            for (i, l) in levels.iter().enumerate() {
                assert_eq!(*l as f32, i as f32 / n, "{b} bits, level {i}");
            }
            // Weights are fp32 parameters: quantised in fp32 inside the region, bit for bit.
            let qw = quantize_weight(&w, b);
            assert_eq!(qw.kind(), Kind::Float);
            assert!(qw.equal(qw_plain), "{b} bits: weights differ from fp32");
            assert_eq!(distinct(&qw).len(), 1 << b);
        }
        drop(region);
    }

    #[test]
    fn gradient_passes_straight_through() {
        // Q_k: identity gradient.
        let x = Tensor::from_slice(&[0.1f32, 0.4, 0.8]).set_requires_grad(true);
        quantize_k(&x, 2).sum(Kind::Float).backward();
        let g = Vec::<f32>::try_from(x.grad()).unwrap();
        assert_eq!(g, vec![1.0, 1.0, 1.0]);

        // Activations: gradient 1 inside [0, 1], 0 where clipped.
        let x = Tensor::from_slice(&[-0.5f32, 0.3, 0.7, 1.5]).set_requires_grad(true);
        quantize_activation(&x, 2).sum(Kind::Float).backward();
        let g = Vec::<f32>::try_from(x.grad()).unwrap();
        assert_eq!(g, vec![0.0, 1.0, 1.0, 0.0]);

        // Weights: finite, non-zero gradient through tanh and the STE.
        for bits in [1u32, 2, 4] {
            let w = (Tensor::randn([8, 4], (Kind::Float, tch::Device::Cpu)) * 0.1)
                .set_requires_grad(true);
            let coef = Tensor::randn([8, 4], (Kind::Float, tch::Device::Cpu));
            (quantize_weight(&w, bits) * &coef)
                .sum(Kind::Float)
                .backward();
            let g = w.grad();
            assert!(bool::try_from(g.isfinite().all()).unwrap());
            assert!(
                f64::try_from(g.abs().sum(Kind::Double)).unwrap() > 0.0,
                "{bits} bits"
            );
        }
    }

    #[test]
    fn in_place_residual_matches_the_plain_formula_bit_for_bit() {
        let x0 = Tensor::randn([4, 16, 14, 14], (Kind::Float, tch::Device::Cpu)) * 0.7 + 0.4;
        let coef = Tensor::randn([4, 16, 14, 14], (Kind::Float, tch::Device::Cpu));
        for bits in [1u32, 2, 3, 8] {
            let run = |f: fn(&Tensor, u32) -> Tensor| {
                let x = x0.copy().set_requires_grad(true);
                let y = f(&x.clamp(0.0, 1.0), bits);
                (&y * &coef).sum(Kind::Float).backward();
                (y.detach(), x.grad())
            };
            let (y, g) = run(quantize_k);
            let (y_ref, g_ref) = run(quantize_k_reference);
            assert!(y.equal(&y_ref), "{bits} bits: values differ");
            assert!(g.equal(&g_ref), "{bits} bits: gradients differ");
            assert!(
                !y.equal(&x0.clamp(0.0, 1.0)),
                "{bits} bits: nothing was quantised"
            );
        }
    }

    #[test]
    fn bad_bits_are_refused() {
        let spec = QuantSpec {
            weight_bits: 0,
            ..QuantSpec::default()
        };
        assert!(QuantPlan::new(&spec).is_err());
        let spec = QuantSpec {
            activation_bits: 20,
            ..QuantSpec::default()
        };
        assert!(QuantPlan::new(&spec).is_err());
        let plan = QuantPlan::new(&QuantSpec {
            weight_bits: 2,
            activation_bits: 2,
            quantize_first_last: false,
        })
        .unwrap();
        assert_eq!(plan.edge_weight(), 32);
        assert_eq!(plan.body_weight(), 2);
        assert_eq!(plan.act(), Act::Quant(2));
        assert_eq!(plan.last_act(), Act::Relu);
    }
}
