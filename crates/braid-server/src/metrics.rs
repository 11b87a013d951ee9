//! Request accounting for `/metrics` (Prometheus / OpenMetrics text) and `/telemetry`
//! (Qdrant's shape), plus the request log line.
//!
//! Every answered request, of either protocol, passes through [`Metrics::observe`]:
//! one short mutex-held map update and one histogram observation. Collection figures
//! (points, vectors, bytes, state, failures) are read from the database when scraped,
//! so they cost nothing between scrapes. `docs/operations.md` lists every metric.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use braid::Database;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

/// Which protocol a request came by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Protocol {
    Rest,
    Grpc,
}

/// One endpoint's figures: its latency histogram (shared with the registry's family)
/// and counts and times per status (HTTP status or gRPC code).
#[derive(Debug)]
struct Endpoint {
    histogram: Histogram,
    statuses: Vec<(u16, Stats)>,
}

/// Per protocol: method (REST; empty for gRPC) → route or gRPC path → figures. Nested
/// so that a request looks itself up by borrowed `&str`s and allocates only the first
/// time its endpoint is seen.
type Table = HashMap<String, HashMap<String, Endpoint>>;

#[derive(Clone, Copy, Debug)]
struct Stats {
    count: u64,
    total: f64,
    min: f64,
    max: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResponseLabels {
    method: String,
    endpoint: String,
    status: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GrpcLabels {
    endpoint: String,
    status: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CollectionLabels {
    collection: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VectorLabels {
    collection: String,
    vector: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MemoryLabels {
    collection: String,
    vector: String,
    part: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TaskLabels {
    collection: String,
    task: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    collection: String,
    state: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct InfoLabels {
    name: String,
    version: String,
}

/// `POST /collections/{name}/points/search` for REST, the gRPC path as it is.
fn endpoint_name(method: &str, route: &str) -> String {
    if method.is_empty() { route.to_string() } else { format!("{method} {route}") }
}

/// The server's request accounting. Shared by both protocols.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Off: requests are neither counted nor logged.
    enabled: bool,
    started: SystemTime,
    /// Indexed by `Protocol as usize`.
    stats: Mutex<[Table; 2]>,
    rest_duration: Family<EndpointLabels, Histogram>,
    grpc_duration: Family<EndpointLabels, Histogram>,
}

fn histogram() -> Histogram {
    // 100 µs to ~13 s, doubling.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

impl Metrics {
    pub(crate) fn new(enabled: bool) -> Metrics {
        Metrics {
            enabled,
            started: SystemTime::now(),
            stats: Mutex::new([Table::new(), Table::new()]),
            rest_duration: Family::new_with_constructor(histogram),
            grpc_duration: Family::new_with_constructor(histogram),
        }
    }

    /// Are requests counted?
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Counts one answered request and logs its line. `method` is the HTTP method of a
    /// REST call (empty for gRPC), `route` its route template or the gRPC path.
    pub(crate) fn observe(
        &self,
        protocol: Protocol,
        method: &str,
        route: &str,
        status: u16,
        elapsed: Duration,
    ) {
        if !self.enabled {
            return;
        }
        let secs = elapsed.as_secs_f64();
        {
            let mut tables = self.stats.lock();
            let table = &mut tables[protocol as usize];
            if !table.get(method).is_some_and(|m| m.contains_key(route)) {
                let family = match protocol {
                    Protocol::Rest => &self.rest_duration,
                    Protocol::Grpc => &self.grpc_duration,
                };
                let labels = EndpointLabels { endpoint: endpoint_name(method, route) };
                let histogram = family.get_or_create(&labels).clone();
                let endpoint = Endpoint { histogram, statuses: Vec::new() };
                table.entry(method.to_string()).or_default().insert(route.to_string(), endpoint);
            }
            let Some(endpoint) = table.get_mut(method).and_then(|m| m.get_mut(route)) else { return };
            endpoint.histogram.observe(secs);
            let i = match endpoint.statuses.iter().position(|(s, _)| *s == status) {
                Some(i) => i,
                None => {
                    let zero = Stats { count: 0, total: 0.0, min: f64::INFINITY, max: 0.0 };
                    endpoint.statuses.push((status, zero));
                    endpoint.statuses.len() - 1
                }
            };
            let s = &mut endpoint.statuses[i].1;
            s.count += 1;
            s.total += secs;
            s.min = s.min.min(secs);
            s.max = s.max.max(secs);
        }
        let failed = match protocol {
            Protocol::Rest => status >= 500,
            Protocol::Grpc => matches!(status, 2 | 4 | 13 | 14 | 15),
        };
        let micros = elapsed.as_micros() as u64;
        if failed {
            tracing::warn!(target: "braid::request", ?protocol, method, route, status, micros, "request failed");
        } else {
            tracing::info!(target: "braid::request", ?protocol, method, route, status, micros, "request");
        }
    }

    /// Calls `f` with each (protocol, method, route, status) seen and its figures.
    fn each(&self, mut f: impl FnMut(Protocol, &str, &str, u16, &Stats)) {
        let tables = self.stats.lock();
        for (protocol, table) in [(Protocol::Rest, &tables[0]), (Protocol::Grpc, &tables[1])] {
            for (method, routes) in table {
                for (route, endpoint) in routes {
                    for (status, s) in &endpoint.statuses {
                        f(protocol, method, route, *status, s);
                    }
                }
            }
        }
    }

    /// The OpenMetrics text exposition: requests, and the database as it is now.
    pub(crate) fn render(&self, db: &Database) -> String {
        let mut registry = Registry::default();
        let info = Family::<InfoLabels, Gauge>::default();
        info.get_or_create(&InfoLabels { name: "braid".into(), version: env!("CARGO_PKG_VERSION").into() })
            .set(1);
        registry.register("app_info", "The server and its version", info);
        let uptime = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        uptime.set(self.started.elapsed().unwrap_or_default().as_secs_f64());
        registry.register("braid_uptime_seconds", "Seconds since the server started", uptime);

        let rest = Family::<ResponseLabels, Counter>::default();
        let grpc = Family::<GrpcLabels, Counter>::default();
        self.each(|protocol, method, route, status, s| {
            let status = status.to_string();
            match protocol {
                Protocol::Rest => {
                    let labels = ResponseLabels { method: method.into(), endpoint: route.into(), status };
                    rest.get_or_create(&labels).inc_by(s.count);
                }
                Protocol::Grpc => {
                    grpc.get_or_create(&GrpcLabels { endpoint: route.into(), status }).inc_by(s.count);
                }
            }
        });
        registry.register("rest_responses", "REST responses by method, endpoint and status", rest);
        registry.register(
            "rest_responses_duration_seconds",
            "REST response times",
            self.rest_duration.clone(),
        );
        registry.register("grpc_responses", "gRPC responses by method path and status code", grpc);
        registry.register(
            "grpc_responses_duration_seconds",
            "gRPC response times",
            self.grpc_duration.clone(),
        );

        let collections = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        let points = Family::<CollectionLabels, Gauge>::default();
        let vectors = Family::<VectorLabels, Gauge>::default();
        let indexed = Family::<VectorLabels, Gauge>::default();
        let disk = Family::<CollectionLabels, Gauge>::default();
        let memory = Family::<MemoryLabels, Gauge>::default();
        let dead = Family::<CollectionLabels, Gauge>::default();
        let state = Family::<StateLabels, Gauge>::default();
        let failing = Family::<TaskLabels, Gauge>::default();
        let names = db.list();
        collections.set(names.len() as i64);
        for name in &names {
            let Ok(c) = db.collection(name) else { continue };
            let i = c.info();
            let collection = || CollectionLabels { collection: name.clone() };
            points.get_or_create(&collection()).set(i.points_count as i64);
            for (space, n) in &i.vectors_count {
                vectors
                    .get_or_create(&VectorLabels { collection: name.clone(), vector: space.clone() })
                    .set(*n as i64);
            }
            for (space, n) in &i.indexed_vectors_count {
                indexed
                    .get_or_create(&VectorLabels { collection: name.clone(), vector: space.clone() })
                    .set(*n as i64);
            }
            disk.get_or_create(&collection()).set(i.disk_bytes.unwrap_or(0) as i64);
            for (space, m) in &i.memory {
                let parts = [
                    ("vectors", m.vectors - m.vectors_mapped),
                    ("vectors_mapped", m.vectors_mapped),
                    ("codes", m.codes),
                    ("graph", m.graph),
                ];
                for (part, bytes) in parts {
                    let labels =
                        MemoryLabels { collection: name.clone(), vector: space.clone(), part: part.into() };
                    memory.get_or_create(&labels).set(bytes as i64);
                }
            }
            dead.get_or_create(&collection()).set(i.dead_versions as i64);
            let now = format!("{:?}", c.state()).to_lowercase();
            for s in ["ready", "flushing", "optimizing"] {
                let labels = StateLabels { collection: name.clone(), state: s.into() };
                state.get_or_create(&labels).set(i64::from(now == s));
            }
            for task in c.failures().keys() {
                let labels =
                    TaskLabels { collection: name.clone(), task: format!("{task:?}").to_lowercase() };
                failing.get_or_create(&labels).set(1);
            }
        }
        registry.register("collections", "Collections in the database", collections);
        registry.register("collection_points", "Live points per collection", points);
        registry.register("collection_vectors", "Live vectors per collection and vector space", vectors);
        registry.register("collection_indexed_vectors", "Vectors in each space's graph", indexed);
        registry.register("collection_disk_bytes", "Bytes of each collection's files (log included)", disk);
        registry.register(
            "collection_memory_bytes",
            "Bytes each dense vector space holds: heap rows (vectors), rows mapped from files (vectors_mapped), codes and graph",
            memory,
        );
        registry.register(
            "collection_dead_versions",
            "Replaced or deleted point versions a compaction drops",
            dead,
        );
        registry.register("collection_state", "1 for what each collection is doing now", state);
        registry.register(
            "collection_background_failures",
            "1 for each background task (sync, checkpoint, compaction, verify) that failed and has not succeeded since",
            failing,
        );
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// Qdrant's `/telemetry` shape: the app, the collections (with `details_level` ≥ 1
    /// each one's figures), and requests by endpoint. `anonymize` replaces collection
    /// names by a stable hash.
    pub(crate) fn telemetry(&self, db: &Database, details_level: u32, anonymize: bool) -> Value {
        let hide = |name: &str| {
            if anonymize {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                name.hash(&mut h);
                format!("{:016x}", h.finish())
            } else {
                name.to_string()
            }
        };
        let names = db.list();
        let mut collections = json!({"number_of_collections": names.len()});
        if details_level >= 1 {
            let list: Vec<Value> = names
                .iter()
                .filter_map(|n| db.collection(n).ok())
                .map(|c| {
                    let i = c.info();
                    json!({
                        "id": hide(c.name()),
                        "points_count": i.points_count,
                        "vectors": i.vectors_count.iter().map(|(k, v)| (hide(k), json!(v))).collect::<serde_json::Map<_, _>>(),
                        "disk_bytes": i.disk_bytes,
                        "state": format!("{:?}", c.state()).to_lowercase(),
                    })
                })
                .collect();
            collections["collections"] = Value::Array(list);
        }
        let mut rest = serde_json::Map::new();
        let mut grpc = serde_json::Map::new();
        self.each(|protocol, method, route, status, s| {
            let side = if protocol == Protocol::Rest { &mut rest } else { &mut grpc };
            let entry = side.entry(endpoint_name(method, route)).or_insert_with(|| json!({}));
            entry[status.to_string()] = json!({
                "count": s.count,
                "avg_duration_micros": s.total / s.count as f64 * 1e6,
                "min_duration_micros": s.min * 1e6,
                "max_duration_micros": s.max * 1e6,
            });
        });
        let startup = chrono::DateTime::<chrono::Utc>::from(self.started).to_rfc3339();
        json!({
            "id": hide(&format!("braid-{startup}")),
            "app": {"name": "braid", "version": env!("CARGO_PKG_VERSION"), "startup": startup},
            "collections": collections,
            "requests": {"rest": {"responses": rest}, "grpc": {"responses": grpc}},
        })
    }
}

/// Counts every gRPC call (its path, and the status code from the response's
/// `grpc-status` header: a unary success carries it in the trailers instead, as 0).
#[derive(Clone, Debug)]
pub(crate) struct GrpcLayer(pub(crate) std::sync::Arc<Metrics>);

impl<S> tower::Layer<S> for GrpcLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner, metrics: self.0.clone() }
    }
}

/// [`GrpcLayer`]'s service.
#[derive(Clone, Debug)]
pub(crate) struct GrpcMetrics<S> {
    inner: S,
    metrics: std::sync::Arc<Metrics>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<tonic::codegen::http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<tonic::codegen::http::Request<B>, Response = tonic::codegen::http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<B>) -> Self::Future {
        if !self.metrics.enabled() {
            return Box::pin(self.inner.call(request));
        }
        // A `Uri` clone shares its bytes: no allocation per call.
        let uri = request.uri().clone();
        let started = std::time::Instant::now();
        let metrics = self.metrics.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            if let Ok(r) = &response {
                let status = r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                metrics.observe(Protocol::Grpc, "", uri.path(), status, started.elapsed());
            }
            response
        })
    }
}
