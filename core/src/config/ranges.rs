//! Range checks on plugin parameters, each failing with an error located at the key, so
//! every plugin words a bad value the same way.

use super::{ConfigError, Params};

impl Params {
    /// `key`'s value `v` must be finite and greater than 0.
    pub fn positive(&self, key: &str, v: f64) -> Result<(), ConfigError> {
        match v.is_finite() && v > 0.0 {
            true => Ok(()),
            false => Err(self.child_error(key, format!("must be a positive number, got {v}"))),
        }
    }

    /// `key`'s value `v` must be finite and at least 0.
    pub fn non_negative(&self, key: &str, v: f64) -> Result<(), ConfigError> {
        match v.is_finite() && v >= 0.0 {
            true => Ok(()),
            false => Err(self.child_error(key, format!("must be a finite number >= 0, got {v}"))),
        }
    }

    /// `key`'s count `n` must be at least `min`.
    pub fn at_least(&self, key: &str, n: i64, min: i64) -> Result<(), ConfigError> {
        match n >= min {
            true => Ok(()),
            false => Err(self.child_error(key, format!("must be at least {min}, got {n}"))),
        }
    }

    /// `key`'s value `v` must lie in `[low, high]` (`high_open`: `[low, high)`).
    pub fn within(
        &self,
        key: &str,
        v: f64,
        low: f64,
        high: f64,
        high_open: bool,
    ) -> Result<(), ConfigError> {
        let inside = v >= low && if high_open { v < high } else { v <= high };
        match inside {
            true => Ok(()),
            false => Err(self.child_error(
                key,
                format!(
                    "must be in [{low}, {high}{}, got {v}",
                    if high_open { ")" } else { "]" }
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params::from_yaml("{lr: 0, k: 0, beta: 1}").unwrap()
    }

    #[test]
    fn each_check_names_the_key_the_bound_and_the_value() {
        let p = params();
        assert!(p.positive("lr", 0.1).is_ok());
        let e = p.positive("lr", 0.0).unwrap_err();
        assert_eq!(e.path, "lr");
        assert!(
            e.message.contains("positive number, got 0"),
            "{}",
            e.message
        );
        assert!(p.positive("lr", f64::NAN).is_err());
        assert!(p.non_negative("lr", 0.0).is_ok());
        assert!(p.non_negative("lr", f64::INFINITY).is_err());
        assert!(p
            .non_negative("lr", -1.0)
            .unwrap_err()
            .message
            .contains(">= 0, got -1"));
        assert!(p.at_least("k", 1, 1).is_ok());
        assert_eq!(
            p.at_least("k", 0, 1).unwrap_err().message,
            "must be at least 1, got 0"
        );
        assert!(p.within("beta", 1.0, 0.0, 1.0, false).is_ok());
        let e = p.within("beta", 1.0, 0.0, 1.0, true).unwrap_err();
        assert_eq!(e.message, "must be in [0, 1), got 1");
        assert!(p.within("beta", f64::NAN, 0.0, 1.0, false).is_err());
    }
}
