//! Time per step of one frame on the real screen (`DISPLAY`), printed as `step<TAB>mean ms` lines
//! for `cargo xtask bench`. Includes `image`'s own JPEG encoder as the yardstick our choice of
//! `jpeg-encoder` is measured against.

use std::time::Instant;

use fast_image_resize::Resizer;
use image::ImageEncoder;
use screenshare_core::capture::Screens;
use screenshare_core::capture::xcap::XcapScreens;
use screenshare_core::encode::{encode_jpeg, encode_png, scale_to_width};

const RUNS: u32 = 20;

fn mean_ms(mut step: impl FnMut()) -> f64 {
    step();
    let started = Instant::now();
    for _ in 0..RUNS {
        step();
    }
    started.elapsed().as_secs_f64() * 1000.0 / f64::from(RUNS)
}

fn main() -> anyhow::Result<()> {
    let mut source = XcapScreens.open(None)?;
    let info = source.info().clone();
    let frame = source.grab()?;
    eprintln!("monitor {} {}x{}", info.name, info.width, info.height);

    let grab = mean_ms(|| {
        source.grab().ok();
    });
    let mut resizer = Resizer::new();
    let scale = mean_ms(|| {
        scale_to_width(&frame, 1280, &mut resizer).ok();
    });
    let png = mean_ms(|| {
        encode_png(&frame).ok();
    });
    let jpeg = mean_ms(|| {
        encode_jpeg(&frame, 80).ok();
    });
    let image_jpeg = mean_ms(|| {
        let mut out = Vec::new();
        let rgb = image::DynamicImage::ImageRgba8(frame.clone()).to_rgb8();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
            .write_image(
                rgb.as_raw(),
                rgb.width(),
                rgb.height(),
                image::ExtendedColorType::Rgb8,
            )
            .ok();
    });
    println!("grab (xcap, X11)\t{grab}");
    println!("scale to 1280 wide\t{scale}");
    println!("PNG encode (lossless)\t{png}");
    println!("JPEG encode q80 (jpeg-encoder, used)\t{jpeg}");
    println!("JPEG encode q80 (image crate, for comparison)\t{image_jpeg}");
    println!("grab + JPEG (fast path)\t{}", grab + jpeg);
    println!("grab + PNG (sharp path)\t{}", grab + png);
    println!("PNG bytes\t{}", encode_png(&frame)?.len() as f64);
    println!("JPEG q80 bytes\t{}", encode_jpeg(&frame, 80)?.len() as f64);
    Ok(())
}
