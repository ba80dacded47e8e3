//! A test pattern standing in for monitors, for unit tests and the router tests that need no X server.
//! The real thing is tested against Xvfb; this one lets a test paint, fail and restore a "screen" at will.

use std::sync::{Arc, Mutex, PoisonError};

use super::{
    CaptureError, Damage, Grab, MonitorInfo, PointerShape, PointerState, Screens, Source, resolve,
};
use crate::pixels::{Picture, Rect};
use crate::settings::MonitorChoice;

/// One or more solid-colour screens whose colour, size and health a test controls.
#[derive(Debug, Clone)]
pub struct SyntheticScreens {
    screens: Arc<Mutex<Vec<Painted>>>,
}

#[derive(Debug, Clone)]
struct Painted {
    info: MonitorInfo,
    picture: Picture,
    pointer: Option<PointerState>,
    failing: bool,
    /// Grabs panic, as a buggy source would.
    panicking: bool,
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
                picture: Picture::new(width, height),
                pointer: None,
                failing: false,
                panicking: false,
            })
            .collect();
        Self {
            screens: Arc::new(Mutex::new(screens)),
        }
    }

    /// Paints screen `index` in one colour.
    pub fn paint(&self, index: usize, rgb: [u8; 3]) {
        self.with(index, |screen| {
            screen.picture = Picture::filled(screen.info.width, screen.info.height, rgb);
        });
    }

    /// Paints one rectangle of screen `index`.
    pub fn paint_rect(&self, index: usize, rect: Rect, rgb: [u8; 3]) {
        self.with(index, |screen| {
            screen.picture.paste(
                &Picture::filled(rect.width, rect.height, rgb),
                rect.x,
                rect.y,
            );
        });
    }

    /// Paints `picture` over screen `index`, from its top left corner (a photo, a frame of a clip).
    pub fn paint_picture(&self, index: usize, picture: &Picture) {
        self.with(index, |screen| screen.picture.paste(picture, 0, 0));
    }

    /// Puts a 2x2 white pointer (hotspot at its corner) at (`x`, `y`) of screen `index`, or none.
    pub fn set_pointer(&self, index: usize, at: Option<(i32, i32)>) {
        let shape = std::sync::Arc::new(PointerShape {
            serial: 1,
            width: 2,
            height: 2,
            hot_x: 0,
            hot_y: 0,
            rgba: [255u8; 16].to_vec(),
        });
        self.with(index, |screen| {
            screen.pointer = at.map(|(x, y)| PointerState {
                x,
                y,
                visible: true,
                shape,
            });
        });
    }

    /// Makes every grab of screen `index` fail (unplugged), or work again.
    pub fn set_failing(&self, index: usize, failing: bool) {
        self.with(index, |screen| screen.failing = failing);
    }

    /// Makes every grab of screen `index` panic (a bug in a source), or work again.
    pub fn set_panicking(&self, index: usize, panicking: bool) {
        self.with(index, |screen| screen.panicking = panicking);
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
            picture: Picture::new(0, 0),
        }))
    }
}

struct SyntheticSource {
    screens: SyntheticScreens,
    info: MonitorInfo,
    picture: Picture,
}

impl Source for SyntheticSource {
    fn info(&self) -> &MonitorInfo {
        &self.info
    }

    fn grab(&mut self) -> Result<Grab<'_>, CaptureError> {
        let screen = self
            .screens
            .snapshot(self.info.index)
            .ok_or(CaptureError::NoMonitors)?;
        assert!(
            !screen.panicking,
            "{} made its grab panic",
            screen.info.name
        );
        if screen.failing {
            return Err(CaptureError::Failed {
                reason: format!("{} is unplugged", screen.info.name),
            });
        }
        self.picture = screen.picture;
        Ok(Grab {
            picture: &self.picture,
            damage: Damage::Unknown,
            pointer: screen.pointer,
        })
    }

    fn method(&self) -> &'static str {
        "synthetic"
    }
}
