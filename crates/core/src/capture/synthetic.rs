//! A test pattern standing in for monitors, for unit tests and the router tests that need no X server.
//! The real thing is tested against Xvfb; this one lets a test paint, fail and restore a "screen" at will.

use std::sync::{Arc, Mutex, PoisonError};

use image::{Rgba, RgbaImage};

use super::{CaptureError, MonitorInfo, Screens, Source, resolve};
use crate::settings::MonitorChoice;

/// One or more solid-colour screens whose colour, size and health a test controls.
#[derive(Debug, Clone)]
pub struct SyntheticScreens {
    screens: Arc<Mutex<Vec<Painted>>>,
}

#[derive(Debug, Clone)]
struct Painted {
    info: MonitorInfo,
    colour: [u8; 4],
    failing: bool,
}

impl SyntheticScreens {
    /// Screens of the given sizes, the first one primary, each painted black.
    pub fn new(sizes: &[(u32, u32)]) -> Self {
        let screens = sizes
            .iter()
            .enumerate()
            .map(|(index, &(width, height))| Painted {
                info: MonitorInfo {
                    index,
                    id: index as u32 + 1,
                    name: format!("synthetic-{index}"),
                    width,
                    height,
                    x: 0,
                    y: 0,
                    scale_factor: 1.0,
                    is_primary: index == 0,
                },
                colour: [0, 0, 0, 255],
                failing: false,
            })
            .collect();
        Self {
            screens: Arc::new(Mutex::new(screens)),
        }
    }

    /// Paints screen `index` in one colour.
    pub fn paint(&self, index: usize, rgb: [u8; 3]) {
        self.with(index, |screen| {
            screen.colour = [rgb[0], rgb[1], rgb[2], 255]
        });
    }

    /// Makes every grab of screen `index` fail (unplugged), or work again.
    pub fn set_failing(&self, index: usize, failing: bool) {
        self.with(index, |screen| screen.failing = failing);
    }

    fn with(&self, index: usize, change: impl FnOnce(&mut Painted)) {
        let mut screens = self.screens.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(screen) = screens.get_mut(index) {
            change(screen);
        }
    }

    fn snapshot(&self, index: usize) -> Option<Painted> {
        let screens = self.screens.lock().unwrap_or_else(PoisonError::into_inner);
        screens.get(index).cloned()
    }
}

impl Screens for SyntheticScreens {
    fn list(&self) -> Result<Vec<MonitorInfo>, CaptureError> {
        let screens = self.screens.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(screens.iter().map(|screen| screen.info.clone()).collect())
    }

    fn open(&self, choice: Option<&MonitorChoice>) -> Result<Box<dyn Source>, CaptureError> {
        let info = resolve(&self.list()?, choice)?;
        Ok(Box::new(SyntheticSource {
            screens: self.clone(),
            info,
        }))
    }
}

struct SyntheticSource {
    screens: SyntheticScreens,
    info: MonitorInfo,
}

impl Source for SyntheticSource {
    fn info(&self) -> &MonitorInfo {
        &self.info
    }

    fn grab(&mut self) -> Result<RgbaImage, CaptureError> {
        let screen = self
            .screens
            .snapshot(self.info.index)
            .ok_or(CaptureError::NoMonitors)?;
        if screen.failing {
            return Err(CaptureError::Failed {
                reason: format!("{} is unplugged", screen.info.name),
            });
        }
        Ok(RgbaImage::from_pixel(
            screen.info.width,
            screen.info.height,
            Rgba(screen.colour),
        ))
    }
}
