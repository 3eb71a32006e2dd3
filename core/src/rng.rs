//! Named random streams. Every random choice in a run is drawn from a stream derived from
//! the pipeline seed and a path of names (`seed / "student" / "augment" / epoch`), so a
//! rerun, a resumed run or a run on more threads draws the same numbers.

use rand::SeedableRng;
use sha2::{Digest, Sha256};

/// The generator every plugin draws from: fast, portable, reproducible across platforms.
pub type StreamRng = rand_chacha::ChaCha8Rng;

/// A position in the tree of random streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Seed(pub u64);

impl Seed {
    /// A child stream named by a string.
    pub fn child(self, name: &str) -> Seed {
        self.mix(name.as_bytes())
    }

    /// A child stream named by a number (epoch, image index, trial).
    pub fn index(self, i: u64) -> Seed {
        self.mix(&i.to_le_bytes())
    }

    fn mix(self, bytes: &[u8]) -> Seed {
        let mut h = Sha256::new();
        h.update(self.0.to_le_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
        let d = h.finalize();
        Seed(u64::from_le_bytes(d[..8].try_into().expect("8 bytes")))
    }

    /// A generator for this stream.
    pub fn rng(self) -> StreamRng {
        StreamRng::seed_from_u64(self.0)
    }

    /// A seed for libtorch's own generator (weight init), kept in i64 range.
    pub fn torch_seed(self) -> i64 {
        (self.0 >> 1) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_stable_and_distinct() {
        let s = Seed(7);
        assert_eq!(s.child("a").0, Seed(7).child("a").0);
        assert_ne!(s.child("a").0, s.child("b").0);
        assert_ne!(s.index(1).0, s.index(2).0);
        let x: u64 = s.child("a").rng().random();
        let y: u64 = s.child("a").rng().random();
        assert_eq!(x, y);
    }
}
