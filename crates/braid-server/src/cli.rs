//! `braid import | export | snapshot | info | query`: the database directory from the
//! terminal. Each opens the directory itself, so a server must not have it open (the
//! directory lock says so if one does). `docs/operations.md` has examples.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use braid::{Collection, Database, PointStruct, WithPayload, WithVectors};
use braid_server::SnapshotStore;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

/// Bad lines shown by `--skip-bad` before it only counts them.
const SHOWN_BAD_LINES: usize = 10;

#[derive(clap::Args, Debug)]
pub(crate) struct ImportArgs {
    /// The database directory.
    #[arg(long, env = "BRAID_DATA", required_unless_present = "url", conflicts_with = "url")]
    data: Option<PathBuf>,
    /// Import into a running server instead (its REST address, e.g. http://localhost:6333).
    #[arg(long)]
    url: Option<String>,
    /// The server's API key (or a JWT), with --url.
    #[arg(long, env = "BRAID_API_KEY", requires = "url")]
    api_key: Option<String>,
    /// The collection to import into.
    #[arg(long)]
    collection: String,
    /// Create the collection if missing, with this configuration (REST's create-collection
    /// JSON, e.g. '{"vectors": {"size": 384, "distance": "Cosine"}}').
    #[arg(long)]
    create: Option<String>,
    /// Points per write.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Skip bad lines (reported) and import the good ones; without it a bad line stops the
    /// import before anything is written.
    #[arg(long)]
    skip_bad: bool,
    /// Skip points whose id is already in the collection (to resume an interrupted import).
    #[arg(long)]
    resume: bool,
    /// A matrix of vectors for space SPACE, one row per point (NumPy `.npy`, 2-D, float32
    /// or float64); repeat for several spaces. FILE then gives each row's id and
    /// payload, line for line ({"id", "payload"}; without it, or without an "id", a
    /// row's id is its number from 0).
    #[arg(long = "npy", value_name = "SPACE=FILE")]
    npy: Vec<String>,
    /// JSON Lines, one point per line as REST writes it: {"id", "vector", "payload"}
    /// (with --npy: ids and payloads, optional).
    #[arg(required_unless_present = "npy")]
    file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ExportArgs {
    /// The database directory.
    #[arg(long, env = "BRAID_DATA")]
    data: PathBuf,
    /// The collection (or alias) to export.
    #[arg(long)]
    collection: String,
    /// Where to write the JSON Lines (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum SnapshotCommand {
    /// Write a snapshot of one collection (--collection) or of the whole database.
    Create {
        #[arg(long, env = "BRAID_DATA")]
        data: PathBuf,
        #[arg(long)]
        collection: Option<String>,
        /// The directory to write it in [default: DATA/snapshots, /COLLECTION for one].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write an incremental snapshot: only what changed since this full snapshot
        /// of the collection, in the same directory (needs --collection).
        #[arg(long, requires = "collection")]
        base: Option<String>,
        /// Keep snapshots in this object store (s3://bucket/prefix, gs://…, az://…,
        /// file:///dir) as `braid serve --snapshots-store` does.
        #[arg(long, env = "BRAID_SNAPSHOTS_STORE", conflicts_with = "out")]
        store: Option<String>,
    },
    /// Restore a snapshot: a collection snapshot into --collection, a database snapshot
    /// (no --collection) over the collections it holds.
    Restore {
        #[arg(long, env = "BRAID_DATA")]
        data: PathBuf,
        #[arg(long)]
        collection: Option<String>,
        /// SHA-256 the file must have.
        #[arg(long)]
        checksum: Option<String>,
        /// Point-in-time recovery: bring the collection snapshot forward to this moment
        /// (RFC 3339, e.g. 2026-12-01T10:30:00Z) with the collection's retained logs.
        #[arg(long, requires = "collection")]
        until: Option<String>,
        /// The object store FILE may be in: a FILE starting with its URL is read from it.
        #[arg(long, env = "BRAID_SNAPSHOTS_STORE")]
        store: Option<String>,
        file: PathBuf,
    },
    /// List the snapshots of one collection (--collection) or the database's.
    List {
        #[arg(long, env = "BRAID_DATA")]
        data: PathBuf,
        #[arg(long)]
        collection: Option<String>,
        /// The directory they are in [default: DATA/snapshots, /COLLECTION for one].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Keep snapshots in this object store (s3://bucket/prefix, gs://…, az://…,
        /// file:///dir) as `braid serve --snapshots-store` does.
        #[arg(long, env = "BRAID_SNAPSHOTS_STORE", conflicts_with = "dir")]
        store: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
pub(crate) struct InfoArgs {
    /// The database directory.
    #[arg(long, env = "BRAID_DATA")]
    data: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct QueryArgs {
    /// The database directory.
    #[arg(long, env = "BRAID_DATA")]
    data: PathBuf,
    /// The collection (or alias).
    #[arg(long)]
    collection: String,
    /// A query vector, as JSON ([0.1, 0.2, …]).
    #[arg(long, conflicts_with_all = ["id", "body"])]
    vector: Option<String>,
    /// The id of a point whose vector is the query.
    #[arg(long, conflicts_with = "body")]
    id: Option<String>,
    /// The vector space to search.
    #[arg(long)]
    using: Option<String>,
    /// A filter, as REST's JSON.
    #[arg(long)]
    filter: Option<String>,
    /// How many hits.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Any query as REST's `POST /points/query` body instead of the flags above.
    #[arg(long)]
    body: Option<String>,
}

/// Opens a data directory for a command that ends before long: every vector file is
/// checked against its checksum before the open returns (a server checks the large
/// ones after it, in the background), so that what a command reports or copies has
/// been checked.
fn open(data: &Path) -> Result<Database, String> {
    let options = braid::StorageOptions { verify_after_open_above: u64::MAX, ..Default::default() };
    Database::open_with(data, options).map_err(|e| format!("cannot open {}: {e}", data.display()))
}

fn json_arg(what: &str, text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("{what}: not JSON: {e}"))
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A bad line: `file:line[:column]: why`.
fn located(file: &Path, line: usize, column: Option<usize>, why: impl std::fmt::Display) -> String {
    match column {
        Some(c) => format!("{}:{line}:{c}: {why}", file.display()),
        None => format!("{}:{line}: {why}", file.display()),
    }
}

/// Line `n` (1-based) of the file as a point checked against `collection`.
fn parse_line(file: &Path, n: usize, line: &str, collection: &Collection) -> Result<PointStruct, String> {
    let value: Value = serde_json::from_str(line)
        .map_err(|e| located(file, n, Some(e.column()), format!("not JSON: {e}")))?;
    let point = braid_server::point_from_json(&value).map_err(|e| located(file, n, None, e.message))?;
    collection.check_points(std::slice::from_ref(&point)).map_err(|e| located(file, n, None, e))?;
    Ok(point)
}

/// Every non-empty line of `file` with its number, and the bytes read so far.
fn lines(file: &Path) -> Result<impl Iterator<Item = Result<(usize, String, u64), String>> + use<>, String> {
    let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, f);
    let (mut n, mut read) = (0usize, 0u64);
    let path = file.to_path_buf();
    Ok(std::iter::from_fn(move || {
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(len) => {
                    n += 1;
                    read += len as u64;
                    if !line.trim().is_empty() {
                        return Some(Ok((n, line, read)));
                    }
                }
                Err(e) => return Some(Err(located(&path, n + 1, None, e))),
            }
        }
    }))
}

/// One input row: its number (line or matrix row, 1-based), the point or why it is
/// bad, and the progress so far (bytes or rows).
type Row = (usize, Result<PointStruct, String>, u64);

/// Reads the input from its start: an error is one that stops the import (I/O), a
/// bad row is the `Err` inside.
type Rows = Box<dyn Iterator<Item = Result<Row, String>>>;

/// What an import reads: JSON Lines, or `.npy` matrices with optional JSON Lines of
/// ids and payloads. Read twice without `--skip-bad` (check, then write).
struct Source<'a> {
    args: &'a ImportArgs,
    /// (space, file) per `--npy`.
    matrices: Vec<(String, PathBuf)>,
}

impl Source<'_> {
    /// The progress bar's length and template.
    fn total(&self) -> Result<(u64, &'static str), String> {
        match (self.matrices.first(), &self.args.file) {
            (Some((_, path)), _) => {
                Ok((npy_shape(path)?.0 as u64, "{bar:40} {pos}/{len} rows {per_sec} eta {eta}"))
            }
            (None, Some(file)) => {
                let size = std::fs::metadata(file).map_err(|e| format!("{}: {e}", file.display()))?.len();
                Ok((size, "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"))
            }
            (None, None) => Err("give a JSON Lines file or --npy SPACE=FILE".into()),
        }
    }

    fn rows(&self, collection: &Collection) -> Result<Rows, String> {
        let collection = collection.clone();
        if self.matrices.is_empty() {
            let file = self.args.file.clone().ok_or("give a JSON Lines file or --npy SPACE=FILE")?;
            return Ok(Box::new(lines(&file)?.map(move |item| {
                item.map(|(n, line, read)| (n, parse_line(&file, n, &line, &collection), read))
            })));
        }
        npy_rows(&self.matrices, self.args.file.as_deref(), collection)
    }
}

/// A `.npy` file's (rows, columns): it must be a 2-D matrix in C order.
fn npy_shape(path: &Path) -> Result<(usize, usize), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
        .map_err(|e| format!("{}: not a NumPy .npy file: {e}", path.display()))?;
    match (npy.shape(), npy.order()) {
        ([rows, cols], npyz::Order::C) => Ok((*rows as usize, *cols as usize)),
        (shape, order) => Err(format!(
            "{}: a matrix of one row per point is needed (2-D, C order), got shape {shape:?} in {order:?} order",
            path.display()
        )),
    }
}

/// The values of a `.npy` matrix of float32 or float64, in order, as f32.
fn npy_values(path: &Path) -> Result<Box<dyn Iterator<Item = std::io::Result<f32>>>, String> {
    let open = || -> Result<_, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        npyz::NpyFile::new(std::io::BufReader::with_capacity(1 << 20, file))
            .map_err(|e| format!("{}: not a NumPy .npy file: {e}", path.display()))
    };
    if let Ok(values) = open()?.data::<f32>() {
        return Ok(Box::new(values));
    }
    match open()?.data::<f64>() {
        // Narrowed as REST's JSON numbers are: vectors are stored as f32.
        Ok(values) => Ok(Box::new(values.map(|v| v.map(|x| x as f32)))),
        Err(e) => Err(format!("{}: the values must be float32 or float64: {e}", path.display())),
    }
}

/// Rows of `.npy` matrices (all of one row count), with ids and payloads from the
/// JSON Lines `meta` when given.
fn npy_rows(
    matrices: &[(String, PathBuf)],
    meta: Option<&Path>,
    collection: Collection,
) -> Result<Rows, String> {
    let mut count = None;
    let mut readers = Vec::new();
    for (space, path) in matrices {
        let (rows, cols) = npy_shape(path)?;
        match count {
            Some(n) if n != rows => {
                return Err(format!(
                    "{}: {rows} rows, but {} has {n}",
                    path.display(),
                    matrices[0].1.display()
                ));
            }
            _ => count = Some(rows),
        }
        readers.push((space.clone(), path.clone(), cols, npy_values(path)?));
    }
    let rows = count.unwrap_or(0);
    let mut meta_lines = match meta {
        Some(file) => Some((file.to_path_buf(), lines(file)?)),
        None => None,
    };
    let mut row = 0usize;
    Ok(Box::new(std::iter::from_fn(move || {
        if row == rows {
            if let Some((file, lines)) = &mut meta_lines
                && let Some(extra) = lines.next()
            {
                let n = extra.map_or(0, |(n, _, _)| n);
                return Some(Err(located(file, n, None, format!("more lines than the {rows} matrix rows"))));
            }
            return None;
        }
        row += 1;
        let mut point = match &mut meta_lines {
            None => Ok(PointStruct::new(row as u64 - 1)),
            Some((file, lines)) => match lines.next() {
                None => {
                    return Some(Err(located(
                        file,
                        row,
                        None,
                        format!("fewer lines than the {rows} matrix rows"),
                    )));
                }
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok((n, line, _))) => meta_point(file, n, &line, row as u64 - 1),
            },
        };
        for (space, path, cols, values) in &mut readers {
            let mut vector = Vec::with_capacity(*cols);
            for _ in 0..*cols {
                match values.next() {
                    Some(Ok(x)) => vector.push(x),
                    Some(Err(e)) => return Some(Err(format!("{}: row {row}: {e}", path.display()))),
                    None => return Some(Err(format!("{}: cut short in row {row}", path.display()))),
                }
            }
            if let Ok(p) = &mut point {
                p.vectors.insert(space.clone(), vector);
            }
        }
        let point = point.and_then(|p| {
            collection.check_points(std::slice::from_ref(&p)).map_err(|e| format!("row {row}: {e}"))?;
            Ok(p)
        });
        Some(Ok((row, point, row as u64)))
    })))
}

/// A `--npy` import's line `n`: `{"id"?, "payload"?}` for matrix row `row` (0-based).
fn meta_point(file: &Path, n: usize, line: &str, row: u64) -> Result<PointStruct, String> {
    let value: Value = serde_json::from_str(line)
        .map_err(|e| located(file, n, Some(e.column()), format!("not JSON: {e}")))?;
    let Some(o) = value.as_object() else {
        return Err(located(file, n, None, "a line must be an object {\"id\", \"payload\"}"));
    };
    if let Some(k) = o.keys().find(|k| !["id", "payload"].contains(&k.as_str())) {
        return Err(located(
            file,
            n,
            None,
            format!("`{k}`: with --npy a line holds only \"id\" and \"payload\""),
        ));
    }
    let mut with_id = o.clone();
    with_id.entry("id").or_insert(json!(row));
    braid_server::point_from_json(&Value::Object(with_id)).map_err(|e| located(file, n, None, e.message))
}

pub(crate) fn import(args: ImportArgs) -> Result<(), String> {
    if args.batch == 0 || args.batch > braid::MAX_BATCH {
        return Err(format!("--batch must be between 1 and {}", braid::MAX_BATCH));
    }
    let matrices = args
        .npy
        .iter()
        .map(|m| match m.split_once('=') {
            Some((space, file)) if !file.is_empty() => Ok((space.to_string(), PathBuf::from(file))),
            _ => Err(format!("--npy {m}: give SPACE=FILE")),
        })
        .collect::<Result<Vec<_>, String>>()?;
    let source = Source { args: &args, matrices };
    let (size, template) = source.total()?;
    if let Some(url) = &args.url {
        let remote = Remote::new(url, &args)?;
        let (config, created) = remote.collection(args.create.as_deref())?;
        // Rows are checked against an empty collection of the same configuration here,
        // so that a bad one stops the import before anything is sent.
        let check = Database::in_memory().create_collection("check", config).map_err(|e| e.to_string())?;
        let result = import_into(&args, &source, &check, &Target::Remote(&remote), size, template);
        if result.is_err() && created && remote.count().unwrap_or(0) == 0 {
            remote.delete();
        }
        return result;
    }
    let data = args.data.as_deref().ok_or("give --data DIR or --url URL")?;
    let db = open(data)?;
    let (collection, created) = match (db.collection(&args.collection), &args.create) {
        (Ok(c), _) => (c, false),
        (Err(_), Some(config)) => {
            let config = braid_server::collection_config_from_json(&json_arg("--create", config)?)
                .map_err(|e| format!("--create: {}", e.message))?;
            (db.create_collection(&args.collection, config).map_err(|e| e.to_string())?, true)
        }
        (Err(e), None) => return Err(format!("{e} (give --create CONFIG to create it)")),
    };
    let result = import_into(&args, &source, &collection, &Target::Local(&collection), size, template);
    if result.is_err() && created && collection.count(None).unwrap_or(0) == 0 {
        // Nothing was written: the collection made for the import goes too.
        let _ = db.delete_collection(&args.collection);
    }
    result
}

/// Where an import writes: a collection opened here, or a running server.
enum Target<'a> {
    Local(&'a Collection),
    Remote(&'a Remote),
}

impl Target<'_> {
    /// Which of `ids` the collection holds.
    fn present(&self, ids: &[braid::PointId]) -> Result<std::collections::HashSet<braid::PointId>, String> {
        match self {
            Target::Local(c) => Ok(c
                .get(ids, WithPayload::None, WithVectors::None)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|r| r.id)
                .collect()),
            Target::Remote(r) => r.present(ids),
        }
    }

    fn upsert(&self, points: Vec<PointStruct>) -> Result<(), String> {
        match self {
            Target::Local(c) => c.upsert(points).map_err(|e| e.to_string()),
            Target::Remote(r) => r.upsert(&points),
        }
    }

    /// Makes the import durable: a checkpoint here; a server acknowledged each batch
    /// with `wait=true` and keeps it as its durability settings say.
    fn flush(&self) -> Result<(), String> {
        match self {
            Target::Local(c) => c.flush().map_err(|e| e.to_string()),
            Target::Remote(_) => Ok(()),
        }
    }
}

/// A collection of a running server, reached over REST.
struct Remote {
    client: reqwest::blocking::Client,
    /// `URL/collections/NAME`.
    base: String,
    api_key: Option<String>,
}

impl Remote {
    fn new(url: &str, args: &ImportArgs) -> Result<Remote, String> {
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            .build()
            .map_err(|e| format!("--url: {e}"))?;
        let base = format!("{}/collections/{}", url.trim_end_matches('/'), args.collection);
        Ok(Remote { client, base, api_key: args.api_key.clone() })
    }

    /// Sends a request; answers the `result` of a success, or the server's error.
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.api_key {
            request = request.header("api-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().map_err(|e| format!("{}: {e}", self.base))?;
        let status = response.status().as_u16();
        let v: Value = response.json().unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok((status, v["result"].clone()));
        }
        let why = v["status"]["error"].as_str().map_or_else(|| format!("HTTP {status}"), str::to_string);
        Err(format!("{}{path}: {why}", self.base))
    }

    /// The collection's configuration (created from `create` when it is missing), and
    /// whether this import created it.
    fn collection(&self, create: Option<&str>) -> Result<(braid::CollectionConfig, bool), String> {
        let (info, created) = match self.call(reqwest::Method::GET, "", None) {
            Ok((_, info)) => (info, false),
            Err(e) => {
                let Some(config) = create else {
                    return Err(format!("{e} (give --create CONFIG to create it)"));
                };
                self.call(reqwest::Method::PUT, "", Some(&json_arg("--create", config)?))?;
                (self.call(reqwest::Method::GET, "", None)?.1, true)
            }
        };
        let config = braid_server::collection_config_from_json(&info["config"]["params"])
            .map_err(|e| format!("{}: its configuration: {}", self.base, e.message))?;
        Ok((config, created))
    }

    fn present(&self, ids: &[braid::PointId]) -> Result<std::collections::HashSet<braid::PointId>, String> {
        let body = json!({"ids": ids, "with_payload": false, "with_vector": false});
        let (_, found) = self.call(reqwest::Method::POST, "/points", Some(&body))?;
        let found: std::collections::HashSet<String> =
            found.as_array().into_iter().flatten().map(|r| r["id"].to_string()).collect();
        Ok(ids.iter().filter(|id| found.contains(&json!(id).to_string())).copied().collect())
    }

    fn upsert(&self, points: &[PointStruct]) -> Result<(), String> {
        let body = json!({"points": points.iter().map(braid_server::point_to_json).collect::<Vec<_>>()});
        self.call(reqwest::Method::PUT, "/points?wait=true", Some(&body)).map(drop)
    }

    fn count(&self) -> Result<u64, String> {
        let (_, v) = self.call(reqwest::Method::POST, "/points/count", Some(&json!({"exact": true})))?;
        Ok(v["count"].as_u64().unwrap_or(0))
    }

    fn delete(&self) {
        let _ = self.call(reqwest::Method::DELETE, "", None);
    }
}

/// Imports the rows of `source`, checked against `collection`, into `target`.
fn import_into(
    args: &ImportArgs,
    source: &Source<'_>,
    collection: &Collection,
    target: &Target<'_>,
    size: u64,
    template: &str,
) -> Result<(), String> {
    let started = Instant::now();
    // Without --skip-bad, a first pass checks every row, so that a bad one stops the
    // import before anything is written.
    if !args.skip_bad {
        let check = bar(size, &format!("checking {template}"));
        for item in source.rows(collection)? {
            let (_, point, read) = item?;
            point?;
            check.set_position(read);
        }
        check.finish_and_clear();
    }
    let progress = bar(size, &format!("importing {template} {{msg}}"));
    let (mut imported, mut present, mut bad) = (0usize, 0usize, 0usize);
    let mut batch: Vec<PointStruct> = Vec::with_capacity(args.batch);
    let write = |batch: &mut Vec<PointStruct>, imported: &mut usize, present: &mut usize| {
        if args.resume {
            let ids: Vec<braid::PointId> = batch.iter().map(|p| p.id).collect();
            let existing = target.present(&ids)?;
            let before = batch.len();
            batch.retain(|p| !existing.contains(&p.id));
            *present += before - batch.len();
        }
        if !batch.is_empty() {
            *imported += batch.len();
            target.upsert(std::mem::take(batch))?;
        }
        batch.clear();
        Ok::<(), String>(())
    };
    for item in source.rows(collection)? {
        let (_, point, read) = item?;
        match point {
            Ok(point) => batch.push(point),
            Err(e) if args.skip_bad => {
                bad += 1;
                if bad <= SHOWN_BAD_LINES {
                    progress.suspend(|| eprintln!("skipped {e}"));
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        if batch.len() == args.batch {
            write(&mut batch, &mut imported, &mut present)?;
            progress.set_message(format!("{imported} points"));
        }
        progress.set_position(read);
    }
    write(&mut batch, &mut imported, &mut present)?;
    progress.finish_and_clear();
    target.flush()?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "imported {imported} points into `{}` in {secs:.1} s ({:.0} points/s){}{}",
        args.collection,
        imported as f64 / secs.max(1e-9),
        if present > 0 { format!("; {present} already present, skipped") } else { String::new() },
        if bad > 0 { format!("; {bad} bad lines skipped") } else { String::new() },
    );
    Ok(())
}

pub(crate) fn export(args: ExportArgs) -> Result<(), String> {
    let db = open(&args.data)?;
    let c = db.collection(&args.collection).map_err(|e| e.to_string())?;
    let total = c.count(None).map_err(|e| e.to_string())? as u64;
    let out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let progress = bar(total, "exporting {bar:40} {pos}/{len} points {per_sec} eta {eta}");
    let mut offset = None;
    let mut written = 0u64;
    loop {
        let (page, next) =
            c.scroll(None, 1000, offset, WithPayload::All, WithVectors::All).map_err(|e| e.to_string())?;
        for record in page {
            let line =
                serde_json::to_string(&braid_server::record_to_json(record)).map_err(|e| e.to_string())?;
            writeln!(out, "{line}").map_err(|e| format!("writing: {e}"))?;
            written += 1;
        }
        progress.set_position(written);
        match next {
            Some(n) => offset = Some(n),
            None => break,
        }
    }
    out.flush().map_err(|e| format!("writing: {e}"))?;
    progress.finish_and_clear();
    eprintln!("exported {written} points of `{}`", c.name());
    Ok(())
}

fn snapshots_dir(data: &Path, collection: Option<&str>, given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        let base = data.join("snapshots");
        collection.map_or(base.clone(), |c| base.join(c))
    })
}

fn describe_time(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
}

fn describe(d: &braid::SnapshotDescription) -> String {
    let at = chrono::DateTime::<chrono::Utc>::from(d.created).format("%Y-%m-%d %H:%M:%S UTC");
    format!("{}  {at}  {} bytes  sha256 {}", d.name, d.size, d.checksum.as_deref().unwrap_or("-"))
}

pub(crate) fn snapshot(command: SnapshotCommand) -> Result<(), String> {
    match command {
        SnapshotCommand::Create { data, collection, out, base, store } => {
            let db = open(&data)?;
            let spinner = ProgressBar::new_spinner();
            spinner.set_message("writing the snapshot");
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            let d = if let Some(url) = &store {
                let store = SnapshotStore::object_store(data.join("snapshots"), url)?;
                let real = match &collection {
                    Some(c) => Some(db.collection(c).map_err(|e| e.to_string())?.name().to_string()),
                    None => None,
                };
                spinner.set_message("writing and uploading the snapshot");
                store.create(&db, real.as_deref(), base.as_deref()).map_err(|e| e.message)?
            } else {
                match &collection {
                    Some(c) => {
                        let real = db.collection(c).map_err(|e| e.to_string())?.name().to_string();
                        let dir = snapshots_dir(&data, Some(&real), out);
                        match &base {
                            Some(base) => db.snapshot_collection_incremental(c, &dir, base),
                            None => db.snapshot_collection(c, &dir),
                        }
                    }
                    None => db.snapshot(&snapshots_dir(&data, None, out)),
                }
                .map_err(|e| e.to_string())?
            };
            spinner.finish_and_clear();
            println!("{}", describe(&d));
        }
        SnapshotCommand::Restore { data, collection, checksum, until, store, file } => {
            let db = open(&data)?;
            let store =
                store.map(|url| SnapshotStore::object_store(data.join("snapshots"), &url)).transpose()?;
            let fetched = match &store {
                Some(store) => store.fetch(&file.to_string_lossy()).map_err(|e| e.message)?,
                None => None,
            };
            let file = fetched.as_ref().map_or(file.clone(), |f| f.path().to_path_buf());
            match collection {
                Some(c) if until.is_some() => {
                    let text = until.unwrap_or_default();
                    let until = chrono::DateTime::parse_from_rfc3339(&text)
                        .map(|t| std::time::SystemTime::from(t.with_timezone(&chrono::Utc)))
                        .map_err(|e| {
                            format!(
                                "--until `{text}`: not an RFC 3339 time ({e}), such as 2026-12-01T10:30:00Z"
                            )
                        })?;
                    db.recover_collection_until(&c, &file, checksum.as_deref(), until)
                        .map_err(|e| e.to_string())?;
                    println!(
                        "restored collection `{c}` from {} as of {}",
                        file.display(),
                        describe_time(until)
                    );
                }
                Some(c) => {
                    db.recover_collection(&c, &file, checksum.as_deref()).map_err(|e| e.to_string())?;
                    println!("restored collection `{c}` from {}", file.display());
                }
                None => {
                    let names = db.restore(&file, checksum.as_deref()).map_err(|e| e.to_string())?;
                    println!("restored {} from {}", names.join(", "), file.display());
                }
            }
        }
        SnapshotCommand::List { data, collection, dir, store } => {
            let list = match store {
                Some(url) => SnapshotStore::object_store(data.join("snapshots"), &url)?
                    .list(collection.as_deref())
                    .map_err(|e| e.message)?,
                None => braid::snapshot::list(&snapshots_dir(&data, collection.as_deref(), dir))
                    .map_err(|e| e.to_string())?,
            };
            for d in list {
                println!("{}", describe(&d));
            }
        }
    }
    Ok(())
}

pub(crate) fn info(args: InfoArgs) -> Result<(), String> {
    let db = open(&args.data)?;
    let mut collections = Vec::new();
    for name in db.list() {
        let c = db.collection(&name).map_err(|e| e.to_string())?;
        let i = c.info();
        let failures: Vec<String> = c.failures().iter().map(|(t, e)| format!("{t:?}: {e}")).collect();
        collections.push(json!({
            "name": name,
            "points": i.points_count,
            "vectors": i.vectors_count,
            "disk_bytes": i.disk_bytes,
            "dead_versions": i.dead_versions,
            "state": format!("{:?}", c.state()).to_lowercase(),
            "aliases": db.collection_aliases(&name).unwrap_or_default(),
            "failures": failures,
        }));
    }
    let health = if db.failures().is_empty() { "ok" } else { "failing" };
    if args.json {
        let all = json!({"data": args.data, "health": health, "collections": collections});
        println!("{}", serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!("{}: {} collections, health {health}", args.data.display(), collections.len());
    for c in &collections {
        println!(
            "  {}  {} points  vectors {}  {} bytes on disk  {}{}",
            c["name"].as_str().unwrap_or_default(),
            c["points"],
            c["vectors"],
            c["disk_bytes"],
            c["state"].as_str().unwrap_or_default(),
            match c["aliases"].as_array() {
                Some(a) if !a.is_empty() => format!("  aliases {}", Value::Array(a.clone())),
                _ => String::new(),
            }
        );
        for f in c["failures"].as_array().into_iter().flatten() {
            println!("    failing: {}", f.as_str().unwrap_or_default());
        }
    }
    Ok(())
}

pub(crate) fn query(args: QueryArgs) -> Result<(), String> {
    let body = match (&args.body, &args.vector, &args.id) {
        (Some(body), _, _) => json_arg("--body", body)?,
        (None, vector, id) => {
            let query = match (vector, id) {
                (Some(v), _) => json_arg("--vector", v)?,
                (None, Some(id)) => serde_json::from_str(id).unwrap_or_else(|_| Value::String(id.clone())),
                (None, None) => return Err("give --vector, --id or --body".into()),
            };
            let mut body = json!({"query": query, "limit": args.limit, "with_payload": true});
            if let Some(using) = &args.using {
                body["using"] = json!(using);
            }
            if let Some(filter) = &args.filter {
                body["filter"] = json_arg("--filter", filter)?;
            }
            body
        }
    };
    let db = open(&args.data)?;
    let c = db.collection(&args.collection).map_err(|e| e.to_string())?;
    let result = braid_server::query_json(&c, &body).map_err(|e| e.message)?;
    for hit in result["points"].as_array().into_iter().flatten() {
        println!("{}", serde_json::to_string(hit).map_err(|e| e.to_string())?);
    }
    Ok(())
}
