//! Hints to the kernel about how Braid's largest arrays are read.
//!
//! Graph walks and filtered scans read vectors, codes and adjacency lists at random
//! across tens or hundreds of megabytes. With 4 KiB pages nearly every such read also
//! misses the TLB; with 2 MiB pages the same arrays need a few dozen entries.
//! Linux distributions commonly set transparent huge pages to `madvise`, which gives
//! them only to memory that asks: [`prefer_huge_pages`] asks. On other systems, or
//! when the kernel declines, it does nothing; it never changes what memory holds.

/// The huge page size the hint is aligned to (x86-64 and aarch64 with 4 KiB base pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the whole 2 MiB pages inside `data` with huge pages.
/// Arrays under 2 MiB are left alone. A hint only: errors are ignored.
pub fn prefer_huge_pages<T>(data: &[T]) {
    let start = data.as_ptr() as usize;
    let len = std::mem::size_of_val(data);
    let first = start.next_multiple_of(HUGE_PAGE);
    let end = (start + len) / HUGE_PAGE * HUGE_PAGE;
    if end <= first {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: the range [first, end) lies inside `data`'s allocation and is page
    // aligned; MADV_HUGEPAGE changes only how the kernel backs those pages, never their
    // contents, so no Rust reference observes a difference.
    unsafe {
        libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
    }
}

/// Reserves room for `more` elements in `v` and, when that moved or grew the buffer,
/// asks for huge pages over its whole capacity.
pub fn reserve_huge<T>(v: &mut Vec<T>, more: usize) {
    let before = (v.as_ptr(), v.capacity());
    v.reserve(more);
    if (v.as_ptr(), v.capacity()) != before {
        // SAFETY: the spare capacity is allocated memory of `T`s; viewing it as a slice
        // of `MaybeUninit<T>` reads nothing.
        let whole = unsafe {
            std::slice::from_raw_parts(v.as_ptr().cast::<std::mem::MaybeUninit<T>>(), v.capacity())
        };
        prefer_huge_pages(whole);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_keep_contents() {
        let mut v: Vec<u32> = (0..1000).collect();
        reserve_huge(&mut v, 3 << 20);
        v.extend(1000..2000);
        prefer_huge_pages(&v);
        assert!(v.iter().copied().eq(0..2000));
        prefer_huge_pages::<u8>(&[]);
    }
}
