//! The presenter's routes, behind the control secret: read and change settings, see who watches.

use axum::Json;
use std::collections::HashMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};

use super::AppState;
use super::error::ServerError;
use crate::capture::MonitorInfo;
use crate::settings::{Settings, SettingsPatch};
use crate::state::{ShareState, Status};
use crate::viewers::ViewerInfo;

pub async fn settings(State(state): State<AppState>) -> Json<Settings> {
    Json(state.share.settings())
}

/// `PATCH` with a JSON object of the fields to change; answers with the settings now in force.
pub async fn update_settings(
    State(state): State<AppState>,
    patch: Result<Json<SettingsPatch>, JsonRejection>,
) -> Result<Json<Settings>, ServerError> {
    // axum's own statuses: 415 without a JSON content type, 413 past the body limit, 400 for
    // malformed JSON, 422 for well-formed JSON that is not a settings change.
    let Json(patch) = patch.map_err(|rejection| ServerError::Rejected {
        status: rejection.status(),
        message: rejection.body_text(),
    })?;
    let settings = state.share.update_settings(&patch).await?;
    tracing::info!(?patch, "settings changed");
    Ok(Json(settings))
}

pub async fn status(State(state): State<AppState>) -> Json<Status> {
    Json(state.share.status())
}

pub async fn viewers(State(state): State<AppState>) -> Json<Vec<ViewerInfo>> {
    Json(state.share.viewer_list())
}

/// `POST viewers/{id}/admit`: lets a waiting viewer in.
pub async fn admit(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<Vec<ViewerInfo>>, ServerError> {
    act_on_viewer(&state, &params, ShareState::admit, "a viewer was let in")
}

/// `POST viewers/{id}/remove`: ends a viewer's access (and its address's) until the share ends.
pub async fn remove(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<Vec<ViewerInfo>>, ServerError> {
    act_on_viewer(&state, &params, ShareState::remove, "a viewer was removed")
}

/// Applies `action` to the viewer the path names; answers with the list as it is now.
fn act_on_viewer(
    state: &AppState,
    params: &HashMap<String, String>,
    action: fn(&ShareState, &str) -> bool,
    done: &str,
) -> Result<Json<Vec<ViewerInfo>>, ServerError> {
    let id = params.get("id").map_or("", String::as_str);
    if !action(&state.share, id) {
        return Err(ServerError::NotFound);
    }
    tracing::info!("{done}");
    Ok(Json(state.share.viewer_list()))
}

pub async fn monitors(
    State(state): State<AppState>,
) -> Result<Json<Vec<MonitorInfo>>, ServerError> {
    let screens = state.share.screens.clone();
    let monitors = crate::capture::ask_display(move || screens.list()).await?;
    Ok(Json(monitors))
}
