//! Simulated disk failures, for tests: a full disk, failing syncs, and a journal from
//! which a power cut can be replayed.
//!
//! Every byte this crate writes (log records, documents, vector files) first draws on a
//! budget kept per thread (so that tests running in parallel do not disturb each
//! other; Braid writes on the calling thread). With no budget set (the default) nothing is counted; with
//! `Some(n)`, writes succeed until `n` bytes have been written and then fail with
//! `ErrorKind::StorageFull`, exactly where a real full disk would stop them: a write
//! that does not fit is cut short, so half-written records are exercised too.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

thread_local! {
    static BUDGET: Cell<Option<u64>> = const { Cell::new(None) };
    static FAILING_SYNCS: Cell<u32> = const { Cell::new(0) };
}

/// Makes the next `n` syncs (`fsync`/`fdatasync` of a file this crate writes) on the
/// calling thread fail with an I/O error, as a disk that reports a write error does.
/// The bytes stay in the file: what a failed sync leaves is undefined, so the caller
/// must act as if any of them may or may not reach the disk.
pub fn fail_next_syncs(n: u32) {
    FAILING_SYNCS.with(|c| c.set(n));
}

/// Syncs `file` at `path` (its data only, or its data and metadata) unless a
/// simulated sync failure is pending on this thread; journals the sync.
pub(crate) fn sync(file: &std::fs::File, path: &Path, data_only: bool) -> std::io::Result<()> {
    let fail = FAILING_SYNCS.with(|c| {
        let n = c.get();
        c.set(n.saturating_sub(1));
        n > 0
    });
    if fail {
        return Err(std::io::Error::other("simulated sync failure (input/output error)"));
    }
    if data_only { file.sync_data() } else { file.sync_all() }?;
    if journal().is_some() {
        let len = file.metadata()?.len();
        note(format_args!("S\t{len}\t{}", path.display()));
    }
    Ok(())
}

/// The environment variable naming the power-loss journal. When it is set (read once
/// per process), every file this crate creates, syncs, renames or removes, and every
/// directory it syncs, is recorded there in order, and a file a rename replaces is
/// copied beside the journal first: enough for [`power_cut`] to rebuild what the disk
/// would hold had the machine lost power at any moment. A test setting only; nothing
/// is journaled without it.
pub const POWER_LOSS_JOURNAL: &str = "BRAID_POWER_LOSS_JOURNAL";

fn journal() -> Option<&'static Mutex<(File, PathBuf, u64)>> {
    static JOURNAL: OnceLock<Option<Mutex<(File, PathBuf, u64)>>> = OnceLock::new();
    JOURNAL
        .get_or_init(|| {
            let path = PathBuf::from(std::env::var_os(POWER_LOSS_JOURNAL)?);
            let file = OpenOptions::new().create(true).append(true).open(&path).ok()?;
            Some(Mutex::new((file, path, 0)))
        })
        .as_ref()
}

/// Appends one event line. The journal is never synced: a killed process leaves its
/// writes in the page cache, and the test that reads it kills, it does not cut power.
fn note(line: std::fmt::Arguments<'_>) {
    if let Some(j) = journal() {
        // One write per line, so that a kill leaves whole lines (and at worst a torn
        // last one, which `power_cut` ignores).
        let text = format!("{line}\n");
        let mut j = j.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = j.0.write_all(text.as_bytes());
    }
}

/// Journals the creation of a new file at `path`.
pub(crate) fn created(path: &Path) {
    if journal().is_some() {
        note(format_args!("C\t{}", path.display()));
    }
}

/// Journals a synced directory.
pub(crate) fn synced_dir(dir: &Path) {
    if journal().is_some() {
        note(format_args!("D\t{}", dir.display()));
    }
}

/// Renames `from` to `to`, journaling it (with a copy of the file it replaces).
pub(crate) fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(j) = journal() {
        let shadow = {
            let mut j = j.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            j.2 += 1;
            PathBuf::from(format!("{}.replaced-{}", j.1.display(), j.2))
        };
        let saved = std::fs::copy(to, &shadow).is_ok();
        let shadow = if saved { shadow.display().to_string() } else { "-".into() };
        // The intent first: a kill between the rename and its journal line would
        // otherwise leave a renamed file the journal still files under its old node
        // (and a power cut would cut the new file to the old one's synced length).
        note(format_args!("RI\t{}\t{}\t{shadow}", from.display(), to.display()));
        std::fs::rename(from, to)?;
        note(format_args!("R\t{}\t{}\t{shadow}", from.display(), to.display()));
        return Ok(());
    }
    std::fs::rename(from, to)
}

/// Removes the file at `path`, journaling it. Removed files are never ones a manifest
/// names, so the journal treats a removal as durable at once.
pub fn remove_file(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)?;
    if journal().is_some() {
        note(format_args!("X\t{}", path.display()));
    }
    Ok(())
}

/// Removes the directory at `path` with everything in it, journaling it.
pub fn remove_dir_all(path: &Path) -> std::io::Result<()> {
    std::fs::remove_dir_all(path)?;
    if journal().is_some() {
        note(format_args!("XD\t{}", path.display()));
    }
    Ok(())
}

/// Rewrites the directory tree `root` to what the disk would hold after a power cut
/// at the end of `journal` (see [`POWER_LOSS_JOURNAL`]): every file holds only the
/// bytes synced before the cut, and exists under a name only if its directory was
/// synced after it got that name; a rename not yet made durable is undone. Files under
/// `root` that the journal never created are left alone, as are directories (Braid
/// syncs a directory's parent right after creating it).
pub fn power_cut(journal: &Path, root: &Path) -> std::io::Result<()> {
    struct Node {
        at: PathBuf,
        synced: u64,
    }
    let text = std::fs::read_to_string(journal)?;
    let mut nodes: Vec<Node> = Vec::new();
    let mut volatile: BTreeMap<PathBuf, usize> = BTreeMap::new();
    let mut durable: BTreeMap<PathBuf, usize> = BTreeMap::new();
    // A line without its newline was torn by the kill: the event never completed.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    // A rename whose intent is the journal's last event: it happened if its source is
    // gone (nothing ran after it); a failed rename is followed by other events.
    let last = complete.lines().last().unwrap_or("");
    let unconfirmed = match last.split('\t').collect::<Vec<_>>().as_slice() {
        ["RI", from, to, shadow] if !Path::new(from).exists() => Some(format!("R\t{from}\t{to}\t{shadow}")),
        _ => None,
    };
    for line in complete.lines().chain(unconfirmed.as_deref()) {
        let parts: Vec<&str> = line.split('\t').collect();
        match parts.as_slice() {
            ["RI", ..] => {}
            ["C", path] => {
                nodes.push(Node { at: PathBuf::from(path), synced: 0 });
                volatile.insert(PathBuf::from(path), nodes.len() - 1);
            }
            ["S", len, path] => {
                if let (Some(&id), Ok(len)) = (volatile.get(Path::new(path)), len.parse()) {
                    nodes[id].synced = len;
                }
            }
            ["R", from, to, shadow] => {
                if let Some(&old) = volatile.get(Path::new(to)) {
                    nodes[old].at = PathBuf::from(if *shadow == "-" { "" } else { shadow });
                }
                if let Some(id) = volatile.remove(Path::new(from)) {
                    nodes[id].at = PathBuf::from(to);
                    volatile.insert(PathBuf::from(to), id);
                }
            }
            ["X", path] => {
                volatile.remove(Path::new(path));
                durable.remove(Path::new(path));
            }
            ["XD", dir] => {
                volatile.retain(|p, _| !p.starts_with(dir));
                durable.retain(|p, _| !p.starts_with(dir));
            }
            ["D", dir] => {
                let dir = Path::new(dir);
                durable.retain(|p, _| p.parent() != Some(dir));
                durable.extend(
                    volatile.iter().filter(|(p, _)| p.parent() == Some(dir)).map(|(p, &id)| (p.clone(), id)),
                );
            }
            _ => return Err(std::io::Error::other(format!("bad journal line `{line}`"))),
        }
    }
    // Read every surviving file's synced bytes before anything is rewritten.
    let mut contents = Vec::new();
    for (path, &id) in &durable {
        let node = &nodes[id];
        let mut bytes = std::fs::read(&node.at).unwrap_or_default();
        bytes.truncate(node.synced as usize);
        contents.push((path.clone(), bytes));
    }
    for path in volatile.keys().chain(durable.keys()) {
        if path.starts_with(root) && path.exists() {
            std::fs::remove_file(path)?;
        }
    }
    for (path, bytes) in contents {
        if path.starts_with(root) {
            std::fs::write(&path, bytes)?;
        }
    }
    Ok(())
}

/// Sets how many more bytes the calling thread may write (`None`: no limit).
pub fn set_disk_budget(bytes: Option<u64>) {
    BUDGET.with(|b| b.set(bytes));
}

/// Takes up to `want` bytes from the budget and returns how many were granted.
pub(crate) fn draw(want: usize) -> usize {
    BUDGET.with(|b| match b.get() {
        None => want,
        Some(left) => {
            let take = left.min(want as u64);
            b.set(Some(left - take));
            take as usize
        }
    })
}

/// Writes all of `bytes` or fails like a full disk, after writing what the budget
/// allowed.
pub(crate) fn write_all(out: &mut impl std::io::Write, bytes: &[u8]) -> std::io::Result<()> {
    let granted = draw(bytes.len());
    out.write_all(&bytes[..granted])?;
    if granted < bytes.len() {
        return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device"));
    }
    Ok(())
}
