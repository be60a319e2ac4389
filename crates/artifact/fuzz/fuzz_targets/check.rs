//! Arbitrary bytes through the whole untrusted-input path: no panic, no hang, and whatever
//! passes has canonical bytes that decode back to the same document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_artifact::{Contract, Keyring, Policy, SecretKey, check, decode};

fuzz_target!(|data: &[u8]| {
    let contract = Contract::default();
    let keys = Keyring::new([SecretKey::from_seed([1; 32]).public()]);
    for keyring in [None, Some(&keys)] {
        let policy = Policy { contract: &contract, keyring, previous: None };
        if let Ok(checked) = check(data, &policy) {
            let doc = checked.validated.document();
            let bytes = doc.canonical_bytes();
            let back = decode(&bytes, usize::MAX / 2).map(|d| d.document);
            assert_eq!(back.as_ref().ok(), Some(doc));
            assert_eq!(doc.digest(), checked.validated.digest());
        }
    }
});
