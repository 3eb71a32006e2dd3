//! The per-image steps every policy ends with: pad-and-crop, horizontal flip, cutout.

use super::scratch;
use rand::Rng;
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;

/// Shifts the image by (-dx, -dy) inside a canvas padded by `pad` on each side: output pixel
/// (x, y) is input pixel (x + dx - pad, y + dy - pad); pixels from outside the input are
/// uncovered (value 0). This is a pad of `pad` followed by a crop at offset (dx, dy).
pub fn pad_crop_at(img: &mut Image, pad: usize, dx: usize, dy: usize) {
    shift(
        img,
        dx as isize - pad as isize,
        dy as isize - pad as isize,
        false,
    );
}

/// Output pixel (x, y) is input pixel (x' + sx, y + sy), where x' = x, or `w - 1 - x` when
/// `flip` (a shift followed by a left-right mirror); pixels from outside the input are
/// uncovered (value 0).
pub(crate) fn shift(img: &mut Image, sx: isize, sy: isize, flip: bool) {
    let (w, h, c) = (img.width, img.height, img.channels);
    if sx == 0 && sy == 0 && !flip {
        return;
    }
    // Columns (before the mirror) x in x0..x1 read input columns x + sx; rows y in y0..y1
    // read input rows y + sy.
    let x0 = (-sx).clamp(0, w as isize) as usize;
    let x1 = (w as isize - sx).clamp(x0 as isize, w as isize) as usize;
    let y0 = (-sy).clamp(0, h as isize) as usize;
    let y1 = (h as isize - sy).clamp(y0 as isize, h as isize) as usize;
    let n = x1 - x0;
    let xi0 = (x0 as isize + sx).max(0) as usize;
    // After the mirror the covered run sits at w - x1..w - x0.
    let o0 = if flip { w - x1 } else { x0 };
    // Built in a scratch canvas (zero, uncovered) that then trades places with the image.
    scratch::with(|s| {
        let (out, marks) = (&mut s.bytes, &mut s.marks);
        out.clear();
        out.resize(img.data.len(), 0);
        marks.clear();
        marks.resize(img.uncovered.len(), true);
        if n > 0 {
            for y in y0..y1 {
                let (src, dst) = ((y as isize + sy) as usize * w + xi0, y * w + o0);
                let run = &mut out[dst * c..(dst + n) * c];
                let from = &img.data[src * c..(src + n) * c];
                let run_marks = &mut marks[dst..dst + n];
                let from_marks = &img.uncovered[src..src + n];
                if flip {
                    reverse_copy(run, from, c);
                    run_marks.copy_from_slice(from_marks);
                    run_marks.reverse();
                } else {
                    run.copy_from_slice(from);
                    run_marks.copy_from_slice(from_marks);
                }
            }
        }
        std::mem::swap(&mut img.data, out);
        std::mem::swap(&mut img.uncovered, marks);
    });
}

/// Pad by `pad` and crop at a random offset: each of dx, dy is uniform in
/// `0..=max_offset`.
pub fn pad_crop(img: &mut Image, pad: usize, max_offset: usize, rng: &mut StreamRng) {
    let dx = rng.random_range(0..=max_offset);
    let dy = rng.random_range(0..=max_offset);
    pad_crop_at(img, pad, dx, dy);
}

/// Writes the `c`-byte pixels of `src` into `out` in reverse order.
fn reverse_copy(out: &mut [u8], src: &[u8], c: usize) {
    match c {
        1 => {
            out.copy_from_slice(src);
            out.reverse();
        }
        3 => {
            // Two pixels per step: one 8-byte load ending at the pair, its two 3-byte
            // fields swapped, one 8-byte store starting at the pair (its last two bytes are
            // the next pixel's, written after).
            let n = src.len() / 3;
            let mut x = 0;
            while x + 3 <= n {
                let j = n - 2 - x; // source pixels j + 1 and j go to x and x + 1
                let w = u64::from_le_bytes(src[3 * j - 2..3 * j + 6].try_into().unwrap());
                let v = ((w >> 40) & 0xff_ffff) | (((w >> 16) & 0xff_ffff) << 24);
                out[3 * x..3 * x + 8].copy_from_slice(&v.to_le_bytes());
                x += 2;
            }
            for x in x..n {
                out[3 * x..3 * x + 3].copy_from_slice(&src[3 * (n - 1 - x)..3 * (n - x)]);
            }
        }
        _ => {
            for (o, t) in out.chunks_exact_mut(c).zip(src.rchunks_exact(c)) {
                o.copy_from_slice(t);
            }
        }
    }
}

/// Mirrors the image left-right (marks too).
pub fn flip_lr(img: &mut Image) {
    shift(img, 0, 0, true);
}

/// The rows and columns a cutout square of side `size` centred at (cx, cy) covers, clipped
/// to the image: `[c - size/2, c - size/2 + size)` on each axis. For even sizes this is
/// PBA's `[c - size//2, c + size//2)`.
pub fn cutout_box(
    w: usize,
    h: usize,
    cx: usize,
    cy: usize,
    size: usize,
) -> (usize, usize, usize, usize) {
    let half = size / 2;
    let x0 = cx.saturating_sub(half);
    let y0 = cy.saturating_sub(half);
    let x1 = (cx + size - half).min(w);
    let y1 = (cy + size - half).min(h);
    (x0, y0, x1, y1)
}

/// Cutout at a given centre: the square's pixels become `fill` (one value per channel, the
/// last repeated) and are marked uncovered.
pub fn cutout_at(img: &mut Image, cx: usize, cy: usize, size: usize, fill: &[u8]) {
    if size == 0 {
        return;
    }
    let (w, c) = (img.width, img.channels);
    let (x0, y0, x1, y1) = cutout_box(w, img.height, cx, cy, size);
    if x0 >= x1 {
        return;
    }
    let last = fill[fill.len() - 1];
    let flat = fill.len() == 1 || fill[..c.min(fill.len())].iter().all(|&v| v == last);
    for y in y0..y1 {
        let p = y * w;
        img.uncovered[p + x0..p + x1].fill(true);
        let data = &mut img.data[(p + x0) * c..(p + x1) * c];
        if flat {
            data.fill(last);
        } else {
            for px in data.chunks_exact_mut(c) {
                for (k, v) in px.iter_mut().enumerate() {
                    *v = fill[k.min(fill.len() - 1)];
                }
            }
        }
    }
}

/// Cutout with its centre uniform over the image (row first, then column, as PBA draws it).
pub fn cutout(img: &mut Image, size: usize, fill: &[u8], rng: &mut StreamRng) {
    if size == 0 {
        return;
    }
    let cy = rng.random_range(0..img.height);
    let cx = rng.random_range(0..img.width);
    cutout_at(img, cx, cy, size, fill);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp(w: usize, h: usize, c: usize) -> Image {
        let data = (0..w * h * c).map(|i| (i % 251) as u8 + 1).collect();
        Image::new(w, h, c, data)
    }

    #[test]
    fn pad_crop_shifts_and_marks() {
        let orig = ramp(5, 4, 3);
        let mut img = orig.clone();
        // dx = pad + 2, dy = pad - 1: output (x, y) = input (x + 2, y - 1).
        pad_crop_at(&mut img, 4, 6, 3);
        for y in 0..4 {
            for x in 0..5 {
                let (xi, yi) = (x as isize + 2, y as isize - 1);
                let inside = (0..5).contains(&xi) && (0..4).contains(&yi);
                assert_eq!(img.uncovered[y * 5 + x], !inside, "({x},{y})");
                for k in 0..3 {
                    let want = if inside {
                        orig.at(xi as usize, yi as usize, k)
                    } else {
                        0
                    };
                    assert_eq!(img.at(x, y, k), want);
                }
            }
        }
    }

    #[test]
    fn pad_crop_centre_offset_is_identity_and_keeps_marks() {
        let mut img = ramp(6, 6, 1);
        img.uncovered[7] = true;
        let before = img.clone();
        pad_crop_at(&mut img, 4, 4, 4);
        assert_eq!(img, before);
        // A shift carries the mark along with its pixel.
        pad_crop_at(&mut img, 4, 5, 4);
        assert!(img.uncovered[6]);
        assert!(!img.uncovered[7]);
    }

    #[test]
    fn flip_mirrors_pixels_and_marks() {
        let orig = ramp(5, 2, 3);
        let mut img = orig.clone();
        img.uncovered[0] = true;
        flip_lr(&mut img);
        assert!(img.uncovered[4] && !img.uncovered[0]);
        for y in 0..2 {
            for x in 0..5 {
                for k in 0..3 {
                    assert_eq!(img.at(x, y, k), orig.at(4 - x, y, k));
                }
            }
        }
        flip_lr(&mut img);
        assert_eq!(img.data, orig.data);
    }

    #[test]
    fn cutout_clips_at_borders() {
        let mut img = ramp(8, 8, 3);
        cutout_at(&mut img, 0, 7, 4, &[9]);
        let marked: Vec<usize> = (0..64).filter(|&p| img.uncovered[p]).collect();
        // Columns 0..2, rows 5..8.
        let want: Vec<usize> = (5..8)
            .flat_map(|y| (0..2).map(move |x| y * 8 + x))
            .collect();
        assert_eq!(marked, want);
        assert_eq!(img.at(1, 6, 2), 9);
        assert_ne!(img.at(2, 6, 0), 9);
    }

    #[test]
    fn random_steps_are_seeded() {
        let mut a = ramp(32, 32, 3);
        let mut b = a.clone();
        let mut ra = StreamRng::seed_from_u64(3);
        let mut rb = StreamRng::seed_from_u64(3);
        for _ in 0..5 {
            pad_crop(&mut a, 4, 8, &mut ra);
            cutout(&mut a, 8, &[0], &mut ra);
            pad_crop(&mut b, 4, 8, &mut rb);
            cutout(&mut b, 8, &[0], &mut rb);
        }
        assert_eq!(a, b);
    }
}
