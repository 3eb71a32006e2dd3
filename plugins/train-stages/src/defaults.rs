//! What a `train` or `distill` stage (and a search's trial) gets for what it leaves out:
//! optimizer, learning rate, schedule, losses. The engine asks for them through
//! [`TrainDefaults`]; the plugins they name (sgd, adam, cosine, ce, kd) are built-ins.

use rolekd_core::plugin::defaults::TrainDefaults;
use rolekd_core::register_train_defaults;

/// SGD's default learning rate at the default batch of 128, scaled linearly with the
/// batch size (0.1 per 256 images, Goyal et al. 2017). 0.1 at batch 128 drove a small CNN
/// distilled at T = 4 to chance level (issue 19); see the defaults table in docs/pipelines.md.
const SGD_LR_PER_128: f64 = 0.05;
/// Adam's and AdamW's default learning rate.
const ADAM_LR: f64 = 1e-3;

/// The optimizer a stage without `optimizer:` gets (its rate from [`StageDefaults::lr`]).
const DEFAULT_OPTIMIZER: &str = "{type: sgd, momentum: 0.9, nesterov: true, weight_decay: 0.0005}";
const TRAIN_LOSS: &str = "[{type: ce}]";
/// Hinton KD as most CIFAR KD benchmarks run it (RepDistiller's alpha 0.9, T 4).
const DISTILL_LOSS: &str = "[{type: ce, weight: 0.1}, {type: kd, weight: 0.9, temperature: 4}]";

/// The built-in stages' defaults.
pub struct StageDefaults;

impl TrainDefaults for StageDefaults {
    fn optimizer(&self) -> &'static str {
        DEFAULT_OPTIMIZER
    }

    /// SGD's rate is scaled by the model's factor (a fan-in effect, which Adam's
    /// normalised steps do not have).
    fn lr(&self, optimizer: &str, batch_size: usize, model_scale: f64) -> f64 {
        match optimizer {
            "adam" | "adamw" => ADAM_LR,
            _ => SGD_LR_PER_128 * batch_size as f64 / 128.0 * model_scale,
        }
    }

    /// Cosine, with the learning rate ramped up over the first epoch when there is more
    /// than one (the first steps of a fresh model are where a high rate throws it off).
    fn lr_schedule(&self, epochs: usize) -> &'static str {
        if epochs >= 2 {
            "{type: cosine, warmup_epochs: 1}"
        } else {
            "{type: cosine}"
        }
    }

    fn loss(&self, distill: bool) -> &'static str {
        if distill {
            DISTILL_LOSS
        } else {
            TRAIN_LOSS
        }
    }
}

register_train_defaults!(StageDefaults);

#[cfg(test)]
mod tests {
    use super::*;
    use rolekd_core::plugin::defaults::train_defaults;

    #[test]
    fn the_engine_finds_these_defaults() {
        let d = train_defaults().unwrap();
        assert_eq!(d.optimizer(), DEFAULT_OPTIMIZER);
        assert_eq!(d.lr("sgd", 256, 1.0), 0.1);
        assert_eq!(d.lr("sgd", 128, 0.5), 0.025);
        assert_eq!(d.lr("adamw", 64, 0.5), ADAM_LR);
        assert_eq!(d.lr_schedule(1), "{type: cosine}");
        assert_eq!(d.lr_schedule(2), "{type: cosine, warmup_epochs: 1}");
        assert_eq!(d.loss(false), TRAIN_LOSS);
        assert_eq!(d.loss(true), DISTILL_LOSS);
    }
}
