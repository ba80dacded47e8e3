//! The portal's restore token, kept so that the desktop asks the presenter to pick a screen once,
//! not at every share: `$XDG_STATE_HOME/screenshare/wayland-restore-token` (else
//! `~/.local/state/…`), readable by its owner only.
//!
//! Tokens are single-use: every `Start` hands out a new one, written here at once; a restore the
//! portal refused leaves no token behind (the next share shows the picker, as it must).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Longer than any token a portal hands out (GNOME's are UUIDs): anything bigger is not ours.
const MAX_TOKEN_LEN: usize = 512;

/// Where the restore token lives; `None` when neither a state folder nor a home is known (no
/// token is kept then: every share shows the desktop's dialog).
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: Option<PathBuf>,
}

impl TokenStore {
    /// The user's state folder, as the XDG base directory spec names it.
    pub fn for_user() -> Self {
        let state_home = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|path| path.is_absolute())
                    .map(|home| home.join(".local/state"))
            });
        Self {
            path: state_home.map(|dir| dir.join("screenshare").join("wayland-restore-token")),
        }
    }

    /// A store at `path` (tests).
    pub fn at(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The saved token, if there is a usable one. A file that is not one is ignored: the worst
    /// outcome is the picker once more.
    pub fn load(&self) -> Option<String> {
        let path = self.path.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        let token = text.trim();
        let usable = !token.is_empty()
            && token.len() <= MAX_TOKEN_LEN
            && token.chars().all(|c| c.is_ascii_graphic());
        usable.then(|| token.to_owned())
    }

    /// Keeps `token` for the next share. A failure is logged, never fatal: sharing matters more
    /// than remembering the choice.
    pub fn save(&self, token: &str) {
        let Some(path) = &self.path else {
            return;
        };
        if let Err(error) = write_private(path, token) {
            tracing::warn!(%error, path = %path.display(), "cannot keep the portal's restore token");
        }
    }

    /// Drops the saved token: the next share shows the desktop's picker.
    pub fn forget(&self) {
        let Some(path) = &self.path else {
            return;
        };
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "cannot drop the portal's restore token");
            }
        }
    }
}

/// Written whole under a temporary name with mode 0600 from the start (never readable by others,
/// not even for a moment), then renamed over the old one.
fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let partial = dir.join(format!(
        ".wayland-restore-token.{}.partial",
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn temp_store() -> (TokenStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "screenshare-token-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("screenshare").join("wayland-restore-token");
        (TokenStore::at(path.clone()), dir)
    }

    #[test]
    fn a_saved_token_comes_back_and_only_its_owner_can_read_it() {
        let (store, dir) = temp_store();
        assert_eq!(store.load(), None);
        store.save("5b0b7f6e-2a1d-4c59-9a62-0c1d2e3f4a5b");
        assert_eq!(
            store.load().as_deref(),
            Some("5b0b7f6e-2a1d-4c59-9a62-0c1d2e3f4a5b")
        );
        let mode = std::fs::metadata(store.path().expect("a path"))
            .expect("the file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        store.save("second");
        assert_eq!(store.load().as_deref(), Some("second"));
        store.forget();
        assert_eq!(store.load(), None);
        store.forget();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_that_is_not_a_token_is_ignored() {
        let (store, dir) = temp_store();
        let path = store.path().expect("a path").to_owned();
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("folder");
        for junk in [
            "",
            "   \n",
            "two words",
            &"x".repeat(MAX_TOKEN_LEN + 1),
            "\u{1b}[2J",
        ] {
            std::fs::write(&path, junk).expect("write");
            assert_eq!(store.load(), None, "{junk:?}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
