//! Simulated disk failures, for tests: a full disk and failing syncs.
//!
//! Every byte this crate writes (log records, documents, vector files) first draws on a
//! budget kept per thread (so that tests running in parallel do not disturb each
//! other; Braid writes on the calling thread). With no budget set (the default) nothing is counted; with
//! `Some(n)`, writes succeed until `n` bytes have been written and then fail with
//! `ErrorKind::StorageFull`, exactly where a real full disk would stop them: a write
//! that does not fit is cut short, so half-written records are exercised too.

use std::cell::Cell;

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

/// Syncs `file` (its data only, or its data and metadata) unless a simulated sync
/// failure is pending on this thread.
pub(crate) fn sync(file: &std::fs::File, data_only: bool) -> std::io::Result<()> {
    let fail = FAILING_SYNCS.with(|c| {
        let n = c.get();
        c.set(n.saturating_sub(1));
        n > 0
    });
    if fail {
        return Err(std::io::Error::other("simulated sync failure (input/output error)"));
    }
    if data_only { file.sync_data() } else { file.sync_all() }
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
