//! screenshare's engine: capture a monitor once, encode each frame once, serve it to every viewer.
//!
//! Pixels flow one way, from the capture thread ([`capture`]) through [`Frame`]s to the HTTP
//! server ([`server`]); settings flow the other way, from a [`Share`] handle to the capture thread.

pub mod admission;
pub mod audio;
pub mod capture;
mod demand;
pub mod encode;
mod error;
pub mod frame;
mod mp4;
pub mod net;
pub mod pixels;
pub mod server;
pub mod settings;
mod share;
pub mod state;
pub mod video;
pub mod viewers;

pub use capture::{CaptureError, MonitorInfo};
pub use demand::WatchGuard;
pub use encode::Format;
pub use error::Error;
pub use frame::{Frame, Mode};
pub use settings::{
    MonitorChoice, Motion, Pin, Settings, SettingsError, SettingsPatch, WindowChoice,
};
pub use share::{DEFAULT_PORT, Share, ShareOptions, sources};
pub use state::{Phase, Status, ViewerStatus};
