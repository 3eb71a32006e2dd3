//! The per-image steps every policy ends with: pad-and-crop, horizontal flip, cutout.

use super::affine::reverse_pixels;
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

/// In place: output pixel (x, y) is input pixel (x' + sx, y + sy), where x' = x, or
/// `w - 1 - x` when `flip` (a shift followed by a left-right mirror); pixels from outside
/// the input are uncovered (value 0).
pub(crate) fn shift(img: &mut Image, sx: isize, sy: isize, flip: bool) {
    let (w, h, c) = (img.width, img.height, img.channels);
    if sx == 0 && sy == 0 {
        if flip {
            flip_lr(img);
        }
        return;
    }
    let row = w * c;
    // Columns (before the mirror) x in x0..x1 read input columns x + sx.
    let x0 = (-sx).clamp(0, w as isize) as usize;
    let x1 = (w as isize - sx).clamp(x0 as isize, w as isize) as usize;
    let n = x1 - x0;
    let xi0 = (x0 as isize + sx).max(0) as usize;
    // After the mirror the covered run sits at w - x1..w - x0.
    let (o0, o1) = if flip { (w - x1, w - x0) } else { (x0, x1) };
    let one_row = |img: &mut Image, y: usize, tmp: &mut Vec<u8>, tmp_marks: &mut Vec<bool>| {
        let yi = y as isize + sy;
        if n == 0 || yi < 0 || yi >= h as isize {
            img.data[y * row..(y + 1) * row].fill(0);
            img.uncovered[y * w..(y + 1) * w].fill(true);
            return;
        }
        let yi = yi as usize;
        let (src, dst) = (yi * w + xi0, y * w + o0);
        if flip {
            tmp.clear();
            tmp.extend_from_slice(&img.data[src * c..(src + n) * c]);
            tmp_marks.clear();
            tmp_marks.extend_from_slice(&img.uncovered[src..src + n]);
            let out = &mut img.data[dst * c..(dst + n) * c];
            match c {
                1 => {
                    for (o, &t) in out.iter_mut().zip(tmp.iter().rev()) {
                        *o = t;
                    }
                }
                3 => {
                    for (o, t) in out.chunks_exact_mut(3).zip(tmp.rchunks_exact(3)) {
                        o.copy_from_slice(t);
                    }
                }
                _ => {
                    for (o, t) in out.chunks_exact_mut(c).zip(tmp.rchunks_exact(c)) {
                        o.copy_from_slice(t);
                    }
                }
            }
            for (o, &t) in img.uncovered[dst..dst + n]
                .iter_mut()
                .zip(tmp_marks.iter().rev())
            {
                *o = t;
            }
        } else {
            img.data.copy_within(src * c..(src + n) * c, dst * c);
            img.uncovered.copy_within(src..src + n, dst);
        }
        img.data[y * row..(y * w + o0) * c].fill(0);
        img.data[(y * w + o1) * c..(y + 1) * row].fill(0);
        img.uncovered[y * w..y * w + o0].fill(true);
        img.uncovered[y * w + o1..(y + 1) * w].fill(true);
    };
    // Rows read rows sy below (above for sy < 0): walk so that each is read before it is
    // overwritten.
    scratch::with(|s| {
        let (tmp, tmp_marks) = (&mut s.bytes, &mut s.marks);
        if sy > 0 {
            for y in 0..h {
                one_row(img, y, tmp, tmp_marks);
            }
        } else {
            for y in (0..h).rev() {
                one_row(img, y, tmp, tmp_marks);
            }
        }
    });
}

/// Pad by `pad` and crop at a random offset: each of dx, dy is uniform in
/// `0..=max_offset`.
pub fn pad_crop(img: &mut Image, pad: usize, max_offset: usize, rng: &mut StreamRng) {
    let dx = rng.random_range(0..=max_offset);
    let dy = rng.random_range(0..=max_offset);
    pad_crop_at(img, pad, dx, dy);
}

/// Mirrors the image left-right (marks too).
pub fn flip_lr(img: &mut Image) {
    let (w, c) = (img.width, img.channels);
    if w == 0 {
        return;
    }
    for row in img.data.chunks_exact_mut(w * c) {
        reverse_pixels(row, c);
    }
    for row in img.uncovered.chunks_exact_mut(w) {
        row.reverse();
    }
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
