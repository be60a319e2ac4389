//! The `rampart` binary end to end: keygen, sign, verify, validate, inspect, diff, and their
//! exit codes (0 ok, 1 invalid, 2 usage or I/O).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rampart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn corpus(rel: &str) -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "artifact",
        "tests",
        "corpus",
        rel,
    ]
    .iter()
    .collect();
    p.to_str().unwrap().to_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Keys {
    _dir: tempfile::TempDir,
    key: PathBuf,
    public: PathBuf,
}

fn keygen() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let o = rampart(&["keygen", "--out", s(dir.path())]);
    assert_eq!(code(&o), 0, "{o:?}");
    Keys {
        key: dir.path().join("rampart.key"),
        public: dir.path().join("rampart.pub"),
        _dir: dir,
    }
}

#[test]
fn keygen_writes_an_owner_only_private_key_and_refuses_to_overwrite() {
    let keys = keygen();
    let mode = std::fs::metadata(&keys.key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&keys.public)
            .unwrap()
            .contains("BEGIN PUBLIC KEY")
    );
    let dir = keys.key.parent().unwrap();
    let before = std::fs::read(&keys.key).unwrap();
    let o = rampart(&["keygen", "--out", s(dir)]);
    assert_eq!(code(&o), 2, "{o:?}");
    assert_eq!(std::fs::read(&keys.key).unwrap(), before, "key overwritten");
    let o = rampart(&["keygen", "--out", s(dir), "--force"]);
    assert_eq!(code(&o), 0);
    assert_ne!(std::fs::read(&keys.key).unwrap(), before);
}

#[test]
fn sign_verify_validate_round_trip() {
    let keys = keygen();
    let out = keys.key.with_file_name("signed.json");
    let o = rampart(&[
        "artifact",
        "sign",
        "--key",
        s(&keys.key),
        &corpus("good/features-60.json"),
        "-o",
        s(&out),
    ]);
    assert_eq!(code(&o), 0, "{o:?}");

    let o = rampart(&["artifact", "verify", "--pubkey", s(&keys.public), s(&out)]);
    assert_eq!(code(&o), 0, "{o:?}");
    assert!(stdout(&o).contains("signature ok"), "{}", stdout(&o));

    let o = rampart(&["artifact", "validate", "--pubkey", s(&keys.public), s(&out)]);
    assert_eq!(code(&o), 0, "{o:?}");
    assert!(stdout(&o).contains("60 features"), "{}", stdout(&o));

    // Another key does not verify it.
    let other = keygen();
    let o = rampart(&["artifact", "verify", "--pubkey", s(&other.public), s(&out)]);
    assert_eq!(code(&o), 1, "{o:?}");
    assert!(stdout(&o).contains("unknown_key"), "{}", stdout(&o));
    let o = rampart(&[
        "artifact",
        "validate",
        "--pubkey",
        s(&other.public),
        s(&out),
    ]);
    assert_eq!(code(&o), 1);

    // A bare document is refused where a signature is required.
    let o = rampart(&[
        "artifact",
        "validate",
        "--pubkey",
        s(&keys.public),
        &corpus("good/features-60.json"),
    ]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("unsigned"), "{}", stdout(&o));
}

#[test]
fn sign_refuses_an_invalid_document_unless_told() {
    let keys = keygen();
    let out = keys.key.with_file_name("nov18.signed.json");
    let o = rampart(&[
        "artifact",
        "sign",
        "--key",
        s(&keys.key),
        &corpus("bad/nov18.json"),
        "-o",
        s(&out),
    ]);
    assert_eq!(code(&o), 1, "{o:?}");
    assert!(!out.exists(), "an invalid document was signed");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("too_many_features") && err.contains("duplicate_name"),
        "{err}"
    );

    let o = rampart(&[
        "artifact",
        "sign",
        "--no-validate",
        "--key",
        s(&keys.key),
        &corpus("bad/nov18.json"),
        "-o",
        s(&out),
    ]);
    assert_eq!(code(&o), 0, "{o:?}");
    let o = rampart(&["artifact", "verify", "--pubkey", s(&keys.public), s(&out)]);
    assert_eq!(code(&o), 0, "the signature itself is fine: {o:?}");
    let o = rampart(&["artifact", "validate", "--pubkey", s(&keys.public), s(&out)]);
    assert_eq!(code(&o), 1);
    let text = stdout(&o);
    assert!(
        text.contains("too_many_features: 210 features, over the limit of 200"),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("duplicate_name"))
            .count(),
        105
    );
}

#[test]
fn validate_json_output_lists_every_issue() {
    let o = rampart(&[
        "artifact",
        "validate",
        "--format",
        "json",
        &corpus("bad/everything-at-once.json"),
    ]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let codes: Vec<&str> = v["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    for want in [
        "wrong_schema",
        "version_zero",
        "bad_timestamp",
        "duplicate_name",
        "empty_name",
        "unknown_type",
    ] {
        assert!(codes.contains(&want), "{want} not in {codes:?}");
    }
}

#[test]
fn validate_uses_the_contract_file_and_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let contract = dir.path().join("c.toml");
    std::fs::write(&contract, "consumer = \"tiny\"\nmax_features = 10\n").unwrap();
    let o = rampart(&[
        "artifact",
        "validate",
        "--contract",
        s(&contract),
        &corpus("good/features-60.json"),
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("60 features, over the limit of 10"),
        "{}",
        stdout(&o)
    );

    let good = corpus("good/features-60.json");
    let o = rampart(&["artifact", "validate", "--previous", &good, &good]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("version_not_above"), "{}", stdout(&o));

    std::fs::write(&contract, "max_featurez = 10\n").unwrap();
    let o = rampart(&["artifact", "validate", "--contract", s(&contract), &good]);
    assert_eq!(code(&o), 2, "a broken contract is a usage error: {o:?}");
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(
        code(&rampart(&[
            "artifact",
            "validate",
            "/nonexistent/file.json"
        ])),
        2
    );
    assert_eq!(code(&rampart(&["artifact", "frobnicate"])), 2);
    assert_eq!(
        code(&rampart(&[
            "artifact",
            "verify",
            &corpus("good/features-60.json")
        ])),
        2
    );
}

#[test]
fn a_100_mb_file_is_invalid_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(100 * 1024 * 1024)
        .unwrap();
    let o = rampart(&["artifact", "validate", s(&path)]);
    assert_eq!(code(&o), 1, "{o:?}");
    assert!(stdout(&o).contains("too_large"), "{}", stdout(&o));
}

#[test]
fn inspect_and_diff() {
    let o = rampart(&[
        "artifact",
        "inspect",
        &corpus("good/signed-features-60.json"),
    ]);
    assert_eq!(code(&o), 0, "{o:?}");
    let text = stdout(&o);
    assert!(
        text.contains("version:    7")
            && text.contains("features:   60")
            && text.contains("sha256:"),
        "{text}"
    );

    let o = rampart(&[
        "artifact",
        "diff",
        &corpus("good/features-60.json"),
        &corpus("bad/nov18.json"),
    ]);
    assert_eq!(code(&o), 0, "{o:?}");
    let text = stdout(&o);
    assert!(text.contains("features 60 -> 210 (ratio 3.50"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("+ r0_shard_col_"))
            .count(),
        45,
        "{text}"
    );

    let o = rampart(&[
        "artifact",
        "diff",
        "--format",
        "json",
        &corpus("good/features-60.json"),
        &corpus("good/features-60.json"),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["count_ratio"], 1.0);

    let o = rampart(&["artifact", "inspect", &corpus("bad/truncated.json")]);
    assert_eq!(code(&o), 1);
}

/// Issue 13: `rampart artifact inspect FILE | head -3` panicked with a backtrace. The
/// reader is closed before the process starts, so its first write meets a broken pipe.
#[test]
fn a_closed_pipe_on_stdout_ends_the_command_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args([
            "artifact",
            "inspect",
            &corpus("good/signed-features-60.json"),
        ])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code(&o), 0, "{stderr}");
}

#[test]
fn shadow_holds_a_valid_file_whose_every_score_is_one_and_passes_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, doc: &rampart_artifact::Document| {
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec(doc).unwrap()).unwrap();
        p
    };
    let serving = write("v1.json", &rampart_up::inject::catalog_document(1).unwrap());
    let same = write("v2.json", &rampart_up::inject::catalog_document(2).unwrap());
    let mut ones = rampart_up::inject::catalog_document(3).unwrap();
    ones.model.bias = rampart_up::inject::ALL_ONES_BIAS;
    let ones = write("v3.json", &ones);

    let ok = rampart(&[
        "artifact",
        "shadow",
        "--candidate",
        s(&same),
        "--against",
        s(&serving),
    ]);
    assert_eq!(code(&ok), 0, "{ok:?}");
    assert!(stdout(&ok).starts_with("within policy:"), "{}", stdout(&ok));

    let held = rampart(&[
        "artifact",
        "shadow",
        "--candidate",
        s(&ones),
        "--against",
        s(&serving),
        "--format",
        "json",
    ]);
    assert_eq!(code(&held), 1, "{held:?}");
    let report: serde_json::Value = serde_json::from_slice(&held.stdout).unwrap();
    assert_eq!(report["shift"]["verdict"], "fail", "{report}");
    assert!(report["held"].as_array().unwrap().len() >= 2, "{report}");
    assert!(report["requests"].as_u64().unwrap() > 1_000);

    // A recorded sample: unlabelled, read from JSON lines; a bad line is an error (exit 2).
    let sample = dir.path().join("sample.jsonl");
    let ds =
        rampart_fit::dataset::Dataset::build(&rampart_traffic::Profiles::embedded().unwrap(), 7);
    let lines: String = ds
        .rows
        .iter()
        .take(600)
        .map(|row| {
            let features: serde_json::Map<String, serde_json::Value> =
                rampart_score::FeatureId::ALL
                    .iter()
                    .zip(row)
                    .filter(|(_, x)| **x != 0.0)
                    .map(|(id, x)| (id.name().to_owned(), serde_json::json!(x)))
                    .collect();
            format!("{}\n", serde_json::json!({ "features": features }))
        })
        .collect();
    std::fs::write(&sample, lines).unwrap();
    let rec = rampart(&[
        "artifact",
        "shadow",
        "--candidate",
        s(&ones),
        "--against",
        s(&serving),
        "--sample",
        s(&sample),
    ]);
    assert_eq!(code(&rec), 1, "{rec:?}");
    assert!(
        stdout(&rec).contains("600 requests scored"),
        "{}",
        stdout(&rec)
    );
    std::fs::write(&sample, "{\"features\": {\"nope\": 1}}\n").unwrap();
    let bad = rampart(&[
        "artifact",
        "shadow",
        "--candidate",
        s(&ones),
        "--against",
        s(&serving),
        "--sample",
        s(&sample),
    ]);
    assert_eq!(code(&bad), 2, "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not an extractor"),
        "{bad:?}"
    );
}
