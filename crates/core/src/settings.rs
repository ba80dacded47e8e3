//! What the presenter controls: which monitor, how often, how sharp. Every range lives here, and
//! every change (CLI flags, the control endpoint, the desktop app) is checked by [`Settings::validate`].

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Frames per second the capture loop may be asked for.
pub const FPS_RANGE: RangeInclusive<u32> = 1..=60;
/// JPEG quality, as a percentage; below 10 a screen is unreadable.
pub const QUALITY_RANGE: RangeInclusive<u32> = 10..=100;
/// Widths the frame may be scaled down to; narrower than this is a thumbnail, not a share.
pub const MAX_WIDTH_RANGE: RangeInclusive<u32> = 160..=16_384;
/// Viewers a share may admit at once.
pub const MAX_VIEWERS_RANGE: RangeInclusive<u32> = 1..=1_000;

/// The share's settings, carried to the capture loop in a watch channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Which monitor to capture; `None` is the primary one.
    pub monitor: Option<MonitorChoice>,
    /// One window to share instead of a monitor, by id or title.
    pub window: Option<WindowChoice>,
    /// Frames per second to capture while someone watches.
    pub fps: u32,
    /// JPEG quality (10 to 100) for the fast path; PNG is always lossless.
    pub quality: u32,
    /// Scale frames down to at most this width (aspect kept); `None` keeps the monitor's width.
    pub max_width: Option<u32>,
    /// Paused: viewers keep the last frame and the loop captures nothing.
    pub paused: bool,
    /// Show the presenter's pointer to viewers.
    pub show_pointer: bool,
    /// Viewers admitted at once; one more is told the share is full.
    pub max_viewers: u32,
    /// Viewers must type this to watch (4 to 12 digits); `None` lets anyone with the URL in.
    pub pin: Option<Pin>,
    /// Each new viewer waits until the presenter lets it in.
    pub require_approval: bool,
    /// When moving pictures go out as video rather than tiles.
    pub motion: Motion,
    /// Send what the presenter's desktop plays to viewers who turn sound on. Off by default:
    /// notifications and calls are private.
    pub audio: bool,
    /// Viewers' pages may keep the pictures they were shown (to look back at them) and save
    /// snapshots. Off: a page keeps nothing and hides those tools. A courtesy the page honours,
    /// not a lock: whoever sees a screen can photograph it.
    pub history: bool,
}

/// When the share sends what moves as video (one H.264 stream for every viewer) instead of
/// tiles. Text stays sharpest on tiles; a clip costs a tenth as video.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Motion {
    /// Video while most of the screen keeps changing (or the tiles would cost more than the
    /// video), tiles again after a second of calm.
    #[default]
    Auto,
    /// Never video: every pixel goes out as tiles.
    Tiles,
    /// Video whenever a sizeable part of the screen keeps changing, even a small clip.
    Video,
}

impl FromStr for Motion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(Motion::Auto),
            "tiles" => Ok(Motion::Tiles),
            "video" => Ok(Motion::Video),
            other => Err(format!(
                "motion must be `auto`, `tiles` or `video`, not {:?}",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

impl fmt::Display for Motion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Motion::Auto => "auto",
            Motion::Tiles => "tiles",
            Motion::Video => "video",
        })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            monitor: None,
            window: None,
            fps: 10,
            quality: 80,
            max_width: None,
            paused: false,
            show_pointer: true,
            max_viewers: 50,
            pin: None,
            require_approval: false,
            motion: Motion::Auto,
            audio: false,
            history: true,
        }
    }
}

impl Settings {
    /// Checks every range; the first value out of range is named in the error.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !FPS_RANGE.contains(&self.fps) {
            return Err(SettingsError::Fps(self.fps));
        }
        if !QUALITY_RANGE.contains(&self.quality) {
            return Err(SettingsError::Quality(self.quality));
        }
        if let Some(width) = self.max_width
            && !MAX_WIDTH_RANGE.contains(&width)
        {
            return Err(SettingsError::MaxWidth(width));
        }
        if !MAX_VIEWERS_RANGE.contains(&self.max_viewers) {
            return Err(SettingsError::MaxViewers(self.max_viewers));
        }
        if let Some(pin) = &self.pin {
            pin.validate()?;
        }
        if let Some(WindowChoice::Title(title)) = &self.window
            && title.trim().is_empty()
        {
            return Err(SettingsError::EmptyWindowTitle);
        }
        if let Some(MonitorChoice::Name(name)) = &self.monitor
            && name.trim().is_empty()
        {
            return Err(SettingsError::EmptyMonitorName);
        }
        Ok(())
    }

    /// These settings with `patch` applied, validated as a whole.
    pub fn patched(&self, patch: &SettingsPatch) -> Result<Settings, SettingsError> {
        let mut next = self.clone();
        if let Some(monitor) = &patch.monitor {
            next.monitor = monitor.clone();
            // Picking a monitor means sharing it, not the window shared before.
            if patch.window.is_none() {
                next.window = None;
            }
        }
        if let Some(window) = &patch.window {
            next.window = window.clone();
        }
        if let Some(fps) = patch.fps {
            next.fps = fps;
        }
        if let Some(quality) = patch.quality {
            next.quality = quality;
        }
        if let Some(max_width) = patch.max_width {
            next.max_width = max_width;
        }
        if let Some(paused) = patch.paused {
            next.paused = paused;
        }
        if let Some(show_pointer) = patch.show_pointer {
            next.show_pointer = show_pointer;
        }
        if let Some(max_viewers) = patch.max_viewers {
            next.max_viewers = max_viewers;
        }
        if let Some(pin) = &patch.pin {
            next.pin = pin.clone();
        }
        if let Some(require_approval) = patch.require_approval {
            next.require_approval = require_approval;
        }
        if let Some(motion) = patch.motion {
            next.motion = motion;
        }
        if let Some(audio) = patch.audio {
            next.audio = audio;
        }
        if let Some(history) = patch.history {
            next.history = history;
        }
        next.validate()?;
        Ok(next)
    }

    /// Time between two frames at this frame rate.
    pub fn frame_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1) / self.fps.clamp(*FPS_RANGE.start(), *FPS_RANGE.end())
    }
}

/// A change to some settings; absent fields stay as they are. For `monitor` and `max_width`,
/// an explicit `null` goes back to the default (primary monitor, full width).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub monitor: Option<Option<MonitorChoice>>,
    /// A window to share instead of the monitor, or `null` to go back to the monitor.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<Option<WindowChoice>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u32>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_width: Option<Option<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_pointer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_viewers: Option<u32>,
    /// A new PIN, or `null` for none.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub pin: Option<Option<Pin>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_approval: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion: Option<Motion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<bool>,
}

impl SettingsPatch {
    /// Whether applying this patch needs the monitor list (to check a new monitor exists).
    pub fn changes_monitor(&self) -> bool {
        self.monitor.is_some()
    }

    /// The window this patch asks to share, if it names one (to check it exists).
    pub fn new_window(&self) -> Option<&WindowChoice> {
        self.window.as_ref().and_then(Option::as_ref)
    }
}

/// Tells a field given as `null` (Some(None)) from a field left out (None, via `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Digits a viewer must type to watch. Shown to the presenter, never written to a log: its
/// `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pin(String);

/// Lengths a PIN may have: six digits at least (with the share's limit on wrong tries, about a
/// year of guessing on average), twelve at most.
pub const PIN_LENGTH: RangeInclusive<usize> = 6..=12;

impl Pin {
    pub fn new(digits: &str) -> Result<Self, SettingsError> {
        let pin = Self(digits.to_owned());
        pin.validate()?;
        Ok(pin)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if PIN_LENGTH.contains(&self.0.len()) && self.0.bytes().all(|b| b.is_ascii_digit()) {
            Ok(())
        } else {
            Err(SettingsError::Pin)
        }
    }

    /// Whether `attempt` is this PIN, compared in constant time.
    pub fn matches(&self, attempt: &str) -> bool {
        use subtle::ConstantTimeEq;
        attempt.len() == self.0.len() && bool::from(attempt.as_bytes().ct_eq(self.0.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(hidden)")
    }
}

impl FromStr for Pin {
    type Err = SettingsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text.trim())
    }
}

/// A window, by its id in `screenshare list --windows` (decimal or `0x…`) or by its title (the
/// whole title, or a part of it that only one window has).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum WindowChoice {
    Id(u32),
    Title(String),
}

/// A number is an id; a string is read as the CLI reads it (`"0x1c00001"` is an id too).
impl<'de> Deserialize<'de> for WindowChoice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Id(u32),
            Text(String),
        }
        Ok(match Given::deserialize(deserializer)? {
            Given::Id(id) => WindowChoice::Id(id),
            Given::Text(text) => match text.parse() {
                Ok(choice) => choice,
                Err(never) => match never {},
            },
        })
    }
}

impl FromStr for WindowChoice {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let id = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => text.parse().ok(),
        };
        Ok(id.map_or_else(|| WindowChoice::Title(text.to_owned()), WindowChoice::Id))
    }
}

impl fmt::Display for WindowChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowChoice::Id(id) => write!(f, "0x{id:x}"),
            WindowChoice::Title(title) => write!(f, "\"{title}\""),
        }
    }
}

/// A monitor, by its index in `screenshare list` or by its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MonitorChoice {
    Index(usize),
    Name(String),
}

impl FromStr for MonitorChoice {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.trim().parse::<usize>() {
            Ok(index) => MonitorChoice::Index(index),
            Err(_) => MonitorChoice::Name(text.trim().to_owned()),
        })
    }
}

impl fmt::Display for MonitorChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonitorChoice::Index(index) => write!(f, "#{index}"),
            MonitorChoice::Name(name) => write!(f, "\"{name}\""),
        }
    }
}

/// A setting out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("frame rate must be from {min} to {max} fps, not {0}", min = FPS_RANGE.start(), max = FPS_RANGE.end())]
    Fps(u32),
    #[error("quality must be from {min} to {max}, not {0}", min = QUALITY_RANGE.start(), max = QUALITY_RANGE.end())]
    Quality(u32),
    #[error(
        "max width must be from {min} to {max} pixels, not {0}",
        min = MAX_WIDTH_RANGE.start(),
        max = MAX_WIDTH_RANGE.end()
    )]
    MaxWidth(u32),
    #[error(
        "viewer limit must be from {min} to {max}, not {0}",
        min = MAX_VIEWERS_RANGE.start(),
        max = MAX_VIEWERS_RANGE.end()
    )]
    MaxViewers(u32),
    #[error(
        "PIN must be {min} to {max} digits",
        min = PIN_LENGTH.start(),
        max = PIN_LENGTH.end()
    )]
    Pin,
    #[error("window title must not be empty")]
    EmptyWindowTitle,
    #[error("monitor name must not be empty")]
    EmptyMonitorName,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_chosen_the_same_way_from_json_and_the_command_line() {
        let parse = |json: &str| serde_json::from_str::<WindowChoice>(json).expect("choice");
        assert_eq!(parse("29360129"), WindowChoice::Id(29_360_129));
        assert_eq!(parse(r#""0x1c00001""#), WindowChoice::Id(0x1c0_0001));
        assert_eq!(parse(r#""123""#), WindowChoice::Id(123));
        assert_eq!(
            parse(r#""Slides""#),
            WindowChoice::Title("Slides".to_owned())
        );
        assert_eq!("0x1c00001".parse(), Ok(WindowChoice::Id(0x1c0_0001)));
    }

    #[test]
    fn pins_are_digits_and_never_shown_in_debug() {
        assert!(Pin::new("123456").is_ok());
        assert!(Pin::new("123456789012").is_ok());
        for bad in [
            "1234",
            "12345",
            "1234567890123",
            "12a456",
            "",
            "１２３４５６",
        ] {
            assert_eq!(Pin::new(bad).err(), Some(SettingsError::Pin), "{bad:?}");
        }
        let pin = Pin::new("987654").expect("pin");
        assert!(pin.matches("987654"));
        assert!(!pin.matches("987655") && !pin.matches("9876543") && !pin.matches(""));
        let settings = Settings {
            pin: Some(pin.clone()),
            ..Settings::default()
        };
        assert!(!format!("{settings:?}").contains("987654"));
        let patch: SettingsPatch = serde_json::from_str(r#"{"pin":"987654"}"#).expect("patch");
        assert!(!format!("{patch:?}").contains("987654"));
        assert_eq!(
            Settings::default().patched(&patch).map(|s| s.pin),
            Ok(Some(pin))
        );
        let bad: SettingsPatch = serde_json::from_str(r#"{"pin":"12"}"#).expect("patch");
        assert_eq!(Settings::default().patched(&bad), Err(SettingsError::Pin));
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Settings::default().validate(), Ok(()));
    }

    #[test]
    fn fps_out_of_range_is_named() {
        for fps in [0, 61, u32::MAX] {
            let settings = Settings {
                fps,
                ..Settings::default()
            };
            assert_eq!(settings.validate(), Err(SettingsError::Fps(fps)));
        }
        for fps in [1, 30, 60] {
            let settings = Settings {
                fps,
                ..Settings::default()
            };
            assert_eq!(settings.validate(), Ok(()));
        }
    }

    #[test]
    fn quality_out_of_range_is_named() {
        let error = Settings {
            quality: 101,
            ..Settings::default()
        }
        .validate()
        .expect_err("101 is out of range");
        assert_eq!(error, SettingsError::Quality(101));
        assert_eq!(error.to_string(), "quality must be from 10 to 100, not 101");
        assert!(
            Settings {
                quality: 9,
                ..Settings::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn max_width_is_bounded_or_absent() {
        let mut settings = Settings {
            max_width: Some(100),
            ..Settings::default()
        };
        assert_eq!(settings.validate(), Err(SettingsError::MaxWidth(100)));
        settings.max_width = Some(1280);
        assert_eq!(settings.validate(), Ok(()));
        settings.max_width = None;
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn patch_changes_only_named_fields() {
        let base = Settings {
            max_width: Some(1280),
            monitor: Some(MonitorChoice::Index(1)),
            ..Settings::default()
        };
        let patch: SettingsPatch =
            serde_json::from_str(r#"{"fps": 30}"#).expect("valid patch JSON");
        let next = base.patched(&patch).expect("valid patch");
        assert_eq!(next.fps, 30);
        assert_eq!(next.max_width, Some(1280));
        assert_eq!(next.monitor, Some(MonitorChoice::Index(1)));
    }

    #[test]
    fn patch_null_resets_to_default() {
        let base = Settings {
            max_width: Some(1280),
            monitor: Some(MonitorChoice::Name("HDMI-1".into())),
            ..Settings::default()
        };
        let patch: SettingsPatch = serde_json::from_str(r#"{"max_width": null, "monitor": null}"#)
            .expect("valid patch JSON");
        let next = base.patched(&patch).expect("valid patch");
        assert_eq!(next.max_width, None);
        assert_eq!(next.monitor, None);
    }

    #[test]
    fn invalid_patch_leaves_settings_alone() {
        let base = Settings::default();
        let patch = SettingsPatch {
            quality: Some(0),
            ..SettingsPatch::default()
        };
        assert_eq!(base.patched(&patch), Err(SettingsError::Quality(0)));
        assert_eq!(base, Settings::default());
    }

    #[test]
    fn unknown_patch_field_is_rejected() {
        let error = serde_json::from_str::<SettingsPatch>(r#"{"fsp": 3}"#)
            .expect_err("typo must not pass silently");
        assert!(error.to_string().contains("fsp"), "{error}");
    }

    #[test]
    fn monitor_choice_parses_index_or_name() {
        assert_eq!("2".parse(), Ok(MonitorChoice::Index(2)));
        assert_eq!("DP-1".parse(), Ok(MonitorChoice::Name("DP-1".to_owned())));
        let from_json: MonitorChoice = serde_json::from_str("1").expect("index");
        assert_eq!(from_json, MonitorChoice::Index(1));
        let from_json: MonitorChoice = serde_json::from_str(r#""screen""#).expect("name");
        assert_eq!(from_json, MonitorChoice::Name("screen".into()));
    }

    #[test]
    fn frame_interval_follows_fps() {
        let settings = Settings {
            fps: 20,
            ..Settings::default()
        };
        assert_eq!(
            settings.frame_interval(),
            std::time::Duration::from_millis(50)
        );
    }
}
