//! Pillow's `ImageOps` point operations: posterize, solarize, invert, autocontrast,
//! equalize. Each builds Pillow's lookup table (per channel where Pillow does) and applies
//! it with Pillow's clipping of table entries to 0..=255.
//!
//! In PBA these ops go through an RGB copy of the RGBA image and come back opaque: they
//! clear the uncovered marks, so an uncovered pixel shows (and is processed with) the fill
//! value it holds.

use rolekd_core::plugin::image::Image;

/// Clears the marks (the op went through an opaque RGB copy).
fn clear_marks(img: &mut Image) {
    img.uncovered.fill(false);
}

/// Applies one 256-entry table per channel and clears the marks.
fn apply_luts(img: &mut Image, luts: &[[u8; 256]]) {
    match luts {
        [lut] => {
            for v in img.data.iter_mut() {
                *v = lut[*v as usize];
            }
        }
        [l0, l1, l2] => {
            for p in img.data.chunks_exact_mut(3) {
                p[0] = l0[p[0] as usize];
                p[1] = l1[p[1] as usize];
                p[2] = l2[p[2] as usize];
            }
        }
        _ => {
            for p in img.data.chunks_exact_mut(luts.len()) {
                for (v, lut) in p.iter_mut().zip(luts) {
                    *v = lut[*v as usize];
                }
            }
        }
    }
    clear_marks(img);
}

/// Per-channel histograms (as many as the image has channels).
fn histograms(img: &Image) -> Vec<[u32; 256]> {
    let c = img.channels;
    let mut h = vec![[0u32; 256]; c];
    match &mut h[..] {
        [h0] => {
            for &v in &img.data {
                h0[v as usize] += 1;
            }
        }
        [h0, h1, h2] => {
            for p in img.data.chunks_exact(3) {
                h0[p[0] as usize] += 1;
                h1[p[1] as usize] += 1;
                h2[p[2] as usize] += 1;
            }
        }
        hs => {
            for p in img.data.chunks_exact(c) {
                for (&v, h) in p.iter().zip(hs.iter_mut()) {
                    h[v as usize] += 1;
                }
            }
        }
    }
    h
}

/// `ImageOps.posterize(img, bits)`: keep the top `bits` bits (1..=8).
pub fn posterize(img: &mut Image, bits: u32) {
    let bits = bits.clamp(1, 8);
    let mask = !((1u32 << (8 - bits)) - 1) as u8;
    for v in img.data.iter_mut() {
        *v &= mask;
    }
    clear_marks(img);
}

/// `ImageOps.solarize(img, threshold)`: invert every value >= threshold.
pub fn solarize(img: &mut Image, threshold: u32) {
    if threshold <= 255 {
        let t = threshold as u8;
        for v in img.data.iter_mut() {
            *v = if *v < t { *v } else { 255 - *v };
        }
    }
    clear_marks(img);
}

/// `ImageOps.invert(img)`.
pub fn invert(img: &mut Image) {
    for v in img.data.iter_mut() {
        *v = 255 - *v;
    }
    clear_marks(img);
}

/// The lowest and highest value of each channel (`None` for an empty image).
fn channel_ranges(img: &Image) -> Vec<Option<(u8, u8)>> {
    let c = img.channels;
    if img.data.is_empty() {
        return vec![None; c];
    }
    // Elementwise min/max over blocks of 16 pixels (whole pixels, so lane j holds channel
    // j % c), then over the lanes of each channel and the leftover pixels.
    const LANES: usize = 16;
    let block = LANES * c;
    let mut lo = vec![255u8; block];
    let mut hi = vec![0u8; block];
    let mut blocks = img.data.chunks_exact(block);
    for b in &mut blocks {
        for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(b) {
            *l = (*l).min(v);
            *h = (*h).max(v);
        }
    }
    for (j, &v) in blocks.remainder().iter().enumerate() {
        lo[j] = lo[j].min(v);
        hi[j] = hi[j].max(v);
    }
    (0..c)
        .map(|k| {
            let l = lo.iter().skip(k).step_by(c).min().copied();
            let h = hi.iter().skip(k).step_by(c).max().copied();
            l.zip(h)
        })
        .collect()
}

/// `ImageOps.autocontrast(img)` (no cutoff): per channel, stretch [lo, hi] to [0, 255]
/// with `int(v * scale + offset)`, `scale = 255 / (hi - lo)`, `offset = -lo * scale`.
pub fn autocontrast(img: &mut Image) {
    let ranges = channel_ranges(img);
    if ranges
        .iter()
        .all(|r| matches!(r, Some((lo, hi)) if hi <= lo) || r.is_none())
    {
        // Every channel flat: the identity tables.
        clear_marks(img);
        return;
    }
    let luts: Vec<[u8; 256]> = ranges
        .iter()
        .map(|r| {
            let mut lut = [0u8; 256];
            for (i, v) in lut.iter_mut().enumerate() {
                *v = i as u8;
            }
            if let Some((lo, hi)) = *r {
                if hi > lo {
                    let scale = 255.0 / (hi - lo) as f64;
                    let offset = -(lo as f64) * scale;
                    // Only values in lo..=hi occur.
                    for (i, v) in lut
                        .iter_mut()
                        .enumerate()
                        .take(hi as usize + 1)
                        .skip(lo as usize)
                    {
                        let x = (i as f64 * scale + offset) as i64;
                        *v = x.clamp(0, 255) as u8;
                    }
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
            let mut used = 0usize;
            let mut total = 0u64;
            let mut last = 0u64;
            for &c in h.iter().filter(|&&c| c > 0) {
                used += 1;
                total += c as u64;
                last = c as u64;
            }
            if used <= 1 {
                return lut;
            }
            let step = (total - last) / 255;
            if step == 0 {
                return lut;
            }
            // Entry i is min((step / 2 + cum(0..i)) / step, 255), walked as quotient and
            // remainder (the quotient only grows, by at most 255 steps in all).
            let (mut q, mut r) = (0u32, step / 2);
            for (i, v) in lut.iter_mut().enumerate() {
                *v = q as u8;
                r += h[i] as u64;
                while r >= step && q < 255 {
                    r -= step;
                    q += 1;
                }
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
