//! The presenter's desktop app: a thin Tauri shell over `screenshare_core::Share`.
//! Commands (commands.rs) call the [`Presenter`] (presenter.rs); a ticker (status.rs) pushes the
//! share's state to the window once a second.

mod commands;
mod error;
mod presenter;
mod status;
mod store;

use tauri::{Manager, WindowEvent};
use tracing_subscriber::EnvFilter;

pub use error::CommandError;
pub use presenter::{Presenter, ShareInfo};
pub use store::SettingsStore;

/// Starts the app; returns when its window is closed.
pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                EnvFilter::new("screenshare_desktop=info,screenshare_core=info")
            }),
        )
        .with_writer(std::io::stderr)
        .init();

    let result = tauri::Builder::default()
        .setup(|app| {
            let store = match app.path().app_config_dir() {
                Ok(dir) => SettingsStore::new(dir.join("settings.json")),
                Err(error) => {
                    tracing::warn!(%error, "no config folder; settings will not be kept");
                    SettingsStore::disabled()
                }
            };
            app.manage(Presenter::new(
                store,
                presenter::bind_address(),
                screenshare_core::capture::system_screens(),
            ));
            tauri::async_runtime::spawn(status::push_status(app.handle().clone()));
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::list_monitors,
            commands::monitor_thumbnail,
            commands::load_settings,
            commands::start_share,
            commands::stop_share,
            commands::update_settings,
            commands::preview,
            commands::admit_viewer,
            commands::remove_viewer,
            commands::list_windows,
            commands::window_thumbnail,
            commands::desktop_picks,
            commands::pick_again,
        ])
        .on_window_event(|window, event| {
            if let WindowEvent::CloseRequested { .. } = event {
                // Stop cleanly before the window goes: viewers' connections close, capture ends.
                let presenter = window.state::<Presenter>();
                tauri::async_runtime::block_on(presenter.stop());
            }
        })
        .run(tauri::generate_context!());
    if let Err(error) = result {
        tracing::error!(%error, "the window could not run");
        eprintln!("screenshare: {error}");
        std::process::exit(1);
    }
}
