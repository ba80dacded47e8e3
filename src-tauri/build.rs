//! Tauri's build step, with a permission generated per command so the window's capability can
//! name exactly the commands it uses.

const COMMANDS: &[&str] = &[
    "list_monitors",
    "monitor_thumbnail",
    "load_settings",
    "start_share",
    "stop_share",
    "update_settings",
    "preview",
    "admit_viewer",
    "remove_viewer",
    "list_windows",
    "window_thumbnail",
    "desktop_picks",
    "pick_again",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .unwrap_or_else(|error| panic!("tauri build step failed: {error:#}"));
}
