//! Peak heap while rejecting hostile inputs, measured with dhat (goal: ≤ 4 MiB each).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rampart_artifact::{Contract, Policy, check};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Peak heap allowed while rejecting one input.
const MAX_PEAK: u64 = 4 * 1024 * 1024;

/// Bytes `check` allocated in all (an upper bound on the heap it added at its peak).
fn allocated_by_check(bytes: &[u8]) -> u64 {
    let contract = Contract::default();
    let policy = Policy {
        contract: &contract,
        keyring: None,
        previous: None,
    };
    let before = dhat::HeapStats::get();
    let r = check(bytes, &policy);
    assert!(r.is_err());
    drop(r);
    let after = dhat::HeapStats::get();
    after.total_bytes - before.total_bytes
}

// One test function: dhat allows one profiler at a time per process.
#[test]
fn hostile_inputs_are_rejected_in_bounded_heap() {
    let _profiler = dhat::Profiler::builder().testing().build();

    let big = vec![b'{'; 100 * 1024 * 1024];
    let peak = allocated_by_check(&big);
    eprintln!("100 MB input: {peak} bytes allocated");
    assert!(peak <= MAX_PEAK, "100 MB input: {peak} bytes allocated");
    drop(big);

    let mut deep = vec![b'['; 1024 * 1024];
    deep.shrink_to_fit();
    let peak = allocated_by_check(&deep);
    eprintln!("1 MiB nesting: {peak} bytes allocated");
    assert!(peak <= MAX_PEAK, "1 MiB nesting: {peak} bytes allocated");
    drop(deep);

    let mut nested_objects = Vec::with_capacity(1024 * 1024);
    while nested_objects.len() + 5 < 1024 * 1024 {
        nested_objects.extend_from_slice(b"{\"a\":");
    }
    let peak = allocated_by_check(&nested_objects);
    eprintln!("1 MiB of nested objects: {peak} bytes allocated");
    assert!(
        peak <= MAX_PEAK,
        "1 MiB of nested objects: {peak} bytes allocated"
    );
}
