//! Real monitors, through xcap (X11 or the Wayland portal on Linux, CoreGraphics, DXGI/GDI).

use xcap::{Monitor, XCapError};

use super::{CaptureError, Damage, Grab, MonitorInfo, Screens, Source, resolve};
use crate::pixels::Picture;
use crate::settings::MonitorChoice;

/// The machine's monitors.
#[derive(Debug, Default, Clone, Copy)]
pub struct XcapScreens;

impl Screens for XcapScreens {
    fn list(&self) -> Result<Vec<MonitorInfo>, CaptureError> {
        Ok(all_monitors()?.into_iter().map(|(info, _)| info).collect())
    }

    fn open(&self, choice: Option<&MonitorChoice>) -> Result<Box<dyn Source>, CaptureError> {
        let monitors = all_monitors()?;
        let infos: Vec<MonitorInfo> = monitors.iter().map(|(info, _)| info.clone()).collect();
        let chosen = resolve(&infos, choice)?;
        let monitor = monitors
            .into_iter()
            .find(|(info, _)| info.index == chosen.index)
            .map(|(_, monitor)| monitor)
            .ok_or(CaptureError::NoMonitors)?;
        Ok(Box::new(XcapSource {
            info: chosen,
            monitor,
            picture: Picture::new(0, 0),
        }))
    }
}

struct XcapSource {
    info: MonitorInfo,
    monitor: Monitor,
    picture: Picture,
}

impl Source for XcapSource {
    fn info(&self) -> &MonitorInfo {
        &self.info
    }

    fn grab(&mut self) -> Result<Grab<'_>, CaptureError> {
        let image = self.monitor.capture_image().map_err(capture_error)?;
        self.picture = Picture::from_rgba(image);
        Ok(Grab {
            picture: &self.picture,
            damage: Damage::Unknown,
            pointer: None,
        })
    }

    fn method(&self) -> &'static str {
        "xcap"
    }
}

fn all_monitors() -> Result<Vec<(MonitorInfo, Monitor)>, CaptureError> {
    check_display_is_set()?;
    let monitors = Monitor::all().map_err(capture_error)?;
    monitors
        .into_iter()
        .enumerate()
        .map(|(index, monitor)| {
            let info = MonitorInfo {
                index,
                id: monitor.id().map_err(capture_error)?,
                name: monitor.name().map_err(capture_error)?,
                width: monitor.width().map_err(capture_error)?,
                height: monitor.height().map_err(capture_error)?,
                x: monitor.x().map_err(capture_error)?,
                y: monitor.y().map_err(capture_error)?,
                scale_factor: monitor.scale_factor().unwrap_or(1.0),
                is_primary: monitor.is_primary().unwrap_or(false),
            };
            Ok((info, monitor))
        })
        .collect()
}

/// On Linux, xcap falls back to a made-up display name when none is set; say what is wrong instead.
fn check_display_is_set() -> Result<(), CaptureError> {
    if cfg!(target_os = "linux") {
        let set = |name| std::env::var_os(name).is_some_and(|value| !value.is_empty());
        if !set("DISPLAY") && !set("WAYLAND_DISPLAY") {
            return Err(CaptureError::NoDisplay(
                "neither DISPLAY nor WAYLAND_DISPLAY is set; run from a desktop session, \
                 or point DISPLAY at an X server (for a virtual one: `cargo xtask run` offers it)"
                    .to_owned(),
            ));
        }
    }
    Ok(())
}

fn capture_error(error: XCapError) -> CaptureError {
    #[cfg(all(target_os = "linux", not(target_env = "ohos")))]
    if let XCapError::XcbConnError(connection) = &error {
        let display = std::env::var("DISPLAY").unwrap_or_default();
        return CaptureError::NoDisplay(format!(
            "cannot connect to the X server at DISPLAY={display:?} ({connection}); is it running?"
        ));
    }
    CaptureError::Failed {
        reason: error.to_string(),
    }
}
