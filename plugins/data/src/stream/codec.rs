//! Decoding an encoded image into 8-bit RGB or grey, optionally at 1/2, 1/4 or 1/8 of its
//! size for JPEGs (the codec's DCT-domain scaling: most of the inverse DCT and colour
//! conversion is skipped, the way libjpeg's `scale_denom` and Pillow's `draft` do it).
//!
//! Full-size JPEGs go through zune-jpeg (the fastest pure-Rust decoder), scaled ones
//! through jpeg-decoder (the one with scaled inverse DCTs); other formats (PNG, BMP)
//! through the `image` crate. The format is sniffed from the bytes, not the file name
//! (ImageNet has PNG and CMYK files named `.JPEG`).

use crate::folder::pillow_luma_bytes;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// A decoded image: `channels` interleaved 8-bit samples per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

/// Whether `bytes` start like a JPEG (SOI marker).
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8])
}

/// `(width, height)` of an image without decoding its pixels (JPEG headers, or the
/// `image` crate's header readers).
pub fn dimensions(bytes: &[u8]) -> Result<(usize, usize), String> {
    if is_jpeg(bytes) {
        let mut dec = zune_jpeg::JpegDecoder::new(ZCursor::new(bytes));
        dec.decode_headers().map_err(|e| format!("{e:?}"))?;
        let info = dec.info().ok_or("no JPEG frame header")?;
        return Ok((info.width as usize, info.height as usize));
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let (w, h) = reader.into_dimensions().map_err(|e| e.to_string())?;
    Ok((w as usize, h as usize))
}

/// Decodes `bytes` into `channels` (1 or 3) channels, at `1/denominator` of its size
/// (`denominator` 1, 2, 4 or 8; only JPEGs are scaled, other formats come back whole).
pub fn decode(bytes: &[u8], channels: usize, denominator: usize) -> Result<Decoded, String> {
    if is_jpeg(bytes) {
        if denominator > 1 {
            if let Some(d) = decode_jpeg_scaled(bytes, channels, denominator)? {
                return Ok(d);
            }
        }
        return decode_jpeg(bytes, channels);
    }
    let img = image::load_from_memory(bytes).map_err(|e| e.to_string())?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    let data = match (channels, img) {
        (1, image::DynamicImage::ImageLuma8(g)) => g.into_raw(),
        (1, img) => pillow_luma_bytes(img.to_rgb8().as_raw()),
        (_, img) => img.to_rgb8().into_raw(),
    };
    Ok(Decoded {
        width,
        height,
        channels,
        data,
    })
}

fn decode_jpeg(bytes: &[u8], channels: usize) -> Result<Decoded, String> {
    let space = if channels == 1 {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(space)
        .set_strict_mode(true);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let data = dec.decode().map_err(|e| format!("{e:?}"))?;
    let info = dec.info().ok_or("no JPEG frame header")?;
    let (width, height) = (info.width as usize, info.height as usize);
    if data.len() != width * height * channels {
        return Err(format!(
            "decoded {} bytes for {width}x{height}x{channels}",
            data.len()
        ));
    }
    Ok(Decoded {
        width,
        height,
        channels,
        data,
    })
}

/// A JPEG decoded at `1/denominator` size; `None` for colour models the scaled decoder
/// hands back unconverted (CMYK), which the full decoder then takes.
fn decode_jpeg_scaled(
    bytes: &[u8],
    channels: usize,
    denominator: usize,
) -> Result<Option<Decoded>, String> {
    let mut dec = jpeg_decoder::Decoder::new(bytes);
    dec.read_info().map_err(|e| e.to_string())?;
    let info = dec.info().ok_or("no JPEG frame header")?;
    let want = |n: u16| n.div_ceil(denominator as u16).max(1);
    let (w, h) = dec
        .scale(want(info.width), want(info.height))
        .map_err(|e| e.to_string())?;
    let pixels = dec.decode().map_err(|e| e.to_string())?;
    let (w, h) = (w as usize, h as usize);
    let data = match (info.pixel_format, channels) {
        (jpeg_decoder::PixelFormat::L8, 1) => pixels,
        (jpeg_decoder::PixelFormat::L8, _) => pixels.iter().flat_map(|&v| [v, v, v]).collect(),
        (jpeg_decoder::PixelFormat::RGB24, 1) => pillow_luma_bytes(&pixels),
        (jpeg_decoder::PixelFormat::RGB24, _) => pixels,
        _ => return Ok(None),
    };
    if data.len() != w * h * channels {
        return Err(format!(
            "decoded {} bytes for {w}x{h}x{channels}",
            data.len()
        ));
    }
    Ok(Some(Decoded {
        width: w,
        height: h,
        channels,
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn scaled_decodes_have_the_codec_sizes_and_the_same_picture() {
        let bytes = jpeg(203, 150);
        assert_eq!(dimensions(&bytes).unwrap(), (203, 150));
        let full = decode(&bytes, 3, 1).unwrap();
        assert_eq!((full.width, full.height), (203, 150));
        for (den, w, h) in [(2, 102, 75), (4, 51, 38), (8, 26, 19)] {
            let d = decode(&bytes, 3, den).unwrap();
            assert_eq!((d.width, d.height), (w, h), "1/{den}");
            // The same gradient: the pixel at a scaled position matches the full image's.
            let (x, y) = (w / 2, h / 2);
            let scaled = d.data[(y * w + x) * 3] as i32;
            let orig = full.data[((y * den) * 203 + x * den) * 3] as i32;
            assert!((scaled - orig).abs() <= 8, "1/{den}: {scaled} vs {orig}");
        }
    }

    #[test]
    fn truncated_and_foreign_bytes_are_errors_not_panics() {
        let bytes = jpeg(64, 48);
        for den in [1, 2] {
            assert!(decode(&bytes[..bytes.len() / 2], 3, den).is_err());
        }
        assert!(decode(b"not an image", 3, 1).is_err());
        assert!(dimensions(b"").is_err());
    }

    #[test]
    fn grey_output_follows_pillow_luma() {
        let bytes = jpeg(32, 32);
        let rgb = decode(&bytes, 3, 1).unwrap();
        let grey = decode(&bytes, 1, 1).unwrap();
        assert_eq!(grey.data.len(), 32 * 32);
        // zune's own luma path is used for JPEGs: within a level or two of Pillow's weights.
        let p = pillow_luma_bytes(&rgb.data);
        let worst = p
            .iter()
            .zip(&grey.data)
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max();
        assert!(worst.unwrap() <= 3, "{worst:?}");
    }
}
