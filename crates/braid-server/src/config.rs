//! Server settings: command line, then `BRAID_*` environment variables, then a TOML
//! file, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything `braid serve` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// The database directory.
    pub data: PathBuf,
    /// Where snapshots are written, listed and recovered from (default
    /// `<data>/snapshots`): `<collection>/` per collection, full snapshots at the top.
    pub snapshots: PathBuf,
    /// Keep snapshots in this object store instead (`s3://bucket/prefix`, `gs://…`,
    /// `az://…`, `file:///…`), staging them in `snapshots` (default: none).
    pub snapshots_store: Option<String>,
    /// REST address (default `127.0.0.1:6333`, Qdrant's port; loopback only).
    pub http: SocketAddr,
    /// gRPC address (default `127.0.0.1:6334`).
    pub grpc: SocketAddr,
    /// When set, every request must carry it (`api-key` header or `Authorization: Bearer`).
    pub api_key: Option<String>,
    /// A second key that allows reads only (Qdrant's `read_only_api_key`).
    pub read_only_api_key: Option<String>,
    /// Accept JWTs signed (HS256) with `api_key` carrying Qdrant's `access` claim.
    pub jwt_rbac: bool,
    /// The largest request body, in bytes (default 32 MiB, Qdrant's default).
    pub max_body_bytes: usize,
    /// Sync every write before acknowledging it (default: durable at flush).
    pub sync_every_write: bool,
    /// Keep each collection's logs this long after a checkpoint, for point-in-time
    /// recovery (default: not kept).
    pub log_retention: Option<std::time::Duration>,
    /// Requests served at once over both protocols (default 32); more wait. With
    /// `max_body_bytes` it bounds the memory that request bodies can take.
    pub max_concurrent_requests: usize,
    /// Open client connections over both protocols (default 512); more wait in the
    /// kernel's backlog until one closes, so idle sockets cannot exhaust the process's
    /// file descriptors.
    pub max_connections: usize,
    /// A connection with no byte read or written for this long is closed (default
    /// 300 s), so idle sockets give their slots back.
    pub idle_timeout: std::time::Duration,
    /// A REST client must send a request's whole header within this long (default
    /// 30 s, hyper's); a TLS handshake (either protocol) must finish within it too.
    pub header_timeout: std::time::Duration,
    /// TLS on both listeners (default: none, plain TCP).
    pub tls: Option<crate::TlsConfig>,
    /// Count requests for `/metrics` and `/telemetry` and log a line per request
    /// (default on; collection figures are reported either way).
    pub request_metrics: bool,
    /// Run as a node of a cluster (default: alone, distributed mode off).
    pub cluster: Option<crate::ClusterConfig>,
}

impl ServerConfig {
    /// Defaults for a database in `data`.
    pub fn new(data: impl Into<PathBuf>) -> ServerConfig {
        let data: PathBuf = data.into();
        ServerConfig {
            snapshots: data.join("snapshots"),
            snapshots_store: None,
            data,
            http: SocketAddr::from(([127, 0, 0, 1], 6333)),
            grpc: SocketAddr::from(([127, 0, 0, 1], 6334)),
            api_key: None,
            read_only_api_key: None,
            jwt_rbac: false,
            max_body_bytes: 32 << 20,
            sync_every_write: false,
            log_retention: None,
            max_concurrent_requests: 32,
            max_connections: 512,
            idle_timeout: std::time::Duration::from_secs(300),
            header_timeout: std::time::Duration::from_secs(30),
            tls: None,
            request_metrics: true,
            cluster: None,
        }
    }
}

/// The TOML file: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The database directory.
    pub data: Option<PathBuf>,
    /// The snapshots directory.
    pub snapshots_path: Option<PathBuf>,
    /// The object store snapshots are kept in.
    pub snapshots_store: Option<String>,
    /// REST address.
    pub http: Option<SocketAddr>,
    /// gRPC address.
    pub grpc: Option<SocketAddr>,
    /// API key.
    pub api_key: Option<String>,
    /// Read-only API key.
    pub read_only_api_key: Option<String>,
    /// Accept JWTs signed with the API key.
    pub jwt_rbac: Option<bool>,
    /// Body size limit in bytes.
    pub max_body_bytes: Option<usize>,
    /// Sync every write.
    pub sync_every_write: Option<bool>,
    /// Seconds to keep logs for point-in-time recovery.
    pub log_retention_secs: Option<u64>,
    /// Requests served at once.
    pub max_concurrent_requests: Option<usize>,
    /// Open client connections.
    pub max_connections: Option<usize>,
    /// Seconds a connection may stay idle.
    pub idle_timeout_secs: Option<u64>,
    /// Seconds a REST client has to send a request's header.
    pub header_timeout_secs: Option<u64>,
    /// TLS certificate chain (PEM); with `tls_key`, serves TLS on both ports.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) whose certificates clients must present.
    pub tls_client_ca: Option<PathBuf>,
    /// The p2p address: run as a cluster node.
    pub p2p: Option<SocketAddr>,
    /// This node's URI for its peers.
    pub uri: Option<String>,
    /// A peer to join through.
    pub bootstrap: Option<String>,
}

impl FileConfig {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}
