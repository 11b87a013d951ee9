//! `braid serve`: a Braid database behind Qdrant's REST API (axum) and gRPC API (tonic),
//! so that existing Qdrant clients work unchanged against it.
//!
//! Both protocols map requests onto the same [`braid::Database`]; no logic lives in the
//! handlers beyond that mapping. `docs/server.md` lists what is served, call by call.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = braid_server::ServerConfig::new("/var/lib/braid");
//! let server = braid_server::Server::start(config).await?;
//! println!("REST on {}, gRPC on {}", server.http_addr(), server.grpc_addr());
//! server.wait_for_signal().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod admin;
mod auth;
mod cluster;
mod config;
mod conn;
mod convert;
mod error;
mod keys;
mod mapping;
mod metrics;
mod replica;
mod rest;
mod rest_snapshots;
mod server_error;
mod shards;
mod snapshot_store;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use braid::{Database, Durability, StorageOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use braid_cluster::Timing;
pub use cluster::ClusterConfig;
pub use config::{FileConfig, ServerConfig};
pub use error::{ApiError, ErrorKind};
pub use replica::CollectionReplica;
pub use server_error::ServerError;
pub use snapshot_store::SnapshotStore;
pub use tls::TlsConfig;

/// How often the server syncs every collection's log, so that acknowledged writes are
/// durable within this interval even without `sync_every_write`.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// How long a stopping server waits for requests in flight before it drops them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// One point in REST's JSON form (`{"id", "vector", "payload"}`), as `braid import`
/// reads it from JSONL.
pub fn point_from_json(v: &serde_json::Value) -> Result<braid::PointStruct, ApiError> {
    convert::point(v)
}

/// A record in REST's JSON form, as `braid export` writes it (and `braid import` reads
/// it back).
pub fn record_to_json(r: braid::Record) -> serde_json::Value {
    convert::record_json(r)
}

/// A point in REST's upsert JSON (what [`point_from_json`] reads back).
pub fn point_to_json(p: &braid::PointStruct) -> serde_json::Value {
    convert::point_json(p)
}

/// A collection configuration in REST's create-collection JSON, as `braid import
/// --create` takes it.
pub fn collection_config_from_json(v: &serde_json::Value) -> Result<braid::CollectionConfig, ApiError> {
    convert::collection_config(v)
}

/// Runs a query written as REST's `POST /points/query` body on `collection` and
/// answers with REST's result (`{"points": [...]}`), as `braid query` does.
pub fn query_json(
    collection: &braid::Collection,
    body: &serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    let hits = collection.query(convert::query_points(body)?)?;
    Ok(serde_json::json!({"points": hits.into_iter().map(convert::scored_json).collect::<Vec<_>>()}))
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    db: Database,
    http: SocketAddr,
    grpc: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<Result<(), ServerError>>)>,
    cluster: Option<Arc<cluster::Cluster>>,
}

impl Server {
    /// Opens the database and starts both listeners (port 0 picks a free port; see
    /// [`Server::http_addr`]).
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        let refuse = |why: &str| Err(ServerError::Config { why: why.to_string() });
        if config.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return refuse("the API key is empty: give a non-empty key, or none to serve without one");
        }
        if config.read_only_api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return refuse("the read-only API key is empty: give a non-empty key, or none");
        }
        if config.read_only_api_key.is_some() && config.read_only_api_key == config.api_key {
            return refuse("the read-only API key equals the API key: give them different values");
        }
        if config.jwt_rbac && config.api_key.is_none() {
            return refuse("jwt_rbac needs an api_key: tokens are signed with it");
        }
        if config.max_concurrent_requests == 0 || config.max_connections == 0 {
            return refuse("max_concurrent_requests and max_connections must be at least 1");
        }
        if config.idle_timeout.is_zero() || config.header_timeout.is_zero() {
            return refuse("idle_timeout_secs and header_timeout_secs must be at least 1");
        }
        let snapshots = match &config.snapshots_store {
            None => SnapshotStore::local(&config.snapshots),
            Some(url) => match SnapshotStore::object_store(&config.snapshots, url) {
                Ok(store) => store,
                Err(why) => return refuse(&why),
            },
        };
        let durability = if config.sync_every_write { Durability::EveryWrite } else { Durability::OnFlush };
        let options =
            StorageOptions { durability, log_retention: config.log_retention, ..StorageOptions::default() };
        let data = config.data.clone();
        let db = tokio::task::spawn_blocking(move || Database::open_with(&data, options))
            .await
            .map_err(ServerError::task("opening the database"))?
            .map_err(|source| ServerError::Open { dir: config.data.clone(), source })?;
        // The peer id cluster information reports, kept where a cluster node keeps it.
        let cluster_dir = config.data.join("cluster");
        let peer_id = std::fs::create_dir_all(&cluster_dir)
            .map_err(|e| braid_cluster::ClusterError::Io { path: cluster_dir.clone(), source: e })
            .and_then(|()| braid_cluster::peer_id(&cluster_dir))
            .map_err(|e| ServerError::Config {
                why: format!("the peer id in {}: {e}", cluster_dir.display()),
            })?;
        let (shutdown, _) = watch::channel(false);
        let cluster = match &config.cluster {
            None => None,
            Some(c) => Some(Arc::new(cluster::Cluster::start(db.clone(), &config.data, c).await?)),
        };
        let state = rest::AppState {
            db: db.clone(),
            snapshots: Arc::new(snapshots),
            metrics: Arc::new(metrics::Metrics::new(config.request_metrics)),
            keys: auth::Keys::new(
                config.api_key.as_deref(),
                config.read_only_api_key.as_deref(),
                config.jwt_rbac,
            ),
            operations: Arc::new(AtomicU64::new(0)),
            reported: convert::Reported::new(&options, SYNC_INTERVAL),
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_requests)),
            peer_id,
            cluster: cluster.clone(),
        };
        let bind = |addr: SocketAddr| async move {
            let listener = tokio::net::TcpListener::bind(addr).await;
            let listener = listener.map_err(|source| ServerError::Bind { addr, source })?;
            let local = listener.local_addr().map_err(|source| ServerError::Bind { addr, source })?;
            Ok::<_, ServerError>((listener, local))
        };
        let (http_listener, http) = bind(config.http).await?;
        let (grpc_listener, grpc) = bind(config.grpc).await?;

        let mut tasks = Vec::new();
        let app = rest::router(state.clone(), config.max_body_bytes);
        // Open connections over both protocols, each with Nagle off (no delayed-ACK
        // stalls on small responses).
        let tls = |alpn: &[&[u8]]| config.tls.as_ref().map(|t| tls::acceptor(t, alpn)).transpose();
        let connections = conn::Limits {
            cap: Arc::new(tokio::sync::Semaphore::new(config.max_connections)),
            idle: config.idle_timeout,
            tls: tls(&[b"h2", b"http/1.1"])?,
            handshake: config.header_timeout,
        };
        // gRPC speaks HTTP/2 only.
        let grpc_connections = conn::Limits { tls: tls(&[b"h2"])?, ..connections.clone() };
        let mut stop = shutdown.subscribe();
        let limits = connections.clone();
        let header_timeout = config.header_timeout;
        tasks.push((
            "the REST server",
            tokio::spawn(async move {
                conn::serve_http(http_listener, limits, app, header_timeout, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
                Ok(())
            }),
        ));
        let mut stop = shutdown.subscribe();
        let grpc_server =
            grpc::serve(grpc_listener, grpc_connections, state, config.max_body_bytes, async move {
                let _ = stop.wait_for(|s| *s).await;
            });
        tasks.push((
            "the gRPC server",
            tokio::spawn(async move {
                grpc_server.await.map_err(|why| ServerError::Task { what: "the gRPC server", why })
            }),
        ));
        let mut stop = shutdown.subscribe();
        let syncing = db.clone();
        tasks.push(("the log sync", tokio::spawn(async move {
            let mut tick = tokio::time::interval(SYNC_INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        // A failure is logged and kept by the collection (its log is
                        // poisoned: writes are refused, `/readyz` fails) until reopen.
                        let db = syncing.clone();
                        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || db.sync()).await {
                            tracing::error!(error = %e, "log sync failed; writes to that collection are refused");
                        }
                    }
                    _ = stop.changed() => return Ok(()),
                }
            }
        })));
        if let Some(cluster) = &cluster {
            let (cluster, stop) = (cluster.clone(), shutdown.subscribe());
            tasks.push((
                "the cluster watch",
                tokio::spawn(async move {
                    cluster.watch(stop).await;
                    Ok(())
                }),
            ));
        }
        Ok(Server { db, http, grpc, shutdown, tasks, cluster })
    }

    /// Where REST listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// Where gRPC listens.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    /// How other peers reach this server's cluster node (its `--uri`), when it runs
    /// as one.
    pub fn cluster_uri(&self) -> Option<&str> {
        self.cluster.as_deref().map(cluster::Cluster::uri)
    }

    /// Where this server's cluster node listens for its peers, when it runs as one.
    pub fn p2p_addr(&self) -> Option<SocketAddr> {
        self.cluster.as_deref().map(cluster::Cluster::p2p_addr)
    }

    /// The database served.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Stops accepting requests, lets the ones in flight finish, then flushes every
    /// collection (a checkpoint) so the next start loads rather than replays.
    ///
    /// Requests still in flight after [`SHUTDOWN_GRACE`] (a client that sent half a
    /// request and stopped, a connection that never closes) are dropped, so a stop
    /// signal always stops the server.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for (what, mut task) in self.tasks {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(joined) => joined.map_err(ServerError::task(what))??,
                Err(_) => {
                    tracing::warn!("connections still open after the grace period; closing them");
                    task.abort();
                }
            }
        }
        if let Some(cluster) = &self.cluster {
            cluster.shutdown().await.map_err(|e| ServerError::Cluster(e.to_string()))?;
        }
        let db = self.db;
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(ServerError::task("the final flush"))?
            .map_err(ServerError::Flush)
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn wait_for_signal(self) -> Result<(), ServerError> {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(ServerError::Signal)?;
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        ctrl_c.await.map_err(ServerError::Signal)?;
        self.shutdown().await
    }
}

mod grpc;
