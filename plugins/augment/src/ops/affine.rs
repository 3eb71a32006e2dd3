//! Pillow's nearest-neighbour affine transform (`Image.transform(size, AFFINE, data)` and
//! `Image.rotate`), reproduced operation for operation so that results match Pillow pixel
//! for pixel.
//!
//! Pillow maps each output pixel back into the input: output (x, y) samples input
//! `(a0 (x + 0.5) + a1 (y + 0.5) + a2, a3 (x + 0.5) + a4 (y + 0.5) + a5)`, truncated to a
//! pixel index. Three engines do this, chosen as Pillow chooses them:
//! - a pure scale/translate (a1 = a3 = 0): double arithmetic, accumulated per pixel;
//! - otherwise, when all four corners map inside +-32768: 16.16 fixed point (the constants
//!   rounded with `floor(v * 65536 + 0.5)`, walked by integer increments);
//! - otherwise: double arithmetic, accumulated per pixel.
//!
//! Output pixels that sample outside the input get value 0 and are marked uncovered (in
//! Pillow's RGBA images they become (0, 0, 0, 0): transparent); covered ones take the
//! input's value and mark.

use rolekd_core::plugin::image::Image;

/// Pillow's `COORD`: truncation, with every negative value mapped to -1.
#[inline]
fn coord(v: f64) -> i64 {
    if v < 0.0 {
        -1
    } else {
        v as i64
    }
}

/// Pillow's `FIX`: 16.16 fixed point, `floor(v * 65536 + 0.5)`.
#[inline]
fn fix(v: f64) -> i32 {
    (v * 65536.0 + 0.5).floor() as i32
}

fn check_fixed(a: &[f64; 6], x: f64, y: f64) -> bool {
    (x * a[0] + y * a[1] + a[2]).abs() < 32768.0 && (x * a[3] + y * a[4] + a[5]).abs() < 32768.0
}

/// Applies the inverse affine map `a` (Pillow's `data` for `Transform.AFFINE`) with
/// nearest-neighbour sampling; the output has the input's size.
pub fn affine_nearest(img: &mut Image, a: &[f64; 6]) {
    let (w, h, c) = (img.width, img.height, img.channels);
    let mut data = vec![0u8; img.data.len()];
    let mut unc = vec![true; w * h];
    {
        let mut put = |x: usize, y: usize, xin: i64, yin: i64| {
            if xin >= 0 && (xin as usize) < w && yin >= 0 && (yin as usize) < h {
                let (xi, yi) = (xin as usize, yin as usize);
                let (o, i) = (y * w + x, yi * w + xi);
                data[o * c..(o + 1) * c].copy_from_slice(&img.data[i * c..(i + 1) * c]);
                unc[o] = img.uncovered[i];
            }
        };
        if a[1] == 0.0 && a[3] == 0.0 {
            // ImagingScaleAffine: the column table first, then rows.
            let mut xo = a[2] + a[0] * 0.5;
            let mut xin = vec![0i64; w];
            for v in xin.iter_mut() {
                *v = coord(xo);
                xo += a[0];
            }
            let mut yo = a[5] + a[4] * 0.5;
            for y in 0..h {
                let yi = coord(yo);
                for (x, &xi) in xin.iter().enumerate() {
                    put(x, y, xi, yi);
                }
                yo += a[4];
            }
        } else if check_fixed(a, 0.0, 0.0)
            && check_fixed(a, w as f64, h as f64)
            && check_fixed(a, 0.0, h as f64)
            && check_fixed(a, w as f64, 0.0)
        {
            let (a0, a1, a3, a4) = (fix(a[0]), fix(a[1]), fix(a[3]), fix(a[4]));
            let mut a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5);
            let mut a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
            for y in 0..h {
                let (mut xx, mut yy) = (a2, a5);
                for x in 0..w {
                    put(x, y, (xx >> 16) as i64, (yy >> 16) as i64);
                    xx = xx.wrapping_add(a0);
                    yy = yy.wrapping_add(a3);
                }
                a2 = a2.wrapping_add(a1);
                a5 = a5.wrapping_add(a4);
            }
        } else {
            let mut xo = a[2] + a[1] * 0.5 + a[0] * 0.5;
            let mut yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
            for y in 0..h {
                let (mut xx, mut yy) = (xo, yo);
                for x in 0..w {
                    put(x, y, coord(xx), coord(yy));
                    xx += a[0];
                    yy += a[3];
                }
                xo += a[1];
                yo += a[4];
            }
        }
    }
    img.data = data;
    img.uncovered = unc;
}

/// Python's `round(v, 15)`: the nearest double to `v` rounded to 15 decimals.
fn round15(v: f64) -> f64 {
    format!("{v:.15}")
        .parse()
        .expect("a formatted float parses")
}

/// Pillow's inverse matrix for `Image.rotate(degrees)` about the centre (w/2, h/2), no
/// expansion, no translation (angle reduced mod 360 first, as Pillow does).
pub fn rotate_matrix(degrees: f64, w: usize, h: usize) -> [f64; 6] {
    let angle = -(degrees.rem_euclid(360.0)).to_radians();
    let (cos, sin) = (round15(angle.cos()), round15(angle.sin()));
    let mut m = [cos, sin, 0.0, round15(-angle.sin()), cos, 0.0];
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let (x, y) = (-cx, -cy);
    // Pillow: a x + b y + c with c = 0 (adding 0.0 changes nothing).
    m[2] = m[0] * x + m[1] * y;
    m[5] = m[3] * x + m[4] * y;
    m[2] += cx;
    m[5] += cy;
    m
}

/// `Image.rotate(degrees)` with nearest-neighbour sampling: counter-clockwise for positive
/// angles, about the image centre; corners uncovered.
pub fn rotate(img: &mut Image, degrees: f64) {
    let angle = degrees.rem_euclid(360.0);
    if angle == 0.0 {
        return;
    }
    if angle == 180.0 {
        rotate_180(img);
        return;
    }
    if (angle == 90.0 || angle == 270.0) && img.width == img.height {
        rotate_quarter(img, angle == 90.0);
        return;
    }
    let m = rotate_matrix(degrees, img.width, img.height);
    affine_nearest(img, &m);
}

fn rotate_180(img: &mut Image) {
    let c = img.channels;
    let n = img.pixels();
    for p in 0..n / 2 {
        let q = n - 1 - p;
        for k in 0..c {
            img.data.swap(p * c + k, q * c + k);
        }
        img.uncovered.swap(p, q);
    }
}

/// Pillow's ROTATE_90 (counter-clockwise) or ROTATE_270 transpose of a square image.
fn rotate_quarter(img: &mut Image, ccw: bool) {
    let (n, c) = (img.width, img.channels);
    let mut data = vec![0u8; img.data.len()];
    let mut unc = vec![false; n * n];
    for y in 0..n {
        for x in 0..n {
            // ROTATE_90: out[n-1-x][y] = in[y][x]; ROTATE_270: out[x][n-1-y] = in[y][x].
            let (ox, oy) = if ccw { (y, n - 1 - x) } else { (n - 1 - y, x) };
            let (o, i) = (oy * n + ox, y * n + x);
            data[o * c..(o + 1) * c].copy_from_slice(&img.data[i * c..(i + 1) * c]);
            unc[o] = img.uncovered[i];
        }
    }
    img.data = data;
    img.uncovered = unc;
}

/// PBA's TranslateX: `transform(AFFINE, (1, 0, t, 0, 1, 0))`, output (x, y) = input (x + t, y).
pub fn translate_x(img: &mut Image, t: f64) {
    affine_nearest(img, &[1.0, 0.0, t, 0.0, 1.0, 0.0]);
}

/// PBA's TranslateY: `transform(AFFINE, (1, 0, 0, 0, 1, t))`.
pub fn translate_y(img: &mut Image, t: f64) {
    affine_nearest(img, &[1.0, 0.0, 0.0, 0.0, 1.0, t]);
}

/// PBA's ShearX: `transform(AFFINE, (1, s, 0, 0, 1, 0))`, no re-centring.
pub fn shear_x(img: &mut Image, s: f64) {
    affine_nearest(img, &[1.0, s, 0.0, 0.0, 1.0, 0.0]);
}

/// PBA's ShearY: `transform(AFFINE, (1, 0, 0, s, 1, 0))`, no re-centring.
pub fn shear_y(img: &mut Image, s: f64) {
    affine_nearest(img, &[1.0, 0.0, 0.0, s, 1.0, 0.0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coords(w: usize, h: usize) -> Image {
        let mut d = Vec::new();
        for y in 0..h {
            for x in 0..w {
                d.extend_from_slice(&[x as u8, y as u8]);
            }
        }
        Image::new(w, h, 2, d)
    }

    #[test]
    fn translate_shifts_by_whole_pixels() {
        let mut img = coords(6, 5);
        translate_x(&mut img, 2.0);
        for y in 0..5 {
            for x in 0..6 {
                let inside = x + 2 < 6;
                assert_eq!(img.uncovered[y * 6 + x], !inside);
                if inside {
                    assert_eq!((img.at(x, y, 0), img.at(x, y, 1)), ((x + 2) as u8, y as u8));
                } else {
                    assert_eq!(img.at(x, y, 0), 0);
                }
            }
        }
        let mut img = coords(6, 5);
        translate_y(&mut img, -3.0);
        assert!(img.uncovered[2 * 6 + 1] && !img.uncovered[3 * 6 + 1]);
        assert_eq!(img.at(1, 3, 1), 0);
        assert_eq!(img.at(1, 4, 1), 1);
    }

    #[test]
    fn rotate_matrix_matches_pillow_convention() {
        // Pillow: rotate(30) on 32x32 gives cos(-30deg), sin(-30deg) rounded to 15 digits.
        let m = rotate_matrix(30.0, 32, 32);
        assert_eq!(m[0], 0.866025403784439);
        assert_eq!(m[1], -0.5);
        assert_eq!(m[3], 0.5);
        // Negative angles go through mod 360 first.
        let n = rotate_matrix(-30.0, 32, 32);
        assert_eq!(n[1], round15((-(330.0f64).to_radians()).sin()));
    }

    #[test]
    fn quarter_turns_and_half_turn() {
        let base = coords(4, 4);
        let mut img = base.clone();
        rotate(&mut img, 90.0);
        // Counter-clockwise: the top-right corner moves to the top-left.
        assert_eq!((img.at(0, 0, 0), img.at(0, 0, 1)), (3, 0));
        rotate(&mut img, 270.0);
        assert_eq!(img, base);
        rotate(&mut img, 180.0);
        assert_eq!((img.at(0, 0, 0), img.at(0, 0, 1)), (3, 3));
        assert!(img.uncovered.iter().all(|u| !u));
    }

    #[test]
    fn small_rotation_uncovers_corners_only() {
        let mut img = coords(32, 32);
        rotate(&mut img, 15.0);
        assert!(img.uncovered[0] && img.uncovered[31] && img.uncovered[32 * 31]);
        assert!(!img.uncovered[16 * 32 + 16]);
        assert_eq!((img.at(16, 16, 0), img.at(16, 16, 1)), (16, 16));
    }
}
