//! The REST API: Qdrant's paths and JSON shapes, answered by the facade.
//!
//! Every response is Qdrant's envelope: `{"result": …, "status": "ok", "time": s}` or
//! `{"status": {"error": "…"}, "time": s}` with the matching HTTP status. Handlers
//! parse, call the facade on a blocking thread, and format; nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use braid::{Collection, Database};
use serde_json::{Value, json};

use crate::convert;
use crate::error::{ApiError, ErrorKind};

/// Shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub db: Database,
    /// Required on every request when set.
    pub api_key: Option<Arc<str>>,
    /// Numbers write operations for `operation_id`.
    pub operations: Arc<AtomicU64>,
}

/// The version reported at `GET /`: the Qdrant API level this server follows (clients
/// check it for compatibility); Braid's own version is `braid_version`.
pub const QDRANT_API_VERSION: &str = "1.20.0";

/// The router with every route, the API-key check and the body limit.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let points = Router::new()
        .route("/", put(upsert).post(get_points))
        .route("/{id}", get(get_point))
        .route("/delete", post(delete_points))
        .route("/scroll", post(scroll))
        .route("/count", post(count))
        .route("/search", post(search))
        .route("/search/batch", post(search_batch))
        .route("/query", post(query))
        .route("/query/batch", post(query_batch))
        .route("/vectors", put(update_vectors))
        .route("/vectors/delete", post(delete_vectors))
        .route("/payload", post(set_payload).put(overwrite_payload))
        .route("/payload/delete", post(delete_payload))
        .route("/payload/clear", post(clear_payload));
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(health))
        .route("/collections", get(list_collections))
        .route("/collections/{name}", get(collection_info).put(create_collection).delete(delete_collection))
        .route("/collections/{name}/exists", get(collection_exists))
        .route("/collections/{name}/index", put(create_index))
        .route("/collections/{name}/index/{field}", axum::routing::delete(delete_index))
        .nest("/collections/{name}/points", points)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

fn envelope(result: Result<Value, ApiError>, started: Instant) -> Response {
    let time = started.elapsed().as_secs_f64();
    match result {
        Ok(result) => (StatusCode::OK, axum::Json(json!({"result": result, "status": "ok", "time": time})))
            .into_response(),
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, axum::Json(json!({"status": {"error": e.message}, "time": time}))).into_response()
        }
    }
}

fn error_response(e: ApiError) -> Response {
    envelope(Err(e), Instant::now())
}

/// Runs `f` on a blocking thread (the facade's calls are CPU-bound) and wraps it.
async fn run(f: impl FnOnce() -> Result<Value, ApiError> + Send + 'static) -> Response {
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError { kind: ErrorKind::Internal, message: format!("the request failed: {e}") })
    });
    envelope(result, started)
}

fn body(bytes: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = bytes.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError { kind: ErrorKind::TooLarge, message: format!("Payload too large: {e}") }
        } else {
            ApiError::bad_request(format!("cannot read the request body: {e}"))
        }
    })?;
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("Format error in JSON body: {e}")))
}

fn collection(db: &Database, name: &str) -> Result<Collection, ApiError> {
    Ok(db.collection(name)?)
}

fn completed(state: &AppState, wait: &WaitQuery) -> Value {
    let id = state.operations.fetch_add(1, Ordering::Relaxed);
    // Writes are applied before the response in both cases; `wait=false` is answered
    // as Qdrant answers it.
    let status = if wait.wait.unwrap_or(false) { "completed" } else { "acknowledged" };
    json!({"operation_id": id, "status": status})
}

#[derive(Debug, Default, serde::Deserialize)]
struct WaitQuery {
    wait: Option<bool>,
}

async fn authenticate(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Err(e) = crate::check_api_key(state.api_key.as_deref(), |name| {
        headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }) {
        return error_response(e);
    }
    next.run(request).await
}

/// Qdrant answers `GET /` without the envelope; clients read `version` from it.
async fn root() -> Response {
    axum::Json(json!({"title": "braid - a vector database with Qdrant's API", "version": QDRANT_API_VERSION,
                      "braid_version": env!("CARGO_PKG_VERSION")}))
    .into_response()
}

async fn health() -> &'static str {
    "healthz check passed"
}

async fn not_found() -> Response {
    error_response(ApiError { kind: ErrorKind::NotFound, message: "Not found: no such path".into() })
}

async fn list_collections(State(s): State<AppState>) -> Response {
    run(move || {
        Ok(json!({"collections": s.db.list().into_iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}))
    })
    .await
}

async fn collection_info(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    run(move || Ok(convert::info_json(&collection(&s.db, &name)?.info()))).await
}

async fn collection_exists(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    run(move || Ok(json!({"exists": s.db.collection_exists(&name)}))).await
}

async fn create_collection(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    run(move || {
        let config = convert::collection_config(&body(bytes)?)?;
        s.db.create_collection(&name, config)?;
        Ok(json!(true))
    })
    .await
}

async fn delete_collection(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    run(move || Ok(json!(s.db.delete_collection(&name)?))).await
}

async fn create_index(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(wait): Query<WaitQuery>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    run(move || {
        let body = body(bytes)?;
        let field = body
            .get("field_name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request("an index needs `field_name`".into()))?;
        let kind = convert::index_kind(body.get("field_schema").unwrap_or(&Value::Null))?;
        collection(&s.db, &name)?.create_payload_index(field, kind)?;
        Ok(completed(&s, &wait))
    })
    .await
}

async fn delete_index(
    State(s): State<AppState>,
    Path((name, field)): Path<(String, String)>,
    Query(wait): Query<WaitQuery>,
) -> Response {
    run(move || {
        collection(&s.db, &name)?.delete_payload_index(&field)?;
        Ok(completed(&s, &wait))
    })
    .await
}

async fn upsert(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(wait): Query<WaitQuery>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    run(move || {
        let points = convert::upsert(&body(bytes)?)?;
        collection(&s.db, &name)?.upsert(points)?;
        Ok(completed(&s, &wait))
    })
    .await
}

async fn get_points(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    run(move || {
        let body = body(bytes)?;
        let o = body.as_object().ok_or_else(|| ApiError::bad_request("the body must be an object".into()))?;
        let ids = o
            .get("ids")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad_request("`ids` must be a list".into()))?
            .iter()
            .map(convert::point_id)
            .collect::<Result<Vec<_>, _>>()?;
        let records = collection(&s.db, &name)?.get(
            &ids,
            convert::with_payload(o.get("with_payload"), true)?,
            convert::with_vectors(o)?,
        )?;
        Ok(Value::Array(records.into_iter().map(convert::record_json).collect()))
    })
    .await
}

async fn get_point(State(s): State<AppState>, Path((name, id)): Path<(String, String)>) -> Response {
    run(move || {
        let id = match id.parse::<u64>() {
            Ok(n) => json!(n),
            Err(_) => json!(id),
        };
        let id = convert::point_id(&id)?;
        let record = collection(&s.db, &name)?.get(&[id], true, true)?.pop().ok_or(ApiError {
            kind: ErrorKind::NotFound,
            message: format!("Not found: no point with id {id}"),
        })?;
        Ok(convert::record_json(record))
    })
    .await
}

async fn delete_points(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(wait): Query<WaitQuery>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    run(move || {
        let selector = convert::body_selector(&body(bytes)?)?;
        collection(&s.db, &name)?.delete(selector)?;
        Ok(completed(&s, &wait))
    })
    .await
}

async fn scroll(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    run(move || {
        let body = body(bytes)?;
        let o = body.as_object().ok_or_else(|| ApiError::bad_request("the body must be an object".into()))?;
        let filter = convert::filter(o.get("filter"))?;
        let limit = match o.get("limit").filter(|v| !v.is_null()) {
            None => 10,
            Some(v) => v.as_u64().ok_or_else(|| ApiError::bad_request("`limit` must be a number".into()))? as usize,
        };
        let offset = o.get("offset").filter(|v| !v.is_null()).map(convert::point_id).transpose()?;
        let (records, next) = collection(&s.db, &name)?.scroll(
            filter.as_ref(),
            limit,
            offset,
            convert::with_payload(o.get("with_payload"), true)?,
            convert::with_vectors(o)?,
        )?;
        Ok(json!({"points": records.into_iter().map(convert::record_json).collect::<Vec<_>>(), "next_page_offset": next}))
    })
    .await
}

async fn count(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    run(move || {
        let body = body(bytes)?;
        let filter = convert::filter(body.get("filter"))?;
        Ok(json!({"count": collection(&s.db, &name)?.count(filter.as_ref())?}))
    })
    .await
}

async fn search(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    run(move || {
        let request = convert::search(&body(bytes)?)?;
        let hits = collection(&s.db, &name)?.search(&request)?;
        Ok(Value::Array(hits.into_iter().map(convert::scored_json).collect()))
    })
    .await
}

fn list_of(body: &Value, key: &str) -> Result<Vec<Value>, ApiError> {
    body.get(key)
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ApiError::bad_request(format!("`{key}` must be a list")))
}

async fn search_batch(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    run(move || {
        let requests =
            list_of(&body(bytes)?, "searches")?.iter().map(convert::search).collect::<Result<Vec<_>, _>>()?;
        let results = collection(&s.db, &name)?.search_batch(&requests)?;
        results
            .into_iter()
            .map(|r| Ok(Value::Array(r?.into_iter().map(convert::scored_json).collect())))
            .collect::<Result<Vec<_>, ApiError>>()
            .map(Value::Array)
    })
    .await
}

async fn query(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    run(move || {
        let request = convert::query_points(&body(bytes)?)?;
        let hits = collection(&s.db, &name)?.query(request)?;
        Ok(json!({"points": hits.into_iter().map(convert::scored_json).collect::<Vec<_>>()}))
    })
    .await
}

async fn query_batch(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    run(move || {
        let requests = list_of(&body(bytes)?, "searches")?
            .iter()
            .map(convert::query_points)
            .collect::<Result<Vec<_>, _>>()?;
        let results = collection(&s.db, &name)?.query_batch(requests)?;
        results
            .into_iter()
            .map(|r| Ok(json!({"points": r?.into_iter().map(convert::scored_json).collect::<Vec<_>>()})))
            .collect::<Result<Vec<_>, ApiError>>()
            .map(Value::Array)
    })
    .await
}

async fn update_vectors(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(wait): Query<WaitQuery>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    run(move || {
        let points = convert::upsert(&body(bytes)?)?;
        let updates = points.into_iter().map(|p| (p.id, p.vectors)).collect();
        collection(&s.db, &name)?.update_vectors(updates)?;
        Ok(completed(&s, &wait))
    })
    .await
}

async fn delete_vectors(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(wait): Query<WaitQuery>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    run(move || {
        let body = body(bytes)?;
        let selector = convert::body_selector(&body)?;
        let names: Vec<String> = list_of(&body, "vector")?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad_request("`vector` must list names".into()))
            })
            .collect::<Result<_, _>>()?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        collection(&s.db, &name)?.delete_vectors(selector, &names)?;
        Ok(completed(&s, &wait))
    })
    .await
}

fn payload_write(
    s: AppState,
    name: String,
    wait: WaitQuery,
    bytes: Result<Bytes, BytesRejection>,
    write: impl FnOnce(&Collection, braid::PointsSelector, &Value) -> Result<(), braid::Error> + Send + 'static,
) -> impl Future<Output = Response> {
    run(move || {
        let body = body(bytes)?;
        let selector = convert::body_selector(&body)?;
        write(&collection(&s.db, &name)?, selector, &body)?;
        Ok(completed(&s, &wait))
    })
}

async fn set_payload(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(wait): Query<WaitQuery>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    payload_write(s, name, wait, bytes, |c, sel, body| {
        c.set_payload(sel, body.get("payload").cloned().unwrap_or(Value::Null))
    })
    .await
}

async fn overwrite_payload(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(wait): Query<WaitQuery>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    payload_write(s, name, wait, bytes, |c, sel, body| {
        c.overwrite_payload(sel, body.get("payload").cloned().unwrap_or(Value::Null))
    })
    .await
}

async fn delete_payload(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(wait): Query<WaitQuery>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    payload_write(s, name, wait, bytes, |c, sel, body| {
        let keys: Vec<&str> = body
            .get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        c.delete_payload(sel, &keys)
    })
    .await
}

async fn clear_payload(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(wait): Query<WaitQuery>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    payload_write(s, name, wait, bytes, |c, sel, _| c.clear_payload(sel)).await
}
