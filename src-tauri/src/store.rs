//! The presenter's settings, kept between launches as JSON in the platform's config folder.

use std::path::{Path, PathBuf};

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

    /// The saved settings, or the defaults when there are none. A file that cannot be used (not
    /// JSON, out of range, absurdly large, not a file) is moved aside, never overwritten, and the
    /// notice says where it went.
    pub fn load(&self) -> Loaded {
        let Some(path) = &self.path else {
            return Loaded::defaults(None);
        };
        let problem = match read_small(path) {
            Ok(None) => return Loaded::defaults(None),
            Ok(Some(text)) => match serde_json::from_str::<Settings>(&text) {
                Ok(settings) => match settings.validate() {
                    Ok(()) => {
                        return Loaded {
                            // A share always starts unpaused, and silent: sound is turned on
                            // for a share, never left on from an earlier one (a notification
                            // or a call would go out unannounced).
                            settings: Settings {
                                paused: false,
                                audio: false,
                                ..settings
                            },
                            notice: None,
                        };
                    }
                    Err(error) => error.to_string(),
                },
                Err(error) => format!("not valid settings ({error})"),
            },
            Err(error) => error.to_string(),
        };
        tracing::warn!(path = %path.display(), %problem, "saved settings unusable; using defaults");
        let kept = unused_name(path, "unusable");
        let notice = match std::fs::rename(path, &kept) {
            Ok(()) => format!(
                "Your saved settings could not be used ({problem}), so the defaults are in use. \
                 The old file is kept as {}.",
                kept.display()
            ),
            Err(error) => format!(
                "Your saved settings could not be used ({problem}) nor moved aside ({error}); \
                 the defaults are in use and changes will not be remembered."
            ),
        };
        Loaded::defaults(Some(notice))
    }

    /// Saves `settings`; a failure is logged, never fatal (sharing matters more than remembering).
    pub fn save(&self, settings: &Settings) {
        let Some(path) = &self.path else {
            return;
        };
        if let Err(error) = write_atomically(path, settings) {
            tracing::warn!(%error, path = %path.display(), "cannot save settings");
        }
    }
}

/// What [`SettingsStore::load`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub settings: Settings,
    /// Something the presenter should be told (the saved file was unusable).
    pub notice: Option<String>,
}

impl Loaded {
    fn defaults(notice: Option<String>) -> Self {
        Self {
            settings: Settings::default(),
            notice,
        }
    }
}

/// Settings are a few hundred bytes: a file much larger is not ours to read into memory.
const MAX_SETTINGS_BYTES: u64 = 64 * 1024;

/// The file's text; `None` when there is no file.
fn read_small(path: &Path) -> std::io::Result<Option<String>> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    if !metadata.is_file() {
        return Err(std::io::Error::other("it is not a file"));
    }
    if metadata.len() > MAX_SETTINGS_BYTES {
        return Err(std::io::Error::other(format!(
            "it is {} bytes, far too large",
            metadata.len()
        )));
    }
    std::fs::read_to_string(path).map(Some)
}

/// Write, flush to disk, rename over the old file, flush the folder: after a crash or power cut
/// the file is either the old settings or the new ones, never half of either.
fn write_atomically(path: &Path, settings: &Settings) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(settings).map_err(std::io::Error::other)?;
    // A name of this process's own: two instances saving at once never write into one file.
    let partial = unused_name(path, "partial");
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(&json)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, path)?;
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// `settings.json.<what>-<time>-<pid>[-n]`, a name nothing has yet.
fn unused_name(path: &Path, what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let base = format!("json.{what}-{nanos}-{}", std::process::id());
    (0..)
        .map(|n| {
            path.with_extension(if n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            })
        })
        .find(|candidate| !candidate.exists())
        .unwrap_or_else(|| path.with_extension(base))
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
        assert_eq!(
            store.load(),
            Loaded {
                settings,
                notice: None
            }
        );
        assert!(
            !temp_path("round-trip")
                .with_extension("json.partial")
                .exists(),
            "nothing half-written is left behind"
        );
    }

    #[test]
    fn no_file_gives_defaults_quietly() {
        let store = SettingsStore::new(temp_path("missing"));
        assert_eq!(store.load(), Loaded::defaults(None));
    }

    #[test]
    fn an_unusable_file_is_kept_aside_and_the_presenter_told() {
        type MakeFile = dyn Fn(&Path);
        let cases: [(&str, &MakeFile); 5] = [
            ("empty", &|path| std::fs::write(path, "").expect("write")),
            ("truncated", &|path| {
                std::fs::write(path, r#"{"fps": 12, "qual"#).expect("write")
            }),
            ("out-of-range", &|path| {
                std::fs::write(path, r#"{"fps": 0}"#).expect("write")
            }),
            ("huge", &|path| {
                let file = std::fs::File::create(path).expect("create");
                file.set_len(100 * 1024 * 1024)
                    .expect("a sparse 100 MB file");
            }),
            ("directory", &|path| {
                std::fs::create_dir_all(path).expect("dir")
            }),
        ];
        for (name, make) in cases {
            let path = temp_path(name);
            let dir = path.parent().expect("parent").to_owned();
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("dir");
            make(&path);
            let store = SettingsStore::new(path.clone());
            let loaded = store.load();
            assert_eq!(loaded.settings, Settings::default(), "{name}");
            let notice = loaded.notice.unwrap_or_default();
            assert!(notice.contains("kept as"), "{name}: {notice}");
            let kept: Vec<_> = std::fs::read_dir(&dir)
                .expect("list")
                .filter_map(Result::ok)
                .filter(|entry| entry.file_name().to_string_lossy().contains("unusable"))
                .collect();
            assert_eq!(kept.len(), 1, "{name}: the old file is kept");
            // The next save works and the next start is quiet again.
            store.save(&Settings {
                fps: 7,
                ..Settings::default()
            });
            let again = store.load();
            assert_eq!((again.settings.fps, again.notice), (7, None), "{name}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn a_share_never_starts_paused_nor_with_sound() {
        let store = SettingsStore::new(temp_path("paused"));
        store.save(&Settings {
            paused: true,
            audio: true,
            ..Settings::default()
        });
        let loaded = store.load().settings;
        assert!(!loaded.paused);
        assert!(!loaded.audio);
    }
}
