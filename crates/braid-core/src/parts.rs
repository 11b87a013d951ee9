//! Work split over threads that degrades to the calling thread.

use std::sync::{Mutex, PoisonError};

/// Runs `work` on every item of `parts`, on up to `threads` threads: the calling thread
/// and as many scoped helpers as can be started. Each thread claims the next unclaimed
/// part until none is left, so when the system refuses a thread (a container's thread
/// limit, memory for stacks) the parts still all run — on fewer threads — instead of
/// the call panicking. A panic inside `work` is propagated when every thread is done.
pub fn run_parts<T: Send>(parts: impl IntoIterator<Item = T>, threads: usize, work: impl Fn(T) + Sync) {
    let parts: Vec<T> = parts.into_iter().collect();
    let helpers = threads.min(parts.len()).saturating_sub(1);
    let queue = Mutex::new(parts.into_iter());
    let next = || queue.lock().unwrap_or_else(PoisonError::into_inner).next();
    let drain = || {
        while let Some(part) = next() {
            work(part);
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..helpers {
            if std::thread::Builder::new().spawn_scoped(scope, drain).is_err() {
                break;
            }
        }
        drain();
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn every_part_runs_once_on_any_thread_count() {
        for threads in [0, 1, 2, 3, 8, 100] {
            let seen: Vec<AtomicUsize> = (0..50).map(|_| AtomicUsize::new(0)).collect();
            run_parts(0..50, threads, |i| {
                seen[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(seen.iter().all(|s| s.load(Ordering::Relaxed) == 1), "{threads} threads");
        }
        run_parts(Vec::<u8>::new(), 4, |_| panic!("no parts, no calls"));
    }

    #[test]
    fn parts_may_borrow_mutably_and_a_panic_comes_back() {
        let mut data = [0u32; 40];
        run_parts(data.chunks_mut(7).enumerate(), 3, |(k, chunk)| {
            chunk.iter_mut().for_each(|x| *x = k as u32)
        });
        assert_eq!(data[..8], [0, 0, 0, 0, 0, 0, 0, 1]);
        let caught = std::panic::catch_unwind(|| run_parts(0..4, 2, |i| assert_ne!(i, 2, "part two fails")));
        assert!(caught.is_err());
    }
}
