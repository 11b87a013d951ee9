//! Qdrant's snapshot calls over REST: per collection (`/collections/{c}/snapshots…`:
//! create, list, download, delete, recover from a file, upload and recover) and of the
//! whole database (`/snapshots…`: create, list, download, delete).
//!
//! `wait` defaults to true, as in Qdrant; `wait=false` answers 202 `accepted` at once
//! and the work goes on in the background (a failure is logged).

use std::path::PathBuf;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::admin;
use crate::error::ApiError;
use crate::rest::{AppState, Call, error_response, run};
use crate::snapshot_store::Download;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/collections/{name}/snapshots", get(list_collection).post(create_collection))
        .route("/collections/{name}/snapshots/recover", put(recover))
        // An upload is written to disk as it arrives, never held in memory: only the
        // disk bounds it, so the body limit of other calls does not apply.
        .route("/collections/{name}/snapshots/upload", post(upload).layer(DefaultBodyLimit::disable()))
        .route("/collections/{name}/snapshots/{snapshot}", get(download_collection).delete(delete_collection))
        .route("/snapshots", get(list_full).post(create_full))
        .route("/snapshots/{snapshot}", get(download_full).delete(delete_full))
}

/// Runs `f` and answers with its result, or (for `wait=false`) answers 202 at once
/// and lets it run.
async fn maybe_wait(
    wait: Option<bool>,
    what: &'static str,
    f: impl FnOnce() -> Result<Value, ApiError> + Send + 'static,
) -> Response {
    if wait.unwrap_or(true) {
        return run(f).await;
    }
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = f() {
            tracing::error!(error = %e.message, "{what} failed in the background");
        }
    });
    let body = json!({"result": null, "status": "accepted", "time": started.elapsed().as_secs_f64()});
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

/// `?base=NAME` on a collection snapshot: Braid's incremental snapshots
/// (`docs/operations.md`), an extension Qdrant does not have.
#[derive(Debug, Default, serde::Deserialize)]
struct BaseParam {
    base: Option<String>,
}

async fn create_collection(Query(q): Query<BaseParam>, call: Call) -> Response {
    maybe_wait(call.wait_given, "a snapshot", move || {
        let c = admin::snapshots_of(&call.state, &call.name)?;
        let d = call.state.snapshots.create(&call.state.db, Some(&c), q.base.as_deref())?;
        Ok(admin::description_json(&d))
    })
    .await
}

async fn list_collection(call: Call) -> Response {
    run(move || {
        let c = admin::snapshots_of(&call.state, &call.name)?;
        let list = call.state.snapshots.list(Some(&c))?;
        Ok(Value::Array(list.iter().map(admin::description_json).collect()))
    })
    .await
}

async fn delete_collection(call: Call) -> Response {
    let snapshot = call.path_id.clone().unwrap_or_default();
    maybe_wait(call.wait_given, "deleting a snapshot", move || {
        let c = admin::snapshots_of(&call.state, &call.name)?;
        call.state.snapshots.delete(Some(&c), &snapshot)?;
        Ok(json!(true))
    })
    .await
}

async fn recover(call: Call) -> Response {
    if call.state.cluster.is_some() {
        return error_response(crate::cluster::not_replicated("recovering a snapshot"));
    }
    maybe_wait(call.wait_given, "a snapshot recovery", move || {
        admin::recover(&call.state, &call.name, &call.body?)?;
        Ok(json!(true))
    })
    .await
}

async fn create_full(State(state): State<AppState>, Query(q): Query<WaitParams>) -> Response {
    maybe_wait(q.wait, "a full snapshot", move || {
        Ok(admin::description_json(&state.snapshots.create(&state.db, None, None)?))
    })
    .await
}

async fn list_full(State(state): State<AppState>) -> Response {
    run(move || {
        let list = state.snapshots.list(None)?;
        Ok(Value::Array(list.iter().map(admin::description_json).collect()))
    })
    .await
}

async fn delete_full(
    State(state): State<AppState>,
    Path(snapshot): Path<String>,
    Query(q): Query<WaitParams>,
) -> Response {
    maybe_wait(q.wait, "deleting a snapshot", move || {
        state.snapshots.delete(None, &snapshot)?;
        Ok(json!(true))
    })
    .await
}

#[derive(Debug, serde::Deserialize)]
struct WaitParams {
    wait: Option<bool>,
}

/// Snapshot `name`'s bytes, streamed from the snapshots directory or the store.
async fn send(state: &AppState, collection: Option<&str>, name: &str) -> Response {
    let (body, len) = match state.snapshots.download(collection, name).await {
        Err(e) => return error_response(e),
        Ok(Download::Stream(stream, len)) => (axum::body::Body::from_stream(stream), Some(len)),
        Ok(Download::File(path)) => {
            let file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => {
                    return error_response(ApiError::from(braid::Error::from(
                        braid::storage::StorageError::io(&path, &e),
                    )));
                }
            };
            let len = file.metadata().await.map(|m| m.len()).ok();
            (axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)), len)
        }
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response();
    if let Some(len) = len {
        response.headers_mut().insert(header::CONTENT_LENGTH, len.into());
    }
    response
}

async fn download_collection(call: Call) -> Response {
    let snapshot = call.path_id.clone().unwrap_or_default();
    match admin::snapshots_of(&call.state, &call.name) {
        Ok(c) => send(&call.state, Some(&c), &snapshot).await,
        Err(e) => error_response(e),
    }
}

async fn download_full(State(state): State<AppState>, Path(snapshot): Path<String>) -> Response {
    send(&state, None, &snapshot).await
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadParams {
    wait: Option<bool>,
    priority: Option<String>,
    checksum: Option<String>,
}

/// `POST /collections/{c}/snapshots/upload` with the file in multipart field
/// `snapshot`: written to the snapshots directory's `.uploads/`, recovered into `c`,
/// removed.
async fn upload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<UploadParams>, axum::extract::rejection::QueryRejection>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    if state.cluster.is_some() {
        return error_response(crate::cluster::not_replicated("recovering an uploaded snapshot"));
    }
    let (Query(params), mut multipart) = match (params, multipart) {
        (Ok(p), Ok(m)) => (p, m),
        (Err(e), _) => return error_response(ApiError::bad_request(format!("bad query string: {e}"))),
        (_, Err(e)) => {
            return error_response(ApiError::bad_request(format!(
                "a snapshot upload is multipart/form-data: {e}"
            )));
        }
    };
    if let Err(e) = admin::check_priority(params.priority.as_deref()) {
        return error_response(e);
    }
    let uploads = state.snapshots.dir().join(".uploads");
    let file = match receive(&mut multipart, &uploads).await {
        Ok(file) => file,
        Err(e) => return error_response(e),
    };
    let checksum = params.checksum;
    let f = {
        let file = file.clone();
        move || {
            let result = state.db.recover_collection(&name, &file, checksum.as_deref());
            let _ = std::fs::remove_file(&file);
            result?;
            Ok(json!(true))
        }
    };
    maybe_wait(params.wait, "recovering an uploaded snapshot", f).await
}

/// Streams multipart field `snapshot` into a new file of `dir`.
async fn receive(multipart: &mut Multipart, dir: &std::path::Path) -> Result<PathBuf, ApiError> {
    use tokio::io::AsyncWriteExt;
    let bad = |e: String| ApiError::bad_request(e);
    let io = |path: &std::path::Path, e: std::io::Error| {
        ApiError::from(braid::Error::from(braid::storage::StorageError::io(path, &e)))
    };
    while let Some(mut field) = multipart.next_field().await.map_err(|e| bad(format!("multipart: {e}")))? {
        if field.name() != Some("snapshot") {
            continue;
        }
        tokio::fs::create_dir_all(dir).await.map_err(|e| io(dir, e))?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let path = dir.join(format!("upload-{}-{}.snapshot", std::process::id(), stamp.as_nanos()));
        let mut out = tokio::fs::File::create(&path).await.map_err(|e| io(&path, e))?;
        let written = async {
            while let Some(chunk) =
                field.chunk().await.map_err(|e| bad(format!("the upload broke off: {e}")))?
            {
                out.write_all(&chunk).await.map_err(|e| io(&path, e))?;
            }
            out.flush().await.map_err(|e| io(&path, e))
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        return Ok(path);
    }
    Err(bad("a snapshot upload needs the file in multipart field `snapshot`".into()))
}
