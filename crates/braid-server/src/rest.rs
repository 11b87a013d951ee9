//! The REST API: Qdrant's paths and JSON shapes, answered by the facade.
//!
//! Every response is Qdrant's envelope: `{"result": …, "status": "ok", "time": s}` or
//! `{"status": {"error": "…"}, "time": s}` with the matching HTTP status. Handlers
//! parse, call the facade on a blocking thread, and format; nothing else.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::RequestPartsExt;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use braid::{Collection, Database};
use serde_json::{Value, json};

use crate::convert;
use crate::error::{ApiError, ErrorKind};
use crate::replica::IndexChange;
use crate::replica::SchemaChange;
use crate::shards::Source;

/// Shared by every handler.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    /// The database.
    pub db: Database,
    /// The snapshots directory, and the object store when one is configured.
    pub snapshots: Arc<crate::SnapshotStore>,
    /// Request accounting for `/metrics` and `/telemetry`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The keys a request may carry, and what each allows.
    pub keys: crate::auth::Keys,
    /// Numbers write operations for `operation_id`.
    pub operations: Arc<AtomicU64>,
    /// What collection info reports in Qdrant's optimizer and WAL fields.
    pub reported: convert::Reported,
    /// Requests (of both protocols) past the key check and not yet answered: each
    /// holds a permit while it reads its body and runs, so bodies in memory stay under
    /// `permits × max_body_bytes`. Requests beyond it wait for a permit.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// This server's peer id (kept in the data directory's `cluster/peer_id`), which
    /// cluster information reports.
    pub peer_id: u64,
    /// This server's cluster node, when it runs as one (`docs/distributed.md`).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// The version reported at `GET /`: the Qdrant API level this server follows (clients
/// check it for compatibility); Braid's own version is `braid_version`.
pub(crate) const QDRANT_API_VERSION: &str = "1.20.0";

/// The router with every route, the API-key check and the body limit.
pub(crate) fn router(state: AppState, max_body_bytes: usize) -> Router {
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
        .route("/query/groups", post(query_groups))
        .route("/search/matrix/pairs", post(matrix_pairs))
        .route("/search/matrix/offsets", post(matrix_offsets))
        .route("/search/groups", post(search_groups))
        .route("/recommend/groups", post(recommend_groups))
        .route("/recommend", post(recommend))
        .route("/recommend/batch", post(recommend_batch))
        .route("/discover", post(discover))
        .route("/discover/batch", post(discover_batch))
        .route("/vectors", put(update_vectors))
        .route("/vectors/delete", post(delete_vectors))
        .route("/payload", post(set_payload).put(overwrite_payload))
        .route("/payload/delete", post(delete_payload))
        .route("/payload/clear", post(clear_payload))
        .route("/batch", post(batch_update));
    let api = Router::new()
        .route("/collections", get(list_collections))
        .route("/collections/{name}/aliases", get(collection_aliases))
        .route("/aliases", get(list_aliases))
        .route("/metrics", get(metrics))
        .route("/telemetry", get(telemetry))
        .merge(crate::rest_snapshots::routes())
        .route(
            "/collections/{name}",
            get(collection_info)
                .put(create_collection)
                .delete(delete_collection)
                .post(update_aliases)
                .patch(update_collection),
        )
        .route("/collections/{name}/vectors/{vector}", put(create_vector_name).delete(delete_vector_name))
        .route("/collections/{name}/exists", get(collection_exists))
        .route("/collections/{name}/index", put(create_index))
        .route("/collections/{name}/index/{field}", axum::routing::delete(delete_index))
        .route("/collections/{name}/facet", post(facet))
        .route("/collections/{name}/cluster", get(collection_cluster).post(change_collection_cluster))
        .route("/collections/{name}/shards", put(create_shard_key).get(list_shard_keys))
        .route("/collections/{name}/shards/delete", post(delete_shard_key))
        .route("/cluster", get(cluster))
        .route("/cluster/peer/{peer}", axum::routing::delete(remove_peer))
        .route("/cluster/recover", post(cluster_operation))
        .nest("/collections/{name}/points", points)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // After routing: what a call needs depends on its route.
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    // Health and the version are open to all, as in Qdrant: probes carry no key.
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(ready))
        .method_not_allowed_fallback(method_not_allowed)
        .merge(api)
        // After routing, so that each request is counted under its route's template.
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(middleware::map_response(enveloped))
        .with_state(state)
}

/// An error answered in plain text — axum's own refusals before a handler runs, such
/// as a path segment that is not UTF-8 — in Qdrant's JSON envelope, which clients
/// parse, with the text as the message. Errors already in JSON pass as they are.
async fn enveloped(response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Refusals are a line of text; a longer body is cut, not waited for.
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let enveloped = axum::Json(json!({"status": {"error": text}, "time": 0.0})).into_response();
    let (fresh, body) = enveloped.into_parts();
    parts.headers.extend(fresh.headers);
    Response::from_parts(parts, body)
}

/// A successful answer's body, `{"result": …, "status": "ok", "time": …}`: written
/// straight from the result (`json!` would copy the whole result into a new value
/// first).
#[derive(serde::Serialize)]
struct Answered {
    result: Value,
    status: &'static str,
    time: f64,
}

pub(crate) fn envelope(result: Result<Value, ApiError>, started: Instant) -> Response {
    let time = started.elapsed().as_secs_f64();
    match result {
        Ok(result) => (StatusCode::OK, axum::Json(Answered { result, status: "ok", time })).into_response(),
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, axum::Json(json!({"status": {"error": e.message}, "time": time}))).into_response()
        }
    }
}

pub(crate) fn error_response(e: ApiError) -> Response {
    envelope(Err(e), Instant::now())
}

/// Runs `f` on a blocking thread (the facade's calls are CPU-bound) and wraps it.
pub(crate) async fn run(f: impl FnOnce() -> Result<Value, ApiError> + Send + 'static) -> Response {
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError { kind: ErrorKind::Internal, message: format!("the request failed: {e}") })
    });
    envelope(result, started)
}

fn parse_body(bytes: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
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

#[derive(Debug, Default, serde::Deserialize)]
struct WaitQuery {
    wait: Option<bool>,
    /// Qdrant's per-request `timeout`, in seconds (searches and queries).
    timeout: Option<u64>,
    /// Reads: how many replicas must agree (`shards::consistency`).
    consistency: Option<String>,
    /// Writes: `weak`, `medium` or `strong` (`shards::ordering`: all met).
    ordering: Option<String>,
}

/// Raises its flag when dropped: a handler's future is dropped when its client goes
/// away, and the query running for it on a blocking thread then stops at its next
/// leaf instead of running on for no one.
struct CancelOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// A [`braid::Stop`] for one request: its `timeout`, and cancelled when the returned
/// guard is dropped.
pub(crate) fn request_stop(timeout_secs: Option<u64>) -> (braid::Stop, impl Drop) {
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut stop = braid::Stop::never().on(flag.clone());
    if let Some(secs) = timeout_secs {
        stop = stop.after(std::time::Duration::from_secs(secs));
    }
    (stop, CancelOnDrop(flag))
}

/// What a REST call needs (`auth::Need`), by method and route.
fn rest_need<'a>(method: &axum::http::Method, route: &str, name: Option<&'a str>) -> crate::auth::Need<'a> {
    use crate::auth::Need;
    /// Calls under `/collections/{name}/points` sent with POST that only read.
    const READS: &[&str] = &[
        "",
        "/scroll",
        "/count",
        "/search",
        "/search/batch",
        "/query",
        "/query/batch",
        "/query/groups",
        "/search/matrix/pairs",
        "/search/matrix/offsets",
        "/search/groups",
        "/recommend/groups",
        "/recommend",
        "/recommend/batch",
        "/discover",
        "/discover/batch",
    ];
    let points = route.strip_prefix("/collections/{name}/points");
    match (method.as_str(), name) {
        ("GET", name) => Need::Read(name),
        ("POST", Some(name))
            if points.is_some_and(|rest| READS.contains(&rest)) || route == "/collections/{name}/facet" =>
        {
            Need::Read(Some(name))
        }
        (_, Some(name)) if points.is_some() || route.starts_with("/collections/{name}/index") => {
            Need::Write(name)
        }
        _ => Need::Manage,
    }
}

async fn authenticate(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let access =
        state.keys.access(|name| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string));
    let access = match access {
        Ok(a) => a,
        Err(e) => return error_response(e),
    };
    if access != crate::auth::Access::Full {
        let route = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_string());
        let route = route.unwrap_or_default();
        let (mut parts, body) = request.into_parts();
        let params = parts.extract::<Path<HashMap<String, String>>>().await.map(|p| p.0).unwrap_or_default();
        let name = params.get("name").map(String::as_str);
        let need = rest_need(&parts.method, &route, name);
        if let Err(e) = crate::auth::check(&access, need, &state.db) {
            return error_response(e);
        }
        return admitted(state, Request::from_parts(parts, body), next).await;
    }
    admitted(state, request, next).await
}

/// Runs an authorised request under a permit of the in-flight limit.
async fn admitted(state: AppState, request: Request, next: Next) -> Response {
    // Closed only if the server is stopping; then there is nothing left to run.
    let Ok(_permit) = state.in_flight.clone().acquire_owned().await else {
        return error_response(ApiError {
            kind: ErrorKind::Internal,
            message: "the server is stopping".into(),
        });
    };
    next.run(request).await
}

/// Counts and logs each routed request under `METHOD /route/{template}`.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !state.metrics.enabled() {
        return next.run(request).await;
    }
    let started = Instant::now();
    // Both clones share what they hold (an `Arc<str>`, a standard method): no allocation.
    let route = request.extensions().get::<axum::extract::MatchedPath>().cloned();
    let method = request.method().clone();
    let response = next.run(request).await;
    state.metrics.observe(
        crate::metrics::Protocol::Rest,
        method.as_str(),
        route.as_ref().map_or("?", |p| p.as_str()),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `GET /metrics`: the OpenMetrics text exposition (Prometheus reads it).
async fn metrics(State(state): State<AppState>) -> Response {
    let text = tokio::task::spawn_blocking(move || state.metrics.render(&state.db)).await.unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response()
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TelemetryParams {
    details_level: Option<u32>,
    anonymize: Option<bool>,
}

/// `GET /telemetry?details_level=N&anonymize=B`: Qdrant's shape.
async fn telemetry(
    State(state): State<AppState>,
    params: Result<Query<TelemetryParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => return error_response(ApiError::bad_request(format!("bad query string: {e}"))),
    };
    run(move || {
        Ok(state.metrics.telemetry(&state.db, p.details_level.unwrap_or(0), p.anonymize.unwrap_or(false)))
    })
    .await
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

/// Ready unless background work failed and has not succeeded since (a log that cannot
/// be synced refuses writes): then 503 with what failed, per collection.
async fn ready(State(state): State<AppState>) -> Response {
    let db = state.db.clone();
    let failures = match tokio::task::spawn_blocking(move || db.failures()).await {
        Ok(failures) => failures,
        Err(e) => {
            let error = format!("the readiness check failed: {e}");
            return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": {"error": error}})))
                .into_response();
        }
    };
    if failures.is_empty() {
        return "all shards are ready".into_response();
    }
    let detail: serde_json::Map<String, Value> = failures
        .into_iter()
        .map(|(name, f)| {
            let tasks =
                f.into_iter().map(|(task, e)| (format!("{task:?}").to_lowercase(), json!(e.to_string())));
            (name, Value::Object(tasks.collect()))
        })
        .collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"status": {"error": "not ready", "failures": detail}})),
    )
        .into_response()
}

async fn not_found() -> Response {
    error_response(ApiError { kind: ErrorKind::NotFound, message: "Not found: no such path".into() })
}

/// A known path with a method it does not take: 405 in the JSON envelope clients read.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let message = format!("Method not allowed: {method} {}", uri.path());
    let mut response = error_response(ApiError { kind: ErrorKind::BadRequest, message });
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// One request to a collection: the state, the collection name from the path, the
/// `wait` parameter and the body (parsed lazily, so that a bad body is reported by the
/// handler in the envelope). Every collection handler takes this and nothing else.
pub(crate) struct Call {
    pub(crate) state: AppState,
    pub(crate) name: String,
    pub(crate) wait: bool,
    /// `wait` as given (calls differ in their default).
    pub(crate) wait_given: Option<bool>,
    timeout: Option<u64>,
    /// A read consistency above one replica (`shards::Scope::strong`).
    strong: bool,
    pub(crate) body: Result<Value, ApiError>,
    pub(crate) path_id: Option<String>,
}

impl FromRequest<AppState> for Call {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let Path(params) = parts
            .extract::<Path<HashMap<String, String>>>()
            .await
            .map_err(|e| error_response(ApiError::bad_request(format!("bad path: {e}"))))?;
        let Query(wait) = parts
            .extract::<Query<WaitQuery>>()
            .await
            .map_err(|e| error_response(ApiError::bad_request(format!("bad query string: {e}"))))?;
        let strong = crate::shards::consistency(wait.consistency.as_deref()).map_err(error_response)?;
        crate::shards::ordering(wait.ordering.as_deref()).map_err(error_response)?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state).await;
        Ok(Call {
            strong,
            state: state.clone(),
            name: params.get("name").cloned().unwrap_or_default(),
            wait: wait.wait.unwrap_or(false),
            wait_given: wait.wait,
            timeout: wait.timeout,
            body: parse_body(bytes),
            path_id: params
                .get("id")
                .or_else(|| params.get("field"))
                .or_else(|| params.get("snapshot"))
                .or_else(|| params.get("vector"))
                .cloned(),
        })
    }
}

impl Call {
    /// Runs a search or query `f` with the collection, the body and the request's
    /// [`braid::Stop`] (its `timeout`; called off if the client goes away).
    async fn query(
        self,
        f: impl FnOnce(&Source, &Value, &braid::Stop) -> Result<Value, ApiError> + Send + 'static,
    ) -> Response {
        let (stop, _cancel_on_drop) = request_stop(self.timeout);
        run(move || {
            let (source, body) = self.keyed()?;
            f(&source, &body, &stop)
        })
        .await
    }

    /// Runs `f` with the collection and the body; answers with what it returns.
    async fn read(
        self,
        f: impl FnOnce(&Source, &Value) -> Result<Value, ApiError> + Send + 'static,
    ) -> Response {
        run(move || {
            let (source, body) = self.keyed()?;
            f(&source, &body)
        })
        .await
    }

    /// What reads of the call's collection go to (`shards::Source`): the shards of
    /// the keys the body names (`shard_key`, taken out of it), else every shard.
    fn keyed(self) -> Result<(Source, Value), ApiError> {
        let mut body = self.body?;
        let scope =
            crate::shards::Scope { keys: crate::shards::take_read_keys(&mut body)?, strong: self.strong };
        let source = Source::of(&self.state.db, self.state.cluster.as_ref(), &self.name, &scope)?;
        Ok((source, body))
    }

    /// Runs the point write `write`; answers with an `UpdateResult`. On a cluster node
    /// it is proposed to the collection's replicas.
    async fn update(self, write: Write) -> Response {
        match self.state.cluster.clone() {
            Some(cluster) => self.replicate(cluster, move |body| Ok(json!({write.name(): body}))).await,
            None => self.write(move |c, body| write.apply(c, body)).await,
        }
    }

    /// Creates or deletes a payload index (the change `read` makes of the body):
    /// applied here, or on a cluster node proposed to the collection's replicas.
    async fn change_index(
        self,
        read: impl FnOnce(&Value) -> Result<IndexChange, ApiError> + Send + 'static,
    ) -> Response {
        match self.state.cluster.clone() {
            Some(cluster) => self.replicate(cluster, move |body| Ok(read(&body)?.op())).await,
            None => self.write(move |c, body| read(body)?.apply(c)).await,
        }
    }

    /// Proposes the one operation `op` makes of the body to the collection's replicas;
    /// answers with an `UpdateResult`.
    async fn replicate(
        self,
        cluster: Arc<crate::cluster::Cluster>,
        op: impl FnOnce(Value) -> Result<Value, ApiError>,
    ) -> Response {
        let started = Instant::now();
        let result = async {
            let entry = json!({"operations": [op(self.body?)?]});
            cluster.write(&self.name, entry).await?;
            Ok(update_result(&self.state, self.wait))
        }
        .await;
        envelope(result, started)
    }

    /// Makes the schema change `read` makes of the body: on this server's collection,
    /// or on a cluster node on every replica (`Cluster::change_schema`); answers `true`
    /// as Qdrant's collection calls do, or with an `UpdateResult` as its vector-name
    /// calls do (`as_update`).
    async fn change_schema(
        self,
        as_update: bool,
        read: impl FnOnce(&Value) -> Result<SchemaChange, ApiError> + Send + 'static,
    ) -> Response {
        let answer = move |state: &AppState, wait: bool| match as_update {
            true => update_result(state, wait),
            false => json!(true),
        };
        if let Some(cluster) = self.state.cluster.clone() {
            let started = Instant::now();
            let result = async {
                cluster.change_schema(&self.name, read(&self.body?)?).await?;
                Ok(answer(&self.state, self.wait))
            }
            .await;
            return envelope(result, started);
        }
        run(move || {
            let change = read(&self.body?)?;
            change.apply(&collection(&self.state.db, &self.name)?)?;
            Ok(answer(&self.state, self.wait))
        })
        .await
    }

    /// Runs the write `f`; answers with an `UpdateResult`.
    async fn write(
        self,
        f: impl FnOnce(&Collection, &Value) -> Result<(), ApiError> + Send + 'static,
    ) -> Response {
        run(move || {
            f(&collection(&self.state.db, &self.name)?, &self.body?)?;
            Ok(update_result(&self.state, self.wait))
        })
        .await
    }
}

/// An `UpdateResult` for a write just applied. Writes are applied before the response
/// either way; `wait=false` is answered as Qdrant answers it.
fn update_result(state: &AppState, wait: bool) -> Value {
    let id = state.operations.fetch_add(1, Ordering::Relaxed);
    json!({"operation_id": id, "status": if wait { "completed" } else { "acknowledged" }})
}

fn object(body: &Value) -> Result<&serde_json::Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| ApiError::bad_request("the body must be a JSON object".into()))
}

/// The body as an object whose fields are all among `served` (`convert::only`).
fn body_with<'a>(body: &'a Value, what: &str, served: &[&str]) -> Result<&'a Value, ApiError> {
    convert::only(object(body)?, what, served)?;
    Ok(body)
}

fn list_of(body: &Value, key: &str) -> Result<Vec<Value>, ApiError> {
    body.get(key)
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ApiError::bad_request(format!("`{key}` must be a list")))
}

fn strings(body: &Value, key: &str) -> Result<Vec<String>, ApiError> {
    list_of(body, key)?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| ApiError::bad_request(format!("`{key}` must list strings")))
        })
        .collect()
}

fn scored_list(hits: Vec<braid::ScoredPoint>) -> Value {
    Value::Array(hits.into_iter().map(convert::scored_json).collect())
}

async fn list_collections(State(s): State<AppState>) -> Response {
    run(move || {
        let names = match &s.cluster {
            Some(cluster) => cluster.list(),
            None => s.db.list(),
        };
        Ok(json!({"collections": names.into_iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}))
    })
    .await
}

async fn collection_info(call: Call) -> Response {
    let reported = call.state.reported;
    let (cluster, name) = (call.state.cluster.clone(), call.name.clone());
    call.read(move |c, _| {
        let mut info = convert::info_json(&c.info()?, &reported);
        // Read after the source: the metadata this node has applied holds the collection.
        if let Some(shape) = cluster.as_ref().and_then(|cluster| cluster.shape(&name)) {
            let params = &mut info["config"]["params"];
            params["shard_number"] = json!(shape.shard_number);
            params["replication_factor"] = json!(shape.replication_factor);
            params["write_consistency_factor"] = json!(shape.write_consistency_factor);
            if shape.custom {
                params["sharding_method"] = json!("custom");
            }
        }
        Ok(info)
    })
    .await
}

async fn collection_exists(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    run(move || {
        let exists = match &s.cluster {
            Some(cluster) => cluster.exists(&name),
            None => s.db.collection_exists(&name),
        };
        Ok(json!({"exists": exists}))
    })
    .await
}

/// `GET /cluster`: the cluster as this node sees it; a server running alone
/// (distributed mode off) reports `{"status": "disabled"}`, as Qdrant does.
async fn cluster(State(s): State<AppState>) -> Response {
    run(move || Ok(s.cluster.as_ref().map_or_else(|| json!({"status": "disabled"}), |c| c.info_json()))).await
}

/// `GET /collections/{c}/cluster`: on a single server, one local shard holding every
/// point, active, and nothing remote or in transfer; on a cluster node, the shard's
/// replicas here and on other peers.
async fn collection_cluster(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    if let Some(cluster) = s.cluster.clone() {
        return run(move || cluster.collection_json(&name)).await;
    }
    run(move || {
        let points = s.db.collection(&name)?.info().points_count;
        Ok(json!({
            "peer_id": s.peer_id,
            "shard_count": 1,
            "local_shards": [{"shard_id": 0, "points_count": points, "state": "Active"}],
            "remote_shards": [],
            "shard_transfers": [],
        }))
    })
    .await
}

/// The calls that change a cluster: refused on a single server (it runs alone, with
/// one local shard per collection), and `POST /cluster/recover` on a cluster node too
/// (Raft needs no recovery call: a peer restarted from its directory rejoins).
async fn cluster_operation(State(s): State<AppState>) -> Response {
    let why = match s.cluster {
        None => "distributed mode is off: this server runs alone, with one local shard per collection",
        Some(_) => {
            "a Braid cluster has nothing to recover: a peer restarted from its directory rejoins its groups"
        }
    };
    error_response(ApiError::bad_request(format!("{why} (docs/distributed.md)")))
}

/// `POST /collections/{c}/cluster`: replicas moved, added or dropped on a cluster node
/// (`Cluster::change_placement`); refused on a single server.
async fn change_collection_cluster(call: Call) -> Response {
    placement_call(call, None).await
}

/// `PUT /collections/{c}/shards`: a shard key made with its shards, on a cluster
/// node, for a collection created with `sharding_method: custom` (the
/// `create_sharding_key` operation of `POST /collections/{c}/cluster`).
async fn create_shard_key(call: Call) -> Response {
    placement_call(call, Some("create_sharding_key")).await
}

/// `POST /collections/{c}/shards/delete`: a shard key dropped with its shards and
/// their points (`drop_sharding_key`).
async fn delete_shard_key(call: Call) -> Response {
    placement_call(call, Some("drop_sharding_key")).await
}

/// A change of a collection's placement: the body as `POST /collections/{c}/cluster`
/// takes it, or the body of operation `op`.
async fn placement_call(call: Call, op: Option<&'static str>) -> Response {
    let Some(cluster) = call.state.cluster.clone() else {
        return match op {
            Some(_) => error_response(crate::shards::no_keys_alone()),
            None => cluster_operation(State(call.state)).await,
        };
    };
    let started = Instant::now();
    let result = async {
        let body = call.body?;
        let body = match op {
            Some(op) => json!({op: body}),
            None => body,
        };
        cluster.change_placement(&call.name, &body, call.timeout).await?;
        Ok(json!(true))
    }
    .await;
    envelope(result, started)
}

/// `GET /collections/{c}/shards`: the collection's shard keys (none listed for a
/// collection sharded by point ids, and on a single server, as in Qdrant).
async fn list_shard_keys(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    run(move || {
        let keys = match &s.cluster {
            Some(cluster) => cluster.shard_keys(&name)?,
            None => {
                s.db.collection(&name)?;
                None
            }
        };
        Ok(match keys {
            Some(keys) => {
                json!({"shard_keys": keys.iter().map(|k| json!({"key": k.to_json()})).collect::<Vec<_>>()})
            }
            None => json!({"shard_keys": null}),
        })
    })
    .await
}

/// `DELETE /cluster/peer/{id}`: removes a peer that holds no replica.
async fn remove_peer(State(s): State<AppState>, Path(peer): Path<String>) -> Response {
    let started = Instant::now();
    let Some(cluster) = s.cluster.clone() else {
        return cluster_operation(State(s)).await;
    };
    let result = async {
        let id = peer.parse().map_err(|_| ApiError::bad_request(format!("`{peer}` is not a peer id")))?;
        cluster.remove_peer(id).await?;
        Ok(json!(true))
    }
    .await;
    envelope(result, started)
}

async fn create_collection(call: Call) -> Response {
    if let Some(cluster) = call.state.cluster.clone() {
        let started = Instant::now();
        let result = async {
            let mut body = call.body?;
            // The placement is the cluster's to serve; the rest as on a single server.
            let mut count = |key: &str| match body.as_object_mut().and_then(|o| o.remove(key)) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| ApiError::bad_request(format!("`{key}` must be a positive integer"))),
            };
            let (shards, replicas) = (count("shard_number")?, count("replication_factor")?);
            let write_consistency = count("write_consistency_factor")?;
            let custom = match body.as_object_mut().and_then(|o| o.remove("sharding_method")) {
                None | Some(Value::Null) => false,
                Some(m) if m == "auto" => false,
                Some(m) if m == "custom" => true,
                Some(m) => {
                    return Err(ApiError::bad_request(format!(
                        "`sharding_method` {m}: one of \"auto\" (points placed by their ids) or \"custom\" \
                         (by shard keys)"
                    )));
                }
            };
            let config = convert::collection_config(&body)?;
            cluster.create(&call.name, config, shards, replicas, write_consistency, custom).await?;
            Ok(json!(true))
        }
        .await;
        return envelope(result, started);
    }
    run(move || {
        let config = convert::collection_config(&call.body?)?;
        call.state.db.create_collection(&call.name, config)?;
        Ok(json!(true))
    })
    .await
}

/// `PATCH /collections/{name}`: graph settings, quantization and thresholds, changed
/// on the live collection; a graph whose settings changed is rebuilt in the
/// background while the old one serves.
async fn update_collection(call: Call) -> Response {
    call.change_schema(false, |body| Ok(SchemaChange::Update(Box::new(convert::collection_update(body)?))))
        .await
}

/// `PUT /collections/{name}/vectors/{vector}`: a new vector space, empty for the
/// points already there.
async fn create_vector_name(call: Call) -> Response {
    let vector = call.path_id.clone().unwrap_or_default();
    call.change_schema(true, move |body| Ok(SchemaChange::AddVector(vector, convert::new_space(body)?))).await
}

/// `DELETE /collections/{name}/vectors/{vector}`: the space and every vector in it.
async fn delete_vector_name(call: Call) -> Response {
    let vector = call.path_id.clone().unwrap_or_default();
    call.change_schema(true, move |_| Ok(SchemaChange::DeleteVector(vector))).await
}

async fn delete_collection(call: Call) -> Response {
    if let Some(cluster) = call.state.cluster.clone() {
        let started = Instant::now();
        return envelope(cluster.delete(&call.name).await.map(|deleted| json!(deleted)), started);
    }
    run(move || Ok(json!(call.state.db.delete_collection(&call.name)?))).await
}

/// `POST /collections/aliases`. It shares its route with `/collections/{name}` so that
/// a collection named `aliases` stays reachable by GET, PUT and DELETE.
async fn update_aliases(call: Call) -> Response {
    if call.name != "aliases" {
        let uri = format!("/collections/{}", call.name).parse().unwrap_or_default();
        return method_not_allowed(axum::http::Method::POST, uri).await;
    }
    if let Some(cluster) = call.state.cluster.clone() {
        let started = Instant::now();
        let result = async {
            let actions = crate::admin::alias_actions(&call.body?)?;
            cluster.update_aliases(&actions).await?;
            Ok(json!(true))
        }
        .await;
        return envelope(result, started);
    }
    run(move || {
        let actions = crate::admin::alias_actions(&call.body?)?;
        call.state.db.update_aliases(&actions)?;
        Ok(json!(true))
    })
    .await
}

async fn collection_aliases(call: Call) -> Response {
    run(move || {
        let name = &call.name;
        let aliases = match &call.state.cluster {
            Some(cluster) => cluster.collection_aliases(name)?,
            None => call.state.db.collection_aliases(name)?,
        };
        Ok(crate::admin::aliases_json(aliases.into_iter().map(|a| (a, name.clone()))))
    })
    .await
}

async fn list_aliases(State(s): State<AppState>) -> Response {
    run(move || {
        let aliases = match &s.cluster {
            Some(cluster) => cluster.aliases(),
            None => s.db.aliases(),
        };
        Ok(crate::admin::aliases_json(aliases))
    })
    .await
}

async fn create_index(call: Call) -> Response {
    call.change_index(|body| {
        let body = body_with(body, "create index", &["field_name", "field_schema"])?;
        let field = body
            .get("field_name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request("an index needs `field_name`".into()))?;
        let index = convert::field_index(body.get("field_schema").unwrap_or(&Value::Null))?;
        Ok(IndexChange::Create { field: field.to_string(), index })
    })
    .await
}

async fn delete_index(call: Call) -> Response {
    let field = call.path_id.clone().unwrap_or_default();
    call.change_index(move |_| Ok(IndexChange::Delete { field })).await
}

async fn upsert(call: Call) -> Response {
    call.update(Write::Upsert).await
}

async fn get_points(call: Call) -> Response {
    call.read(|c, body| {
        let o =
            object(body_with(body, "retrieve", &["ids", "with_payload", "with_vector", "with_vectors"])?)?;
        let ids = list_of(body, "ids")?.iter().map(convert::point_id).collect::<Result<Vec<_>, _>>()?;
        let records =
            c.get(&ids, convert::with_payload(o.get("with_payload"), true)?, convert::with_vectors(o)?)?;
        Ok(Value::Array(records.into_iter().map(convert::record_json).collect()))
    })
    .await
}

async fn get_point(call: Call) -> Response {
    let id = call.path_id.clone().unwrap_or_default();
    call.read(move |c, _| {
        let id = convert::point_id(&id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n)))?;
        let record = c.get(&[id], true, true)?.pop().ok_or(ApiError {
            kind: ErrorKind::NotFound,
            message: format!("Not found: no point with id {id}"),
        })?;
        Ok(convert::record_json(record))
    })
    .await
}

async fn delete_points(call: Call) -> Response {
    call.update(Write::Delete).await
}

async fn scroll(call: Call) -> Response {
    call.read(|c, body| {
        let served = ["filter", "limit", "offset", "with_payload", "with_vector", "with_vectors", "order_by"];
        let o = object(body_with(body, "scroll", &served)?)?;
        let filter = convert::filter(o.get("filter"))?;
        let limit = match o.get("limit").filter(|v| !v.is_null()) {
            None => 10,
            Some(v) => {
                v.as_u64().ok_or_else(|| ApiError::bad_request("`limit` must be a number".into()))? as usize
            }
        };
        let offset = o.get("offset").filter(|v| !v.is_null()).map(convert::point_id).transpose()?;
        let with_payload = convert::with_payload(o.get("with_payload"), true)?;
        let with_vectors = convert::with_vectors(o)?;
        let order = o.get("order_by").filter(|v| !v.is_null()).map(convert::order_by).transpose()?;
        let (records, next) = match order {
            Some(_) if offset.is_some() => {
                return Err(ApiError::bad_request(
                    "offset cannot be used with order_by: page with order_by.start_from".into(),
                ));
            }
            // Qdrant answers an ordered scroll without a next offset.
            Some(order) => {
                (c.scroll_ordered(filter.as_ref(), &order, limit, with_payload, with_vectors)?, None)
            }
            None => c.scroll(filter.as_ref(), limit, offset, with_payload, with_vectors)?,
        };
        let points: Vec<Value> = records.into_iter().map(convert::record_json).collect();
        Ok(json!({"points": points, "next_page_offset": next}))
    })
    .await
}

async fn count(call: Call) -> Response {
    call.read(|c, body| {
        // `exact: false` allows an estimate; Braid's count is always exact.
        let body = body_with(body, "count", &["filter", "exact"])?;
        Ok(json!({"count": c.count(convert::filter(body.get("filter"))?.as_ref())?}))
    })
    .await
}

async fn facet(call: Call) -> Response {
    call.read(|c, body| {
        let (key, filter, limit) = convert::facet(body)?;
        let hits = c.facet(&key, filter.as_ref(), limit)?;
        Ok(json!({"hits": hits.into_iter().map(convert::facet_hit_json).collect::<Vec<_>>()}))
    })
    .await
}

async fn search(call: Call) -> Response {
    call.query(|c, body, stop| Ok(scored_list(c.query_until(convert::search(body)?, stop)?))).await
}

async fn search_batch(call: Call) -> Response {
    call.query(|c, body, stop| listed_batch(c, body, stop, "search batch", convert::search)).await
}

/// A batch of the older calls (`{"searches": [...]}`): a list of point lists.
fn listed_batch(
    c: &Source,
    body: &Value,
    stop: &braid::Stop,
    what: &str,
    each: fn(&Value) -> Result<braid::QueryPoints, ApiError>,
) -> Result<Value, ApiError> {
    let requests = list_of(body_with(body, what, &["searches"])?, "searches")?
        .iter()
        .map(each)
        .collect::<Result<Vec<_>, _>>()?;
    let results = c.query_batch_until(requests, stop)?;
    Ok(Value::Array(results.into_iter().map(|r| Ok(scored_list(r?))).collect::<Result<_, ApiError>>()?))
}

/// A grouped call of `kind` (`query`, `search` or `recommend`).
fn grouped(c: &Source, body: &Value, stop: &braid::Stop, kind: &str) -> Result<Value, ApiError> {
    let (query, group) = convert::grouped(body, kind)?;
    Ok(convert::groups_json(c.query_groups_until(query, &group, stop)?))
}

async fn matrix_pairs(call: Call) -> Response {
    call.query(|c, body, stop| {
        let m = c.local("a distance matrix")?.distance_matrix(&convert::matrix_request(body)?, stop)?;
        let pairs: Vec<Value> =
            m.pairs().into_iter().map(|(a, b, score)| json!({"a": a, "b": b, "score": score})).collect();
        Ok(json!({"pairs": pairs}))
    })
    .await
}

async fn matrix_offsets(call: Call) -> Response {
    call.query(|c, body, stop| {
        let m = c.local("a distance matrix")?.distance_matrix(&convert::matrix_request(body)?, stop)?;
        let (rows, cols, scores) = m.offsets();
        Ok(json!({"offsets_row": rows, "offsets_col": cols, "scores": scores, "ids": m.ids}))
    })
    .await
}

async fn query_groups(call: Call) -> Response {
    call.query(|c, body, stop| grouped(c, body, stop, "query")).await
}

async fn search_groups(call: Call) -> Response {
    call.query(|c, body, stop| grouped(c, body, stop, "search")).await
}

async fn recommend_groups(call: Call) -> Response {
    call.query(|c, body, stop| grouped(c, body, stop, "recommend")).await
}

async fn recommend(call: Call) -> Response {
    call.query(|c, body, stop| Ok(scored_list(c.query_until(convert::recommend(body)?, stop)?))).await
}

async fn recommend_batch(call: Call) -> Response {
    call.query(|c, body, stop| listed_batch(c, body, stop, "recommend batch", convert::recommend)).await
}

async fn discover(call: Call) -> Response {
    call.query(|c, body, stop| Ok(scored_list(c.query_until(convert::discover(body)?, stop)?))).await
}

async fn discover_batch(call: Call) -> Response {
    call.query(|c, body, stop| listed_batch(c, body, stop, "discover batch", convert::discover)).await
}

async fn query(call: Call) -> Response {
    call.query(|c, body, stop| {
        Ok(json!({"points": scored_list(c.query_until(convert::query_points(body)?, stop)?)}))
    })
    .await
}

async fn query_batch(call: Call) -> Response {
    call.query(|c, body, stop| {
        let body = body_with(body, "query batch", &["searches"])?;
        let requests =
            list_of(body, "searches")?.iter().map(convert::query_points).collect::<Result<Vec<_>, _>>()?;
        let results = c.query_batch_until(requests, stop)?;
        let results = results.into_iter().map(|r| Ok(json!({"points": scored_list(r?)})));
        Ok(Value::Array(results.collect::<Result<_, ApiError>>()?))
    })
    .await
}

/// The writes a batch update may hold, each also served on its own route; `apply`
/// is the one place a write's body is read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Write {
    Upsert,
    Delete,
    SetPayload,
    OverwritePayload,
    DeletePayload,
    ClearPayload,
    UpdateVectors,
    DeleteVectors,
}

impl Write {
    /// Qdrant's name of the operation in a batch update.
    /// The operation's name in a batch update (what [`Write::named`] reads).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Write::Upsert => "upsert",
            Write::Delete => "delete",
            Write::SetPayload => "set_payload",
            Write::OverwritePayload => "overwrite_payload",
            Write::DeletePayload => "delete_payload",
            Write::ClearPayload => "clear_payload",
            Write::UpdateVectors => "update_vectors",
            Write::DeleteVectors => "delete_vectors",
        }
    }

    pub(crate) fn named(name: &str) -> Option<Write> {
        Some(match name {
            "upsert" => Write::Upsert,
            "delete" => Write::Delete,
            "set_payload" => Write::SetPayload,
            "overwrite_payload" => Write::OverwritePayload,
            "delete_payload" => Write::DeletePayload,
            "clear_payload" => Write::ClearPayload,
            "update_vectors" => Write::UpdateVectors,
            "delete_vectors" => Write::DeleteVectors,
            _ => return None,
        })
    }

    pub(crate) fn apply(self, c: &Collection, body: &Value) -> Result<(), ApiError> {
        // A cluster takes the key out before the write reaches a replica.
        if body.get("shard_key").is_some_and(|k| !k.is_null()) {
            return Err(crate::shards::no_keys_alone());
        }
        match self {
            Write::Upsert => c.upsert(convert::upsert(body)?)?,
            Write::Delete => {
                let body = body_with(body, "delete points", &["points", "filter"])?;
                c.delete(convert::body_selector(body)?).map(drop)?
            }
            Write::SetPayload => {
                let body = body_with(body, "set payload", &["payload", "points", "filter", "key"])?;
                let selector = convert::body_selector(body)?;
                match body.get("key").and_then(Value::as_str) {
                    Some(key) => c.set_payload_at(selector, key, payload(body))?,
                    None => c.set_payload(selector, payload(body))?,
                }
            }
            Write::OverwritePayload => {
                let body = body_with(body, "overwrite payload", &["payload", "points", "filter"])?;
                c.overwrite_payload(convert::body_selector(body)?, payload(body))?
            }
            Write::DeletePayload => {
                let body = body_with(body, "delete payload", &["keys", "points", "filter"])?;
                let keys = strings(body, "keys")?;
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                c.delete_payload(convert::body_selector(body)?, &keys)?
            }
            Write::ClearPayload => {
                let body = body_with(body, "clear payload", &["points", "filter"])?;
                c.clear_payload(convert::body_selector(body)?)?
            }
            Write::UpdateVectors => c.update_vectors(convert::update_vectors(body)?)?,
            Write::DeleteVectors => {
                let body = body_with(body, "delete vectors", &["points", "filter", "vector"])?;
                let names = strings(body, "vector")?;
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                c.delete_vectors(convert::body_selector(body)?, &names)?
            }
        }
        Ok(())
    }
}

fn payload(body: &Value) -> Value {
    body.get("payload").cloned().unwrap_or(Value::Null)
}

async fn update_vectors(call: Call) -> Response {
    call.update(Write::UpdateVectors).await
}

async fn delete_vectors(call: Call) -> Response {
    call.update(Write::DeleteVectors).await
}

async fn set_payload(call: Call) -> Response {
    call.update(Write::SetPayload).await
}

async fn overwrite_payload(call: Call) -> Response {
    call.update(Write::OverwritePayload).await
}

async fn delete_payload(call: Call) -> Response {
    call.update(Write::DeletePayload).await
}

async fn clear_payload(call: Call) -> Response {
    call.update(Write::ClearPayload).await
}

/// `POST …/points/batch`: the operations in order, each as its own route would apply
/// it; one `UpdateResult` per operation. As in Qdrant the batch is not atomic: an
/// operation that fails stops the batch and is reported, the ones before it stay.
async fn batch_update(call: Call) -> Response {
    let (state, wait) = (call.state.clone(), call.wait);
    if let Some(cluster) = state.cluster.clone() {
        let started = Instant::now();
        let result = async {
            let body = call.body?;
            let ops = list_of(body_with(&body, "batch update", &["operations"])?, "operations")?;
            // Only the update operations a batch may name (an entry may carry others).
            for (i, op) in ops.iter().enumerate() {
                let name = op.as_object().filter(|o| o.len() == 1).and_then(|o| o.keys().next());
                match name {
                    Some(name) if Write::named(name).is_some() => {}
                    Some(name) => {
                        return Err(ApiError::bad_request(format!(
                            "operation {i}: `{name}` is not an update operation"
                        )));
                    }
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "operation {i}: must be an object with one key"
                        )));
                    }
                }
            }
            let n = ops.len();
            cluster.write(&call.name, body).await?;
            Ok(Value::Array((0..n).map(|_| update_result(&state, wait)).collect()))
        }
        .await;
        return envelope(result, started);
    }
    call.read(move |c, body| {
        let body = body_with(body, "batch update", &["operations"])?;
        let mut results = Vec::new();
        for (i, op) in list_of(body, "operations")?.iter().enumerate() {
            let bad = |why: &str| ApiError::bad_request(format!("operation {i}: {why}"));
            let o = op
                .as_object()
                .filter(|o| o.len() == 1)
                .ok_or_else(|| bad("must be an object with one key"))?;
            let (name, inner) = o.iter().next().ok_or_else(|| bad("is empty"))?;
            let write =
                Write::named(name).ok_or_else(|| bad(&format!("`{name}` is not an update operation")))?;
            write.apply(c.local("a batch update")?, inner)?;
            results.push(update_result(&state, wait));
        }
        Ok(Value::Array(results))
    })
    .await
}
