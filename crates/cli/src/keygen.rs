//! `rampart keygen`: a new ed25519 key pair.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use rampart_artifact::SecretKey;

/// File name of the private key in `--out`.
pub(crate) const PRIVATE_KEY_FILE: &str = "rampart.key";
/// File name of the public key in `--out`.
pub(crate) const PUBLIC_KEY_FILE: &str = "rampart.pub";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory to write `rampart.key` (mode 0600) and `rampart.pub` into.
    #[arg(long)]
    out: PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let key = SecretKey::generate()?;
    let private = args.out.join(PRIVATE_KEY_FILE);
    let public = args.out.join(PUBLIC_KEY_FILE);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if args.force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(&private).with_context(|| {
        format!(
            "cannot create {} (use --force to replace a key)",
            private.display()
        )
    })?;
    // A replaced file keeps its old mode: set it again.
    fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    f.write_all(key.to_pem()?.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", private.display()))?;
    crate::files::write_atomic(&public, key.public().to_pem()?.as_bytes())?;
    println!("key id {}", key.public().id());
    println!("private key: {} (mode 0600)", private.display());
    println!("public key:  {}", public.display());
    Ok(ExitCode::SUCCESS)
}
