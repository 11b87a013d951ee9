//! The `braid` command: `braid serve --data DIR`, and `import`, `export`, `snapshot`,
//! `info`, `query` on a database directory.

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use braid_server::{FileConfig, Server, ServerConfig};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "braid", version, about = "Braid: a vector database for multi-model search")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve a database over Qdrant-compatible REST and gRPC.
    Serve(Box<ServeArgs>),
    /// Import points from a JSON Lines file into a collection.
    Import(cli::ImportArgs),
    /// Export a collection's points as JSON Lines.
    Export(cli::ExportArgs),
    /// Create, restore or list snapshots.
    #[command(subcommand)]
    Snapshot(cli::SnapshotCommand),
    /// Collections, counts, disk and health of a database directory.
    Info(cli::InfoArgs),
    /// Query a collection from the terminal.
    Query(cli::QueryArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// A TOML file with any of: data, snapshots_path, snapshots_store, http, grpc, api_key, read_only_api_key,
    /// jwt_rbac, tls_cert, tls_key, tls_client_ca, max_body_bytes, sync_every_write, log_retention_secs,
    /// max_concurrent_requests, max_connections, idle_timeout_secs, header_timeout_secs, p2p, uri, bootstrap.
    #[arg(long, env = "BRAID_CONFIG")]
    config: Option<PathBuf>,
    /// The database directory (created if missing).
    #[arg(long, env = "BRAID_DATA")]
    data: Option<PathBuf>,
    /// Where snapshots are kept [default: DATA/snapshots].
    #[arg(long, env = "BRAID_SNAPSHOTS_PATH")]
    snapshots_path: Option<PathBuf>,
    /// Keep snapshots in an object store instead (s3://bucket/prefix, gs://bucket/prefix,
    /// az://container/prefix, file:///dir), credentials from AWS_*/GOOGLE_*/AZURE_*
    /// variables; the snapshots path stages files on their way.
    #[arg(long, env = "BRAID_SNAPSHOTS_STORE")]
    snapshots_store: Option<String>,
    /// REST address [default: 127.0.0.1:6333].
    #[arg(long, env = "BRAID_HTTP")]
    http: Option<SocketAddr>,
    /// gRPC address [default: 127.0.0.1:6334].
    #[arg(long, env = "BRAID_GRPC")]
    grpc: Option<SocketAddr>,
    /// Require this key on every request (`api-key` header or `Authorization: Bearer`).
    #[arg(long, env = "BRAID_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// A key that allows reads only.
    #[arg(long, env = "BRAID_READ_ONLY_API_KEY", hide_env_values = true)]
    read_only_api_key: Option<String>,
    /// Accept JWTs signed with the API key (HS256) carrying Qdrant's `access` claim.
    #[arg(long, env = "BRAID_JWT_RBAC")]
    jwt_rbac: bool,
    /// The largest request body in bytes [default: 33554432].
    #[arg(long, env = "BRAID_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Sync every write to disk before acknowledging it.
    #[arg(long, env = "BRAID_SYNC_EVERY_WRITE")]
    sync_every_write: bool,
    /// Keep each collection's logs this many seconds after a checkpoint replaces them,
    /// so that a snapshot can be recovered to any moment since (`until` in a recovery).
    #[arg(long, env = "BRAID_LOG_RETENTION_SECS")]
    log_retention_secs: Option<u64>,
    /// Requests served at once, both protocols together; more wait [default: 32].
    #[arg(long, env = "BRAID_MAX_CONCURRENT_REQUESTS")]
    max_concurrent_requests: Option<usize>,
    /// Open client connections, both protocols together; more wait [default: 512].
    #[arg(long, env = "BRAID_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Close a connection idle (no byte either way) this many seconds [default: 300].
    #[arg(long, env = "BRAID_IDLE_TIMEOUT_SECS")]
    idle_timeout_secs: Option<u64>,
    /// A REST client must send a request's whole header within this many seconds
    /// [default: 30].
    #[arg(long, env = "BRAID_HEADER_TIMEOUT_SECS")]
    header_timeout_secs: Option<u64>,
    /// TLS certificate chain (PEM): with --tls-key, both ports serve TLS only.
    #[arg(long, env = "BRAID_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "BRAID_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM).
    #[arg(long, env = "BRAID_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Run as a node of a cluster, serving peers on this address (Qdrant's p2p port,
    /// e.g. 0.0.0.0:6335); without it the server runs alone.
    #[arg(long, env = "BRAID_P2P")]
    p2p: Option<SocketAddr>,
    /// How other peers reach this one, e.g. http://10.0.0.1:6335 [default: http://P2P].
    #[arg(long, env = "BRAID_URI", requires = "p2p")]
    uri: Option<String>,
    /// Join the cluster of the peer at this URI (its p2p address) on first start.
    #[arg(long, env = "BRAID_BOOTSTRAP", requires = "p2p")]
    bootstrap: Option<String>,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(clap::Args, Debug)]
struct LogArgs {
    /// What to log: error, warn, info (each request's line), debug, trace, or a
    /// `tracing` filter such as `warn,braid::request=info` [default: RUST_LOG, else info].
    #[arg(long, env = "BRAID_LOG_LEVEL")]
    log_level: Option<String>,
    /// `text` (for people) or `json` (one object per line, for log pipelines).
    #[arg(long, env = "BRAID_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// Command line and `BRAID_*` variables (clap reads both) over the file over defaults.
fn resolve(args: ServeArgs) -> Result<ServerConfig, String> {
    let file = match &args.config {
        Some(path) => FileConfig::read(path)?,
        None => FileConfig::default(),
    };
    let data = args.data.or(file.data).ok_or("a data directory is required: --data DIR (or BRAID_DATA)")?;
    let mut config = ServerConfig::new(data);
    if let Some(p) = args.snapshots_path.or(file.snapshots_path) {
        config.snapshots = p;
    }
    config.snapshots_store = args.snapshots_store.or(file.snapshots_store);
    if let Some(a) = args.http.or(file.http) {
        config.http = a;
    }
    if let Some(a) = args.grpc.or(file.grpc) {
        config.grpc = a;
    }
    config.api_key = args.api_key.or(file.api_key);
    config.read_only_api_key = args.read_only_api_key.or(file.read_only_api_key);
    config.jwt_rbac = args.jwt_rbac || file.jwt_rbac.unwrap_or(false);
    if let Some(n) = args.max_body_bytes.or(file.max_body_bytes) {
        config.max_body_bytes = n;
    }
    config.sync_every_write = args.sync_every_write || file.sync_every_write.unwrap_or(false);
    config.log_retention =
        args.log_retention_secs.or(file.log_retention_secs).map(std::time::Duration::from_secs);
    if let Some(n) = args.max_concurrent_requests.or(file.max_concurrent_requests) {
        config.max_concurrent_requests = n;
    }
    if let Some(n) = args.max_connections.or(file.max_connections) {
        config.max_connections = n;
    }
    if let Some(s) = args.idle_timeout_secs.or(file.idle_timeout_secs) {
        config.idle_timeout = std::time::Duration::from_secs(s);
    }
    if let Some(s) = args.header_timeout_secs.or(file.header_timeout_secs) {
        config.header_timeout = std::time::Duration::from_secs(s);
    }
    config.tls = match (args.tls_cert.or(file.tls_cert), args.tls_key.or(file.tls_key)) {
        (Some(cert), Some(key)) => {
            Some(braid_server::TlsConfig { cert, key, client_ca: args.tls_client_ca.or(file.tls_client_ca) })
        }
        (None, None) if args.tls_client_ca.is_none() && file.tls_client_ca.is_none() => None,
        _ => return Err("TLS needs both a certificate and a key (tls_cert and tls_key)".into()),
    };
    let p2p = args.p2p.or(file.p2p);
    let (uri, bootstrap) = (args.uri.or(file.uri), args.bootstrap.or(file.bootstrap));
    config.cluster = match p2p {
        Some(p2p) => {
            Some(braid_server::ClusterConfig { uri, bootstrap, ..braid_server::ClusterConfig::new(p2p) })
        }
        None if uri.is_some() || bootstrap.is_some() => {
            return Err(
                "uri and bootstrap are cluster settings: give p2p too (the address peers reach this node on)"
                    .into(),
            );
        }
        None => None,
    };
    Ok(config)
}

/// Logs to stderr at `--log-level` (else `RUST_LOG`, else `info`), as text or JSON lines.
fn init_logging(args: &LogArgs) -> Result<(), String> {
    let filter = match &args.log_level {
        Some(level) => tracing_subscriber::EnvFilter::try_new(level)
            .map_err(|e| format!("--log-level `{level}`: {e}"))?,
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match Cli::parse().command {
        Command::Serve(args) => *args,
        other => return finish(run_tool(other)),
    };
    let result = init_logging(&args.log).and_then(|()| resolve(args)).and_then(|config| {
        let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let server = Server::start(config).await.map_err(|e| e.to_string())?;
            eprintln!("braid: REST on http://{}, gRPC on {}", server.http_addr(), server.grpc_addr());
            if let (Some(p2p), Some(uri)) = (server.p2p_addr(), server.cluster_uri()) {
                eprintln!("braid: cluster peer on {p2p}, reached at {uri}");
            }
            server.wait_for_signal().await.map_err(|e| e.to_string())?;
            eprintln!("braid: flushed and stopped");
            Ok(())
        })
    });
    finish(result)
}

fn run_tool(command: Command) -> Result<(), String> {
    match command {
        Command::Serve(_) => Err("serve is not a tool".into()),
        Command::Import(a) => cli::import(a),
        Command::Export(a) => cli::export(a),
        Command::Snapshot(c) => cli::snapshot(c),
        Command::Info(a) => cli::info(a),
        Command::Query(a) => cli::query(a),
    }
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("braid: {e}");
            ExitCode::FAILURE
        }
    }
}
