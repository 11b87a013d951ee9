//! `cargo xtask bench server`: search throughput and p50/p99 latency through REST and
//! gRPC at 1, 8 and 64 concurrent connections, beside the same searches through the
//! embedded facade in the same run. n = 100,000 384-d Cosine points by default
//! (`-- --n N`); under `cargo test` (no `--bench`) 2,000 points and a few queries.
//!
//! The served searches come from a second process (this binary again, with `--client
//! rest|grpc`), so that the server process does only the server's work; the embedded
//! searches run on threads of the server's process, as an application would run them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use braid::{CollectionConfig, Distance, PointStruct, SearchRequest, VectorParams};
use braid_server::{Server, ServerConfig};
use braid_testkit::Rng;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::SearchPoints;
use serde_json::json;

const DIM: usize = 384;

struct Run {
    qps: f64,
    p50: Duration,
    p99: Duration,
}

/// CPU time this process has used, all threads, user and system, in seconds (Linux's
/// `/proc/self/stat`, in clock ticks of 1/100 s; 0 where there is no such file). The
/// load generator is another process, so around a served run this is the server's own
/// work.
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces:
    // utime and stime are the 14th and 15th fields of the line, 12th and 13th here.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|t| t.parse().ok()).collect();
    ticks.iter().sum::<f64>() / 100.0
}

fn summarise(mut latencies: Vec<Duration>, wall: Duration) -> Run {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Run { qps: latencies.len() as f64 / wall.as_secs_f64(), p50: at(0.50), p99: at(0.99) }
}

/// `conns` tasks, each with its own client from `connect`, each running `each`
/// searches through `search`; every latency, and the wall time.
async fn over_connections<C, F, Fut>(
    conns: usize,
    each: usize,
    queries: &Arc<Vec<Vec<f32>>>,
    connect: impl Fn() -> C + Clone + Send + 'static,
    search: F,
) -> Run
where
    C: Send + Sync + 'static,
    F: Fn(Arc<C>, Vec<f32>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|w| {
            let (qs, connect, search) = (queries.clone(), connect.clone(), search.clone());
            tokio::spawn(async move {
                let client = Arc::new(connect());
                let mut lat = Vec::with_capacity(each);
                for i in 0..each {
                    let q = qs[(w * each + i) % qs.len()].clone();
                    let t = Instant::now();
                    search(client.clone(), q).await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    summarise(lat, start.elapsed())
}

/// The query vectors, the same in the server's and the client's process.
fn queries() -> Vec<Vec<f32>> {
    let topics = topics();
    let mut rng = Rng::new(3);
    (0..1_000).map(|q| rng.around(&topics[q % 100], 0.4)).collect()
}

/// The centres the points and queries are drawn around.
fn topics() -> Vec<Vec<f32>> {
    let mut rng = Rng::new(1);
    (0..100).map(|_| rng.vector(DIM)).collect()
}

/// The load generator's process: `--client rest|grpc --url U --conns C --each E`;
/// prints one `{"client": {qps, p50_us, p99_us}}` line.
async fn client(args: &braid_testkit::BenchArgs, protocol: &str) {
    let arg = |name: &str| args.value(name).unwrap_or_else(|| panic!("{name} is required with --client"));
    let url = arg("--url");
    let conns: usize = arg("--conns").parse().expect("--conns N");
    let each: usize = arg("--each").parse().expect("--each N");
    let queries = Arc::new(queries());
    let run = match protocol {
        "rest" => {
            over_connections(conns, each, &queries, reqwest::Client::new, move |client, q| {
                let url = url.clone();
                async move {
                    let body = json!({"vector": {"name": "text", "vector": q}, "limit": 10});
                    let r: serde_json::Value =
                        client.post(&url).json(&body).send().await.expect("send").json().await.expect("json");
                    assert_eq!(r["result"].as_array().map(Vec::len), Some(10));
                }
            })
            .await
        }
        "grpc" => {
            let connect = move || Qdrant::from_url(&url).skip_compatibility_check().build().expect("client");
            over_connections(conns, each, &queries, connect, |client, q| async move {
                let request = SearchPoints {
                    collection_name: "bench".into(),
                    vector: q,
                    vector_name: Some("text".into()),
                    limit: 10,
                    ..Default::default()
                };
                assert_eq!(client.search_points(request).await.expect("search").result.len(), 10);
            })
            .await
        }
        other => panic!("--client rest|grpc, not `{other}`"),
    };
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("{}", json!({"client": {"qps": run.qps, "p50_us": us(run.p50), "p99_us": us(run.p99)}}));
}

/// Runs the load generator as a second process and reads its figures.
async fn served(protocol: &str, url: &str, conns: usize, each: usize) -> Run {
    let exe = std::env::current_exe().expect("this bench's path");
    let args =
        ["--client", protocol, "--url", url, "--conns", &conns.to_string(), "--each", &each.to_string()]
            .map(str::to_string);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe).args(args).stderr(std::process::Stdio::inherit()).output()
    })
    .await
    .expect("the client's waiter")
    .expect("start the client process");
    assert!(out.status.success(), "the {protocol} client failed: {}", out.status);
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok().filter(|v| v.get("client").is_some()))
        .unwrap_or_else(|| panic!("the {protocol} client printed no figures"));
    let us = |k: &str| Duration::from_secs_f64(line["client"][k].as_f64().expect("a figure") / 1e6);
    Run { qps: line["client"]["qps"].as_f64().expect("qps"), p50: us("p50_us"), p99: us("p99_us") }
}

fn main() {
    let args = braid_testkit::BenchArgs::from_env();
    if let Some(protocol) = args.value("--client") {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        runtime.block_on(client(&args, &protocol));
        return;
    }
    let (bench, n) = (args.bench, args.n(100_000, 2_000));
    let per_config = if bench { 4_000 } else { 64 };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run(n, per_config));
}

async fn run(n: usize, per_config: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServerConfig::new(dir.path());
    config.http = "127.0.0.1:0".parse().expect("addr");
    config.grpc = "127.0.0.1:0".parse().expect("addr");
    let server = Server::start(config).await.expect("server");
    let db = server.database().clone();
    let collection = db
        .create_collection(
            "bench",
            CollectionConfig::new().vector("text", VectorParams::new(DIM, Distance::Cosine)),
        )
        .expect("collection");
    let topics = topics();
    let t = Instant::now();
    let c = collection.clone();
    let centres = topics.clone();
    tokio::task::spawn_blocking(move || {
        let mut rng = Rng::new(2);
        for start in (0..n).step_by(2_000) {
            let batch: Vec<PointStruct> = (start..(start + 2_000).min(n))
                .map(|i| PointStruct::new(i as u64).vector("text", rng.around(&centres[i % 100], 0.6)))
                .collect();
            c.upsert(batch).expect("upsert");
        }
    })
    .await
    .expect("ingest");
    println!(
        "server bench: {n} points, {DIM}-d Cosine, ingested in {:.1} s; limit 10, default ef",
        t.elapsed().as_secs_f64()
    );
    let queries = Arc::new(queries());

    let http = format!("http://{}/collections/bench/points/search", server.http_addr());
    let grpc = format!("http://{}", server.grpc_addr());
    println!();
    println!(
        "| connections | embedded QPS | REST QPS (ratio) | gRPC QPS (ratio) | embedded p50 / p99 µs | REST p50 / p99 µs | gRPC p50 / p99 µs | CPU µs per search: embedded / REST / gRPC (ratios) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for conns in [1usize, 8, 64] {
        let each = per_config.div_ceil(conns);

        // Embedded: one OS thread per "connection".
        let cpu = process_cpu_s();
        let start = Instant::now();
        let handles: Vec<_> = (0..conns)
            .map(|w| {
                let (c, qs) = (collection.clone(), queries.clone());
                std::thread::spawn(move || {
                    (0..each)
                        .map(|i| {
                            let q = &qs[(w * each + i) % qs.len()];
                            let t = Instant::now();
                            let hits =
                                c.search(&SearchRequest::new("text", q.clone()).limit(10)).expect("search");
                            assert_eq!(hits.len(), 10);
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let lat: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().expect("worker")).collect();
        let embedded = summarise(lat, start.elapsed());
        let searches = (conns * each) as f64;
        let embedded_cpu = (process_cpu_s() - cpu) / searches;

        // REST (one HTTP client, one connection, per task) and gRPC (one official
        // client per task), each from the load generator's process.
        let cpu = process_cpu_s();
        let rest = served("rest", &http, conns, each).await;
        let rest_cpu = (process_cpu_s() - cpu) / searches;
        let cpu = process_cpu_s();
        let grpc_run = served("grpc", &grpc, conns, each).await;
        let grpc_cpu = (process_cpu_s() - cpu) / searches;

        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "| {conns} | {:.0} | {:.0} ({:.2}) | {:.0} ({:.2}) | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} / {:.0} / {:.0} ({:.2} / {:.2}) |",
            embedded.qps,
            rest.qps,
            rest.qps / embedded.qps,
            grpc_run.qps,
            grpc_run.qps / embedded.qps,
            us(embedded.p50),
            us(embedded.p99),
            us(rest.p50),
            us(rest.p99),
            us(grpc_run.p50),
            us(grpc_run.p99),
            embedded_cpu * 1e6,
            rest_cpu * 1e6,
            grpc_cpu * 1e6,
            rest_cpu / embedded_cpu,
            grpc_cpu / embedded_cpu
        );
    }
    server.shutdown().await.expect("shutdown");
}
