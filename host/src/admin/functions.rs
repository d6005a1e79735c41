//! The function API: `GET /functions[/{id}]` lists what runs,
//! `PUT /functions/{id}/component` deploys a new version (body: the
//! component's bytes; `?smoke_test=false` skips the smoke test) and
//! `POST /functions/{id}/rollback` restores the previous one. Answers are
//! JSON; errors are `{"error": "…"}`. An upload is the component's bytes
//! as sent, typed `application/wasm`, `application/octet-stream` or not at
//! all; other types are refused (415): `curl -d` sends a form and mangles
//! binary files on the way.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AdminState;
use crate::versions::{Function, Origin, SwapError, SwapOptions};

/// One function as the API shows it.
#[derive(Debug, serde::Serialize)]
struct FunctionView {
    id: String,
    world: &'static str,
    triggers: Vec<String>,
    digest: String,
    origin: Origin,
    loaded_since: String,
    previous_digest: Option<String>,
    /// Invocations by outcome (`ok`, `error`, `timeout`, `memory`, `trap`).
    invocations: BTreeMap<&'static str, u64>,
    last_error: Option<LastError>,
}

#[derive(Debug, serde::Serialize)]
struct LastError {
    at: String,
    message: String,
}

fn view(state: &AdminState, f: &Function) -> FunctionView {
    let current = f.current();
    let invocations = crate::metrics::OUTCOMES
        .into_iter()
        .map(|outcome| {
            let count = state
                .metrics
                .invocations
                .get_metric_with_label_values(&[&f.id, outcome])
                .map_or(0, |c| c.get());
            (outcome, count)
        })
        .collect();
    FunctionView {
        id: f.id.clone(),
        world: f.world.name(),
        triggers: f.triggers.clone(),
        digest: current.component.digest.clone(),
        origin: current.origin,
        loaded_since: current.since.to_rfc3339(),
        previous_digest: f.previous().map(|p| p.component.digest.clone()),
        invocations,
        last_error: f.last_error().map(|(at, message)| LastError {
            at: at.to_rfc3339(),
            message,
        }),
    }
}

pub(super) async fn list(State(state): State<AdminState>) -> Response {
    let all: Vec<FunctionView> = state.functions.iter().map(|f| view(&state, f)).collect();
    Json(all).into_response()
}

pub(super) async fn show(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    match state.functions.get(&id) {
        Some(f) => Json(view(&state, f)).into_response(),
        None => unknown(&id),
    }
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct DeployQuery {
    smoke_test: Option<bool>,
}

/// Every check that needs no body comes first, so a refused upload is
/// never read (a client that sent `expect: 100-continue` never sends it).
pub(super) async fn deploy(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Query(query): Query<DeployQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(denied) = denied(&state, &headers) {
        return denied;
    }
    let Some(function) = state.functions.get(&id) else {
        return unknown(&id);
    };
    if let Some(refused) = wrong_content_type(&headers) {
        return refused;
    }
    let max = state.config.max_upload();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return too_large(max);
    }
    // A client that stops sending mid-upload would otherwise hold the
    // request (and its memory) for as long as its connection lives.
    let timeout = state.config.upload_timeout();
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, max)).await;
    let Ok(read) = read else {
        return error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the upload did not arrive within {} s",
                timeout.as_secs_f64()
            ),
        );
    };
    let body = match read {
        Ok(body) => body,
        Err(e) if is_too_large(&e) => return too_large(max),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("reading the upload failed: {e}"),
            );
        }
    };
    let options = SwapOptions {
        smoke_test: query.smoke_test.unwrap_or(true),
    };
    match function
        .deploy(body.to_vec(), Origin::Upload, options)
        .await
    {
        Ok(swap) => Json(swap).into_response(),
        Err(e) => refused(&e),
    }
}

pub(super) async fn rollback(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = denied(&state, &headers) {
        return denied;
    }
    let Some(function) = state.functions.get(&id) else {
        return unknown(&id);
    };
    match function.rollback().await {
        Ok(swap) => Json(swap).into_response(),
        Err(e) => refused(&e),
    }
}

/// Checks `Authorization: Bearer <token>` against the configured token;
/// the refusal, if any. Compares digests, so the time taken says nothing
/// about the token.
fn denied(state: &AdminState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &state.config.token else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "deploys are disabled on this host: start it with an admin token (WEIR_ADMIN_TOKEN or --admin-token-file)".to_owned(),
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        return Some(unauthorized("missing bearer token"));
    };
    (Sha256::digest(presented.as_bytes()) != Sha256::digest(token.as_bytes()))
        .then(|| unauthorized("wrong bearer token"))
}

fn too_large(max: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("an upload may be at most {max} bytes"),
    )
}

/// Whether reading a body failed on its length limit.
fn is_too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The refusal of an upload typed as anything but a component's bytes.
fn wrong_content_type(headers: &HeaderMap) -> Option<Response> {
    let given = headers.get(header::CONTENT_TYPE)?;
    let essence = given
        .to_str()
        .ok()
        .and_then(|t| t.split(';').next())
        .map(|t| {
            t.trim()
                .chars()
                .take(100)
                .collect::<String>()
                .to_ascii_lowercase()
        });
    if matches!(
        essence.as_deref(),
        Some("application/wasm" | "application/octet-stream")
    ) {
        return None;
    }
    Some(error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "an upload is the component's bytes, typed application/wasm or \
             application/octet-stream, not {}: with curl, use --data-binary @file.wasm \
             -H 'content-type: application/wasm'",
            essence.map_or_else(|| "an unreadable type".to_owned(), |t| format!("`{t}`"))
        ),
    ))
}

fn unauthorized(why: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, format!("unauthorized: {why}"));
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

fn refused(e: &SwapError) -> Response {
    let status = match e {
        SwapError::NoPrevious { .. } => StatusCode::CONFLICT,
        SwapError::Interrupted { .. } => StatusCode::SERVICE_UNAVAILABLE,
        SwapError::Load { .. } | SwapError::Smoke { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    };
    error(status, e.describe())
}

fn unknown(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no function `{id}`"))
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
