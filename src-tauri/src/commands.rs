//! The window's commands: each a few lines calling the [`Presenter`] or the engine.

use base64::Engine;
use screenshare_core::capture::{MonitorInfo, WindowInfo, ask_display};
use screenshare_core::{MonitorChoice, Settings, SettingsPatch, WindowChoice};
use tauri::State;

use crate::error::CommandError;
use crate::presenter::{Presenter, ShareInfo};

/// Width of a source card's thumbnail.
const THUMBNAIL_WIDTH: u32 = 320;

#[tauri::command]
pub async fn list_monitors(
    presenter: State<'_, Presenter>,
) -> Result<Vec<MonitorInfo>, CommandError> {
    let screens = presenter.screens();
    Ok(ask_display(move || screens.list()).await?)
}

#[tauri::command]
pub async fn monitor_thumbnail(
    presenter: State<'_, Presenter>,
    index: usize,
) -> Result<String, CommandError> {
    let screens = presenter.screens();
    let jpeg =
        blocking(move || screens.thumbnail(Some(&MonitorChoice::Index(index)), THUMBNAIL_WIDTH))
            .await??;
    Ok(jpeg_data_url(&jpeg))
}

#[tauri::command]
pub async fn list_windows(
    presenter: State<'_, Presenter>,
) -> Result<Vec<WindowInfo>, CommandError> {
    let screens = presenter.screens();
    let windows = ask_display(move || screens.windows()).await?;
    // The presenter's own window is not something to share.
    let own = std::process::id();
    Ok(windows
        .into_iter()
        .filter(|window| window.pid != Some(own))
        .collect())
}

#[tauri::command]
pub async fn window_thumbnail(
    presenter: State<'_, Presenter>,
    id: u32,
) -> Result<String, CommandError> {
    let screens = presenter.screens();
    let jpeg = blocking(move || screens.window_thumbnail(&WindowChoice::Id(id), THUMBNAIL_WIDTH))
        .await??;
    Ok(jpeg_data_url(&jpeg))
}

/// Whether the desktop's own dialog picks what to share (Wayland): the window then shows that
/// pick and "Choose again" instead of monitors and windows to choose from.
#[tauri::command]
pub fn desktop_picks(presenter: State<'_, Presenter>) -> bool {
    presenter.screens().picked_on_desktop()
}

/// Forgets the desktop's remembered pick: the next share asks again, and a share running now
/// asks at once.
#[tauri::command]
pub async fn pick_again(presenter: State<'_, Presenter>) -> Result<(), CommandError> {
    presenter.pick_again().await;
    Ok(())
}

/// The settings to start from, and why they are the defaults when the saved ones were unusable.
#[derive(Debug, serde::Serialize)]
pub struct StartingSettings {
    #[serde(flatten)]
    settings: Settings,
    notice: Option<String>,
}

#[tauri::command]
pub fn load_settings(presenter: State<'_, Presenter>) -> StartingSettings {
    StartingSettings {
        settings: presenter.settings(),
        notice: presenter.load_notice().map(str::to_owned),
    }
}

#[tauri::command]
pub async fn start_share(
    presenter: State<'_, Presenter>,
    settings: Settings,
) -> Result<ShareInfo, CommandError> {
    presenter.start(settings).await
}

#[tauri::command]
pub async fn stop_share(presenter: State<'_, Presenter>) -> Result<(), CommandError> {
    presenter.stop().await;
    Ok(())
}

#[tauri::command]
pub async fn update_settings(
    presenter: State<'_, Presenter>,
    patch: SettingsPatch,
) -> Result<Settings, CommandError> {
    presenter.update(patch).await
}

#[tauri::command]
pub async fn admit_viewer(presenter: State<'_, Presenter>, id: String) -> Result<(), CommandError> {
    presenter.admit(&id).await
}

#[tauri::command]
pub async fn remove_viewer(
    presenter: State<'_, Presenter>,
    id: String,
) -> Result<(), CommandError> {
    presenter.remove(&id).await
}

#[tauri::command]
pub async fn preview(presenter: State<'_, Presenter>) -> Result<Option<String>, CommandError> {
    Ok(presenter.preview().await?.as_deref().map(jpeg_data_url))
}

fn jpeg_data_url(jpeg: &[u8]) -> String {
    format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jpeg)
    )
}

/// Runs blocking engine work (xcap) off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CommandError> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|error| CommandError::Internal(error.to_string()))
}
