//! The golden corpus: every file in `corpus/good` passes, every file in `corpus/bad` fails
//! with exactly the issues its `.expect` file lists. Regenerate with `corpus/generate.py`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rampart_artifact::limits::{DEFAULT_MAX_BYTES, ReadError, read_bounded, wire_limit};
use rampart_artifact::{Contract, Issue, Keyring, Policy, PublicKey, check};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

fn keyring() -> Keyring {
    let pem = fs::read_to_string(dir("keys").join("test.pub")).unwrap();
    Keyring::new([PublicKey::from_pem(&pem).unwrap()])
}

fn inputs(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir("corpus").join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e != "expect"))
        .collect();
    v.sort();
    v
}

fn run(path: &Path) -> Result<(), Vec<Issue>> {
    let bytes = fs::read(path).unwrap();
    let keys = keyring();
    let signed = path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("signed-");
    let contract = Contract::default();
    let policy = Policy {
        contract: &contract,
        keyring: signed.then_some(&keys),
        previous: None,
    };
    check(&bytes, &policy).map(|_| ())
}

fn counts(issues: &[Issue]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in issues {
        *m.entry(i.code().to_owned()).or_default() += 1;
    }
    m
}

fn expected(path: &Path) -> BTreeMap<String, usize> {
    let text = fs::read_to_string(path.with_extension("expect"))
        .unwrap_or_else(|_| panic!("{} has no .expect file", path.display()));
    let mut m = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let code = parts.next().unwrap();
        let n: usize = parts.next().map_or(1, |n| n.parse().unwrap());
        assert!(
            Issue::CODES.contains(&code),
            "{}: unknown code {code}",
            path.display()
        );
        m.insert(code.to_owned(), n);
    }
    m
}

#[test]
fn every_good_file_passes() {
    let files = inputs("good");
    assert!(files.len() >= 4, "{files:?}");
    for path in files {
        if let Err(issues) = run(&path) {
            panic!("{} should pass:\n{issues:#?}", path.display());
        }
    }
}

#[test]
fn every_bad_file_fails_with_exactly_its_issues() {
    let files = inputs("bad");
    assert!(files.len() >= 30, "{}", files.len());
    let mut failures = Vec::new();
    for path in files {
        let want = expected(&path);
        match run(&path) {
            Ok(()) => failures.push(format!("{}: passed, expected {want:?}", path.display())),
            Err(issues) => {
                let got = counts(&issues);
                if got != want {
                    failures.push(format!(
                        "{}: got {got:?}, expected {want:?}",
                        path.display()
                    ));
                }
                // Every message is one line, and short even for hostile input.
                for i in &issues {
                    let msg = i.to_string();
                    assert!(!msg.contains('\n'), "{}: {msg}", path.display());
                    assert!(msg.len() < 400, "{}: {} bytes", path.display(), msg.len());
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_18_november_file_names_its_duplicates() {
    let err = run(&dir("corpus").join("bad/nov18.json")).unwrap_err();
    assert_eq!(
        err[0],
        Issue::TooManyFeatures {
            count: 210,
            limit: 200
        }
    );
    assert!(
        err.contains(&Issue::DuplicateName {
            name: "\"ua_length\"".into(),
            count: 2
        }),
        "{err:?}"
    );
}

#[test]
fn a_100_mb_input_is_refused_before_parsing() {
    let big = vec![b' '; 100 * 1024 * 1024];
    let contract = Contract::default();
    let policy = Policy {
        contract: &contract,
        keyring: None,
        previous: None,
    };
    let issues = check(&big, &policy).unwrap_err();
    assert_eq!(issues.len(), 1);
    assert!(
        matches!(issues[0], Issue::TooLarge { what: "file", .. }),
        "{issues:?}"
    );
}

#[test]
fn a_100_mb_file_is_refused_while_reading() {
    let dir = std::env::temp_dir().join(format!("rampart-corpus-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.json");
    let f = fs::File::create(&path).unwrap();
    f.set_len(100 * 1024 * 1024).unwrap(); // sparse: costs no disk
    let limit = wire_limit(DEFAULT_MAX_BYTES);
    let r = read_bounded(fs::File::open(&path).unwrap(), limit);
    fs::remove_dir_all(&dir).unwrap();
    // Refused for its size at the limit, not for any other I/O reason.
    match r {
        Err(ReadError::TooLarge(t)) => assert_eq!(t.limit, limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn a_mebibyte_of_nesting_is_too_deep_not_a_stack_overflow() {
    for open in [b'[', b'{'] {
        let mut deep = vec![open; 1024 * 1024 - 2];
        deep.insert(0, b' ');
        let contract = Contract::default();
        let issues = check(
            &deep,
            &Policy {
                contract: &contract,
                keyring: None,
                previous: None,
            },
        )
        .unwrap_err();
        assert!(matches!(issues[..], [Issue::TooDeep { .. }]), "{issues:?}");
    }
}

#[test]
fn an_older_version_is_refused() {
    let bytes = fs::read(dir("corpus").join("good/features-60.json")).unwrap();
    let contract = Contract::default();
    let first = check(
        &bytes,
        &Policy {
            contract: &contract,
            keyring: None,
            previous: None,
        },
    )
    .unwrap();
    let issues = check(
        &bytes,
        &Policy {
            contract: &contract,
            keyring: None,
            previous: Some(first.validated.document()),
        },
    )
    .unwrap_err();
    assert_eq!(
        issues,
        [Issue::VersionNotAbove {
            version: 7,
            previous: 7
        }]
    );
}

#[test]
fn bare_and_signed_forms_have_the_same_digest() {
    let contract = Contract::default();
    let keys = keyring();
    let bare = fs::read(dir("corpus").join("good/features-60.json")).unwrap();
    let signed = fs::read(dir("corpus").join("good/signed-features-60.json")).unwrap();
    let a = check(
        &bare,
        &Policy {
            contract: &contract,
            keyring: None,
            previous: None,
        },
    )
    .unwrap();
    let b = check(
        &signed,
        &Policy {
            contract: &contract,
            keyring: Some(&keys),
            previous: None,
        },
    )
    .unwrap();
    assert_eq!(a.validated.digest(), b.validated.digest());
    assert!(b.signer.is_some() && b.enveloped);
    assert!(a.signer.is_none() && !a.enveloped);
}
