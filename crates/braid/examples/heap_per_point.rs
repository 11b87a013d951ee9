//! How much heap a database's collections hold once opened, per point, counted
//! exactly: every allocation goes through a counting allocator, and the bytes live
//! after the open (its background checks finished) less those live before it are
//! the database's.
//!
//! ```text
//! cargo run --release -p braid --example heap_per_point -- DIR
//! ```
//!
//! `DIR` is a database directory, e.g. the kept build of `cargo xtask bench scale --
//! --keep` (`target/scale/n1000000-ef100/db`), which the bench's last measure left in
//! its configuration. Prints, per collection, its points, the heap per point, and the
//! collection's own report of its spaces (`CollectionInfo::memory`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

#[derive(Debug)]
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only a counter
// is kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: heap_per_point DIR (a database directory)")?;
    let before = LIVE.load(Ordering::Relaxed);
    let db = braid::Database::open(&dir)?;
    let mut collections = Vec::new();
    for name in db.list() {
        let c = db.collection(&name)?;
        c.verify_wait()?;
        collections.push((name, c));
    }
    let heap = LIVE.load(Ordering::Relaxed) - before;
    let points: usize = collections.iter().map(|(_, c)| c.info().points_count).sum();
    println!(
        "{dir}: {points} points, {heap} bytes of heap, {:.1} per point",
        heap as f64 / points.max(1) as f64
    );
    for (name, c) in &collections {
        let info = c.info();
        println!("  {name}: {} points", info.points_count);
        for (space, m) in &info.memory {
            let per = |bytes: usize| bytes as f64 / info.points_count.max(1) as f64;
            println!(
                "    {space}: graph {:.1} B/point ({:.1} of it mapped), codes {:.1}, rows {:.1} ({:.1} mapped)",
                per(m.graph),
                per(m.graph_mapped),
                per(m.codes),
                per(m.vectors),
                per(m.vectors_mapped)
            );
        }
    }
    Ok(())
}
