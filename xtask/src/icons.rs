//! `cargo xtask icons`: the icon set `src-tauri/tauri.conf.json` names, made from icons/source.png
//! (1024x1024). PNGs for Linux, an .ico for Windows, an .icns for macOS.

use std::path::Path;

use anyhow::Context;
use image::codecs::ico::{IcoEncoder, IcoFrame};
use image::imageops::FilterType;
use image::{ExtendedColorType, ImageEncoder, RgbaImage};

pub fn generate(dir: &Path) -> anyhow::Result<()> {
    let source = image::open(dir.join("source.png"))
        .context("icons/source.png is the one source image")?
        .to_rgba8();
    let sized = |side: u32| image::imageops::resize(&source, side, side, FilterType::Lanczos3);

    for (name, side) in [
        ("32x32.png", 32),
        ("128x128.png", 128),
        ("128x128@2x.png", 256),
        ("icon.png", 512),
    ] {
        std::fs::write(dir.join(name), png(&sized(side))?)?;
    }

    let frames = [16, 24, 32, 48, 64, 256]
        .into_iter()
        .map(|side| {
            let image = sized(side);
            IcoFrame::as_png(image.as_raw(), side, side, ExtendedColorType::Rgba8)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut ico = Vec::new();
    IcoEncoder::new(&mut ico).encode_images(&frames)?;
    std::fs::write(dir.join("icon.ico"), ico)?;

    // ICNS: "icns", total length, then (type, length, PNG) entries; PNG payloads are valid for
    // these types since macOS 10.7.
    let mut entries = Vec::new();
    for (kind, side) in [
        (b"ic07", 128),
        (b"ic08", 256),
        (b"ic09", 512),
        (b"ic10", 1024),
    ] {
        let data = png(&sized(side))?;
        entries.extend_from_slice(kind);
        entries.extend_from_slice(&u32::try_from(data.len() + 8)?.to_be_bytes());
        entries.extend_from_slice(&data);
    }
    let mut icns = b"icns".to_vec();
    icns.extend_from_slice(&u32::try_from(entries.len() + 8)?.to_be_bytes());
    icns.extend_from_slice(&entries);
    std::fs::write(dir.join("icon.icns"), icns)?;
    eprintln!("xtask: wrote the icon set in {}", dir.display());
    Ok(())
}

fn png(image: &RgbaImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(
        image.as_raw(),
        image.width(),
        image.height(),
        ExtendedColorType::Rgba8,
    )?;
    Ok(out)
}
