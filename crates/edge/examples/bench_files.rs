//! Writes the signed feature files `scripts/bench-edge.sh` needs: a public key, a first
//! version to serve, and a hot-swap series (valid versions alternating with invalid files).
//!
//! `cargo run --release -p rampart-edge --example bench_files -- OUT_DIR COUNT`
//!
//! - `OUT_DIR/key.pub`: the public key to pass as `--pubkey`.
//! - `OUT_DIR/v1.json`: the example model, version 1, signed.
//! - `OUT_DIR/swap/NNNNN.json`: `COUNT` files in apply order; even ones are the example model
//!   at the next version, odd ones rotate through the 18 November file (every feature
//!   twice, past 200), a truncated file, a file that is not JSON, a tampered payload and an
//!   older version.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use rampart_artifact::{Envelope, SecretKey};
use rampart_score::example_document;

/// A fixed seed: the files only need to verify against the key written beside them.
const SEED: [u8; 32] = [42; 32];

/// Most files one run writes.
const MAX_COUNT: usize = 100_000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(out), Some(count)) = (args.next(), args.next()) else {
        bail!("usage: bench_files OUT_DIR COUNT");
    };
    let out = PathBuf::from(out);
    let count: usize = count.parse().context("COUNT must be a number")?;
    if count > MAX_COUNT {
        bail!("COUNT is at most {MAX_COUNT}");
    }
    let key = SecretKey::from_seed(SEED);
    let swap = out.join("swap");
    fs::create_dir_all(&swap).with_context(|| format!("cannot create {}", swap.display()))?;
    fs::write(out.join("key.pub"), key.public().to_pem()?).context("key.pub")?;
    fs::write(
        out.join("v1.json"),
        Envelope::sign(&example_document(1), &key).to_json(),
    )
    .context("v1.json")?;

    let mut version = 1u64;
    for i in 0..count {
        let bytes = if i % 2 == 0 {
            version += 1;
            Envelope::sign(&example_document(version), &key).to_json()
        } else {
            match (i / 2) % 5 {
                0 => {
                    let mut doc = example_document(version + 1);
                    let base = doc.features.clone();
                    while doc.features.len() <= 200 {
                        doc.features.extend(base.iter().cloned());
                    }
                    Envelope::sign(&doc, &key).to_json()
                }
                1 => {
                    let whole = Envelope::sign(&example_document(version + 1), &key).to_json();
                    whole.get(..whole.len() / 2).unwrap_or_default().to_vec()
                }
                2 => b"this is not a feature file\n".to_vec(),
                3 => {
                    let mut env = Envelope::sign(&example_document(version + 1), &key);
                    env.set_payload(example_document(version + 2).canonical_bytes());
                    env.to_json()
                }
                _ => Envelope::sign(&example_document(1), &key).to_json(),
            }
        };
        let path = swap.join(format!("{i:05}.json"));
        fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "wrote {count} swap files (last valid version {version}) to {}",
        swap.display()
    );
    Ok(())
}
