//! Per-thread "visited" marks that reset in O(1): a generation tag per node.

use std::cell::RefCell;

pub(crate) struct Visited {
    tags: Vec<u16>,
    generation: u16,
}

impl Visited {
    /// Starts a new search over at least `n` nodes.
    fn reset(&mut self, n: usize) {
        if self.tags.len() < n {
            self.tags.resize(n, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // The tags have wrapped around: clear them so that no stale tag matches.
            self.tags.fill(0);
            self.generation = 1;
        }
    }

    /// Is `node` marked in this search?
    #[inline]
    pub(crate) fn contains(&self, node: u32) -> bool {
        self.tags[node as usize] == self.generation
    }

    /// Marks `node`; returns `true` if it was not marked in this search yet.
    #[inline]
    pub(crate) fn insert(&mut self, node: u32) -> bool {
        let slot = &mut self.tags[node as usize];
        if *slot == self.generation {
            false
        } else {
            *slot = self.generation;
            true
        }
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = const { RefCell::new(Visited { tags: Vec::new(), generation: 0 }) };
}

/// Runs `f` with this thread's visited marks, reset for `n` nodes.
pub(crate) fn with_visited<R>(n: usize, f: impl FnOnce(&mut Visited) -> R) -> R {
    VISITED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            v.reset(n);
            f(&mut v)
        }
        // Re-entrant use on one thread (a search inside a filter callback): use a fresh list.
        Err(_) => {
            let mut v = Visited { tags: Vec::new(), generation: 0 };
            v.reset(n);
            f(&mut v)
        }
    })
}
