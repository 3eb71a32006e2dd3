//! Pillow's `ImageOps` point operations: posterize, solarize, invert, autocontrast,
//! equalize. Each builds Pillow's lookup table (per channel where Pillow does) and applies
//! it with Pillow's clipping of table entries to 0..=255.
//!
//! In PBA these ops go through an RGB copy of the RGBA image and come back opaque: they
//! clear the uncovered marks, so an uncovered pixel shows (and is processed with) the fill
//! value it holds.

use rolekd_core::plugin::image::Image;

/// Applies one 256-entry table per channel and clears the marks.
fn apply_luts(img: &mut Image, luts: &[[u8; 256]]) {
    let c = img.channels;
    for (i, v) in img.data.iter_mut().enumerate() {
        *v = luts[i % c][*v as usize];
    }
    img.uncovered.iter_mut().for_each(|u| *u = false);
}

fn same_lut(img: &mut Image, lut: [u8; 256]) {
    let luts = vec![lut; img.channels];
    apply_luts(img, &luts);
}

fn histograms(img: &Image) -> Vec<[u64; 256]> {
    let c = img.channels;
    let mut h = vec![[0u64; 256]; c];
    for (i, &v) in img.data.iter().enumerate() {
        h[i % c][v as usize] += 1;
    }
    h
}

/// `ImageOps.posterize(img, bits)`: keep the top `bits` bits (1..=8).
pub fn posterize(img: &mut Image, bits: u32) {
    let bits = bits.clamp(1, 8);
    let mask = !((1u32 << (8 - bits)) - 1) as u8;
    let mut lut = [0u8; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        *v = i as u8 & mask;
    }
    same_lut(img, lut);
}

/// `ImageOps.solarize(img, threshold)`: invert every value >= threshold.
pub fn solarize(img: &mut Image, threshold: u32) {
    let mut lut = [0u8; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        *v = if (i as u32) < threshold {
            i as u8
        } else {
            255 - i as u8
        };
    }
    same_lut(img, lut);
}

/// `ImageOps.invert(img)`.
pub fn invert(img: &mut Image) {
    let mut lut = [0u8; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        *v = 255 - i as u8;
    }
    same_lut(img, lut);
}

/// `ImageOps.autocontrast(img)` (no cutoff): per channel, stretch [lo, hi] to [0, 255]
/// with `int(v * scale + offset)`, `scale = 255 / (hi - lo)`, `offset = -lo * scale`.
pub fn autocontrast(img: &mut Image) {
    let luts: Vec<[u8; 256]> = histograms(img)
        .iter()
        .map(|h| {
            let mut lut = [0u8; 256];
            let lo = (0..256).find(|&i| h[i] > 0).unwrap_or(255);
            let hi = (0..256).rev().find(|&i| h[i] > 0).unwrap_or(0);
            if hi <= lo {
                for (i, v) in lut.iter_mut().enumerate() {
                    *v = i as u8;
                }
            } else {
                let scale = 255.0 / (hi - lo) as f64;
                let offset = -(lo as f64) * scale;
                for (i, v) in lut.iter_mut().enumerate() {
                    let x = (i as f64 * scale + offset) as i64;
                    *v = x.clamp(0, 255) as u8;
                }
            }
            lut
        })
        .collect();
    apply_luts(img, &luts);
}

/// `ImageOps.equalize(img)`: per channel, Pillow's cumulative-histogram table
/// (`step = (n - count of the last used value) // 255`, entries `(step // 2 + cum) // step`,
/// clipped to 255); a channel with one used value or a zero step is left as is.
pub fn equalize(img: &mut Image) {
    let luts: Vec<[u8; 256]> = histograms(img)
        .iter()
        .map(|h| {
            let mut lut = [0u8; 256];
            for (i, v) in lut.iter_mut().enumerate() {
                *v = i as u8;
            }
            let used: Vec<u64> = h.iter().copied().filter(|&c| c > 0).collect();
            if used.len() <= 1 {
                return lut;
            }
            let total: u64 = used.iter().sum();
            let step = (total - used[used.len() - 1]) / 255;
            if step == 0 {
                return lut;
            }
            let mut n = step / 2;
            for (i, v) in lut.iter_mut().enumerate() {
                *v = (n / step).min(255) as u8;
                n += h[i];
            }
            lut
        })
        .collect();
    apply_luts(img, &luts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posterize_solarize_invert_tables() {
        let mut img = Image::new(4, 1, 1, vec![0, 127, 128, 255]);
        img.uncovered[1] = true;
        posterize(&mut img, 1);
        assert_eq!(img.data, vec![0, 0, 128, 128]);
        assert!(img.uncovered.iter().all(|u| !u));
        let mut img = Image::new(4, 1, 1, vec![0, 127, 128, 255]);
        solarize(&mut img, 128);
        assert_eq!(img.data, vec![0, 127, 127, 0]);
        let mut img = Image::new(4, 1, 1, vec![0, 127, 128, 255]);
        solarize(&mut img, 256);
        assert_eq!(img.data, vec![0, 127, 128, 255]);
        invert(&mut img);
        assert_eq!(img.data, vec![255, 128, 127, 0]);
    }

    #[test]
    fn autocontrast_stretches_each_channel() {
        let mut img = Image::new(2, 1, 2, vec![50, 7, 150, 7]);
        autocontrast(&mut img);
        // Channel 0 stretched to 0..255; channel 1 has one value and stays.
        assert_eq!(img.data, vec![0, 7, 255, 7]);
    }

    #[test]
    fn equalize_spreads_a_two_value_image() {
        // 300 pixels at 10, 300 at 20: step = 300 // 255 = 1, n starts at 0.
        let mut d = vec![10u8; 300];
        d.extend(vec![20u8; 300]);
        let mut img = Image::new(600, 1, 1, d);
        equalize(&mut img);
        assert_eq!(img.data[0], 0);
        // value 20 maps to cum(0..20) // 1 = 300, clipped to 255
        assert_eq!(img.data[599], 255);
    }
}
