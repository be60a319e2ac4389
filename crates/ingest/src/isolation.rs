//! Isolation boundaries: the one way code here and in the edge catches a panic it expects
//! (a compiler bug rejects one file; a module panic fails one request), so that the edge's
//! panic hook can tell such a panic from one that may kill the process ([`in_boundary`]):
//! only the latter is recorded in the boot journal as the cause of a death.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    /// Boundaries this thread is inside (they can nest).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, catching a panic, with this thread marked as inside a boundary meanwhile.
pub fn catch<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    DEPTH.with(|d| d.set(d.get().saturating_add(1)));
    let result = catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    result
}

/// Whether this thread is inside [`catch`]: a panic now will be caught.
pub fn in_boundary() -> bool {
    DEPTH.with(Cell::get) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::panic)]
    fn a_panic_inside_is_caught_and_the_mark_is_cleared() {
        assert!(!in_boundary());
        let inside = catch(in_boundary).unwrap();
        assert!(inside);
        let caught = catch(|| -> u8 { panic!("boom") });
        assert!(caught.is_err());
        assert!(!in_boundary());
        let nested = catch(|| catch(in_boundary).unwrap() && in_boundary()).unwrap();
        assert!(nested);
    }
}
