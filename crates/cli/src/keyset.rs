//! `rampart keyset init|sign|show`: the root of trust on the operator's machine.
//!
//! - `init` makes `n` root key pairs (`root-1.key` … mode 0600, `root-1.pub` …) and
//!   `root.json`, the root document signed by all of them (threshold `k`).
//! - `sign` writes a keyset (generator, director, operator public keys, a version and an
//!   expiry) signed by the root keys given, and checks it against the root before writing:
//!   below the threshold, nothing is written.
//! - `show` prints a root or keyset file (and verifies a keyset with `--root`).
//!
//! The drill (new generator key, overlap, retire; director key) is in `docs/trust.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use rampart_artifact::{
    Envelope, KEYSET_PAYLOAD_TYPE, Keyring, Keyset, KeysetSpec, MAX_ROOT_KEYS,
    MAX_TRUST_FILE_BYTES, MAX_TRUST_SIGNATURES, PublicKey, ROOT_PAYLOAD_TYPE, Root, RootSpec,
    SecretKey, format_time,
};
use rampart_host::clock::now_ms;
use rampart_host::file::write_private;

use crate::files::{read_capped, read_text, write_atomic};

/// The root document's file name in `init --out`.
pub(crate) const ROOT_FILE: &str = "root.json";

/// How long a root lasts unless `--expires-days` says (roots change rarely).
pub(crate) const DEFAULT_ROOT_DAYS: u64 = 365;

/// How long a keyset lasts unless `--expires-days` says (re-signed on a schedule, so a
/// stolen generator key stops working on its own).
pub(crate) const DEFAULT_KEYSET_DAYS: u64 = 90;

/// A day in ms.
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// `rampart keyset …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Make root keys and the root document signed by them.
    Init(InitArgs),
    /// Sign a keyset (generator, director, operator keys) with root keys.
    Sign(SignArgs),
    /// Print a root or keyset file; verify a keyset with --root.
    Show(ShowArgs),
}

/// `rampart keyset init`.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// Directory for `root-N.key` (mode 0600), `root-N.pub` and `root.json`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// How many root keys.
    #[arg(long, value_name = "N", default_value_t = 3)]
    keys: usize,
    /// How many of them must sign a keyset.
    #[arg(long, value_name = "K", default_value_t = 2)]
    threshold: usize,
    /// Days until the root expires.
    #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_ROOT_DAYS)]
    expires_days: u64,
}

/// `rampart keyset sign`.
#[derive(Debug, clap::Args)]
pub(crate) struct SignArgs {
    /// The root document the keyset must verify against.
    #[arg(long, value_name = "FILE")]
    root: PathBuf,
    /// A root private key to sign with; repeat for k of them.
    #[arg(long = "root-key", value_name = "FILE", required = true)]
    root_keys: Vec<PathBuf>,
    /// The keyset's version: above the one in use (edges refuse a lower one).
    #[arg(long, value_name = "N")]
    keyset_version: u64,
    /// A generator public key (feature files); repeatable (two during a rotation).
    #[arg(long, value_name = "FILE")]
    generator: Vec<PathBuf>,
    /// A director public key (the control plane's orders); repeatable.
    #[arg(long, value_name = "FILE")]
    director: Vec<PathBuf>,
    /// An operator public key; repeatable.
    #[arg(long, value_name = "FILE")]
    operator: Vec<PathBuf>,
    /// Days until the keyset expires.
    #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_KEYSET_DAYS)]
    expires_days: u64,
    /// Where to write the keyset.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// `rampart keyset show`.
#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// A root or keyset file.
    file: PathBuf,
    /// Verify the keyset against this root.
    #[arg(long, value_name = "FILE")]
    root: Option<PathBuf>,
}

pub(crate) fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Init(a) => init(&a),
        Command::Sign(a) => sign(&a),
        Command::Show(a) => show(&a),
    }
}

fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    if args.keys == 0 || args.keys > MAX_ROOT_KEYS {
        bail!("--keys must be 1 to {MAX_ROOT_KEYS}");
    }
    if args.threshold == 0 || args.threshold > args.keys {
        bail!("--threshold must be 1 to --keys ({})", args.keys);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let root_path = args.out.join(ROOT_FILE);
    if root_path.exists() {
        bail!("{} exists: a root is made once", root_path.display());
    }
    let mut keys = Vec::with_capacity(args.keys);
    for i in 1..=args.keys {
        let key = SecretKey::generate()?;
        write_key_pair(&args.out, &format!("root-{i}"), &key)?;
        keys.push(key);
    }
    let spec = RootSpec {
        version: 1,
        expires: format_time(now_ms().saturating_add(args.expires_days.saturating_mul(DAY_MS))),
        threshold: args.threshold,
        keys: keys.iter().map(SecretKey::public).collect(),
    };
    let signers: Vec<&SecretKey> = keys.iter().collect();
    let envelope = spec.sign(&signers)?;
    Root::trust(&envelope.to_json(), now_ms()).context("the new root does not verify")?;
    write_atomic(&root_path, &envelope.to_json())?;
    println!(
        "root version 1: {} of {} keys, expires {}",
        args.threshold, args.keys, spec.expires
    );
    println!("root: {}", root_path.display());
    println!(
        "root keys: {}/root-1.key … root-{}.key (mode 0600; keep them apart, offline)",
        args.out.display(),
        args.keys
    );
    Ok(ExitCode::SUCCESS)
}

fn sign(args: &SignArgs) -> anyhow::Result<ExitCode> {
    let now = now_ms();
    let root = Root::trust(&read_capped(&args.root, MAX_TRUST_FILE_BYTES)?, now)
        .with_context(|| format!("root {}", args.root.display()))?;
    let mut signers = Vec::with_capacity(args.root_keys.len());
    for f in &args.root_keys {
        signers.push(
            SecretKey::from_pem(&read_text(f)?)
                .with_context(|| format!("root key {}", f.display()))?,
        );
    }
    let spec = KeysetSpec {
        version: args.keyset_version,
        expires: format_time(now.saturating_add(args.expires_days.saturating_mul(DAY_MS))),
        generator: public_keys(&args.generator)?,
        director: public_keys(&args.director)?,
        operator: public_keys(&args.operator)?,
    };
    let refs: Vec<&SecretKey> = signers.iter().collect();
    let envelope = spec.sign(&refs)?;
    let bytes = envelope.to_json();
    let keyset = Keyset::verify(&bytes, &root, None, now)
        .context("the keyset does not verify against the root: nothing written")?;
    write_atomic(&args.out, &bytes)?;
    print_keyset(&keyset);
    println!("keyset: {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let now = now_ms();
    let bytes = read_capped(&args.file, MAX_TRUST_FILE_BYTES)?;
    let envelope = Envelope::from_json(&bytes, MAX_TRUST_FILE_BYTES, MAX_TRUST_SIGNATURES)
        .with_context(|| format!("{}", args.file.display()))?;
    match envelope.payload_type() {
        ROOT_PAYLOAD_TYPE => {
            let root = Root::trust(&bytes, now)
                .with_context(|| format!("root {}", args.file.display()))?;
            println!(
                "root version {}: {} of {} keys, expires {}",
                root.version(),
                root.threshold(),
                root.keys().keys().len(),
                root.expires()
            );
            print_ids("root", root.keys());
        }
        KEYSET_PAYLOAD_TYPE => {
            let Some(root_path) = &args.root else {
                bail!("a keyset is verified against its root: give --root FILE");
            };
            let root = Root::trust(&read_capped(root_path, MAX_TRUST_FILE_BYTES)?, now)
                .with_context(|| format!("root {}", root_path.display()))?;
            let keyset = Keyset::verify(&bytes, &root, None, now)
                .with_context(|| format!("keyset {}", args.file.display()))?;
            print_keyset(&keyset);
        }
        other => bail!(
            "{} is a {other:?} envelope, not a root or keyset",
            args.file.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_keyset(keyset: &Keyset) {
    println!(
        "keyset version {}, expires {}",
        keyset.version(),
        keyset.expires()
    );
    print_ids("generator", keyset.generator());
    print_ids("director", keyset.director());
    print_ids("operator", keyset.operator());
}

fn print_ids(role: &str, ring: &Keyring) {
    let ids: Vec<String> = ring.keys().iter().map(|k| k.id().to_string()).collect();
    println!(
        "  {role}: {}",
        if ids.is_empty() {
            "none".to_owned()
        } else {
            ids.join(", ")
        }
    );
}

fn public_keys(files: &[PathBuf]) -> anyhow::Result<Vec<PublicKey>> {
    files
        .iter()
        .map(|f| {
            PublicKey::from_pem(&read_text(f)?)
                .with_context(|| format!("public key {}", f.display()))
        })
        .collect()
}

/// Writes `NAME.key` (mode 0600) and `NAME.pub` in `dir`; refuses to replace a key.
pub(crate) fn write_key_pair(dir: &Path, name: &str, key: &SecretKey) -> anyhow::Result<()> {
    let private = dir.join(format!("{name}.key"));
    if private.exists() {
        bail!("{} exists: refusing to replace a key", private.display());
    }
    write_private(&private, key.to_pem()?.as_bytes())?;
    write_atomic(
        &dir.join(format!("{name}.pub")),
        key.public().to_pem()?.as_bytes(),
    )?;
    Ok(())
}
