//! The presenter's settings, kept between launches as JSON in the platform's config folder.

use std::path::PathBuf;

use screenshare_core::Settings;

#[derive(Debug, Clone)]
pub struct SettingsStore {
    path: Option<PathBuf>,
}

impl SettingsStore {
    pub fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    /// A store that keeps nothing (no config folder on this system).
    pub fn disabled() -> Self {
        Self { path: None }
    }

    /// The saved settings, or the defaults when there are none or they no longer validate.
    pub fn load(&self) -> Settings {
        let Some(path) = &self.path else {
            return Settings::default();
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Settings::default();
            }
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "cannot read saved settings");
                return Settings::default();
            }
        };
        match serde_json::from_str::<Settings>(&text) {
            Ok(settings) if settings.validate().is_ok() => Settings {
                // A share always starts unpaused.
                paused: false,
                ..settings
            },
            Ok(_) | Err(_) => {
                tracing::warn!(path = %path.display(), "saved settings are invalid; using defaults");
                Settings::default()
            }
        }
    }

    /// Saves `settings`; a failure is logged, never fatal (sharing matters more than remembering).
    pub fn save(&self, settings: &Settings) {
        let Some(path) = &self.path else {
            return;
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let json = serde_json::to_string_pretty(settings).map_err(std::io::Error::other)?;
            // Write then rename, so a crash never leaves half a file.
            let partial = path.with_extension("json.partial");
            std::fs::write(&partial, json)?;
            std::fs::rename(&partial, path)
        };
        if let Err(error) = write() {
            tracing::warn!(%error, path = %path.display(), "cannot save settings");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("screenshare-store-{}-{name}", std::process::id()))
            .join("settings.json")
    }

    #[test]
    fn saved_settings_come_back() {
        let store = SettingsStore::new(temp_path("round-trip"));
        let settings = Settings {
            fps: 24,
            quality: 55,
            max_width: Some(1280),
            ..Settings::default()
        };
        store.save(&settings);
        assert_eq!(store.load(), settings);
    }

    #[test]
    fn missing_or_broken_file_gives_defaults() {
        let path = temp_path("broken");
        let store = SettingsStore::new(path.clone());
        assert_eq!(store.load(), Settings::default());
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(&path, r#"{"fps": 0}"#).expect("write");
        assert_eq!(
            store.load(),
            Settings::default(),
            "out-of-range values are not trusted"
        );
        std::fs::write(&path, "not json").expect("write");
        assert_eq!(store.load(), Settings::default());
    }

    #[test]
    fn a_share_never_starts_paused() {
        let store = SettingsStore::new(temp_path("paused"));
        store.save(&Settings {
            paused: true,
            ..Settings::default()
        });
        assert!(!store.load().paused);
    }
}
