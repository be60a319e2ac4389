//! `rampart artifact {inspect,validate,sign,verify,diff,shadow}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use rampart_artifact::limits::{HARD_MAX_BYTES, wire_limit};
use rampart_artifact::{
    Contract, Decoded, Diff, Document, Envelope, Issue, Keyring, PAYLOAD_TYPE, Policy, PublicKey,
    Report, SecretKey, check, decode,
};
use serde_json::json;

use crate::{EXIT_INVALID, files};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Show a file's version, digest, features, types and provenance.
    Inspect {
        /// Feature file (bare document or signed envelope).
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Check a file against a consumer contract; exit 1 with every issue when invalid.
    Validate {
        /// Contract file (TOML or JSON); default: the built-in contract.
        #[arg(long)]
        contract: Option<PathBuf>,
        /// Trusted public key(s): the file must then be an envelope signed by one of them.
        #[arg(long)]
        pubkey: Vec<PathBuf>,
        /// The file currently published: the version must be above its version.
        #[arg(long)]
        previous: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Feature file.
        file: PathBuf,
    },
    /// Sign a document into an envelope; validates first.
    Sign {
        /// Private key (PEM, from `rampart keygen`).
        #[arg(long)]
        key: PathBuf,
        /// Contract to validate against; default: the built-in contract.
        #[arg(long)]
        contract: Option<PathBuf>,
        /// Sign the input bytes as they are, valid or not (to build test corpora).
        #[arg(long)]
        no_validate: bool,
        /// Document to sign.
        input: PathBuf,
        /// Where to write the envelope.
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
    },
    /// Verify an envelope's signature.
    Verify {
        /// Trusted public key(s).
        #[arg(long, required = true)]
        pubkey: Vec<PathBuf>,
        /// Signed feature file.
        file: PathBuf,
    },
    /// Score one sample with a candidate file and the serving one: the score shift (KS,
    /// Mann–Whitney), the verdict flips at common block thresholds, and on a labelled sample
    /// the change in precision and recall for bots. Exit 1 when the candidate is held.
    Shadow {
        /// The file to judge.
        #[arg(long)]
        candidate: PathBuf,
        /// The file serving now.
        #[arg(long)]
        against: PathBuf,
        /// Recorded requests, JSON lines (`docs/shadow.md`); default: the embedded labelled
        /// sample.
        #[arg(long)]
        sample: Option<PathBuf>,
        /// Contract both files are compiled under; default: the edge's.
        #[arg(long)]
        contract: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Features added, removed and changed between two files, and the count ratio.
    Diff {
        /// The older file.
        old: PathBuf,
        /// The newer file.
        new: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Lines for people.
    Text,
    /// One JSON object.
    Json,
}

pub(crate) fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Inspect { file, format } => inspect(&file, format),
        Command::Validate {
            contract,
            pubkey,
            previous,
            format,
            file,
        } => validate(
            contract.as_deref(),
            &pubkey,
            previous.as_deref(),
            format,
            &file,
        ),
        Command::Sign {
            key,
            contract,
            no_validate,
            input,
            out,
        } => sign(&key, contract.as_deref(), no_validate, &input, &out),
        Command::Verify { pubkey, file } => verify(&pubkey, &file),
        Command::Diff { old, new, format } => diff(&old, &new, format),
        Command::Shadow {
            candidate,
            against,
            sample,
            contract,
            format,
        } => shadow(
            &candidate,
            &against,
            sample.as_deref(),
            contract.as_deref(),
            format,
        ),
    }
}

/// The contract from a file (TOML, or JSON when it starts with `{`), or the built-in one.
pub(crate) fn load_contract(path: Option<&Path>) -> anyhow::Result<Contract> {
    let Some(path) = path else {
        return Ok(Contract::default());
    };
    let text = files::read_text(path)?;
    Contract::parse(&text).with_context(|| format!("contract {}", path.display()))
}

pub(crate) fn load_keyring(paths: &[PathBuf]) -> anyhow::Result<Keyring> {
    let mut keys = Vec::with_capacity(paths.len());
    for path in paths {
        let pem = files::read_text(path)?;
        keys.push(
            PublicKey::from_pem(&pem).with_context(|| format!("public key {}", path.display()))?,
        );
    }
    Ok(Keyring::new(keys))
}

/// Reads a feature file for inspection: bounded by the largest contract allowed.
fn read_any(path: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(files::read_capped(path, wire_limit(HARD_MAX_BYTES))?)
}

fn decode_or_report(path: &Path, bytes: &[u8], format: Format) -> Option<Decoded> {
    match decode(bytes, HARD_MAX_BYTES) {
        Ok(d) => Some(d),
        Err(issues) => {
            print_invalid(path, &issues, format);
            None
        }
    }
}

fn print_invalid(path: &Path, issues: &[Issue], format: Format) {
    match format {
        Format::Text => {
            println!("{}: invalid, {} issue(s)", path.display(), issues.len());
            print!("{}", Report(issues));
        }
        Format::Json => println!(
            "{}",
            json!({ "file": path.display().to_string(), "valid": false, "issues": issues })
        ),
    }
}

fn inspect(path: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let bytes = read_any(path)?;
    let Some(decoded) = decode_or_report(path, &bytes, format) else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let doc = &decoded.document;
    let mut types: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &doc.features {
        *types.entry(f.ty.as_str()).or_default() += 1;
    }
    let keyids: Vec<&str> = decoded.envelope.iter().flat_map(Envelope::keyids).collect();
    match format {
        Format::Json => println!(
            "{}",
            json!({
                "file": path.display().to_string(),
                "schema": doc.schema,
                "version": doc.version,
                "digest": doc.digest(),
                "created_at": doc.created_at,
                "features": doc.features.len(),
                "types": types,
                "bias": doc.model.bias,
                "provenance": doc.provenance,
                "signed": decoded.envelope.is_some(),
                "keyids": keyids,
            })
        ),
        Format::Text => {
            println!("file:       {}", path.display());
            println!("schema:     {}", doc.schema);
            println!("version:    {}", doc.version);
            println!("digest:     {}", doc.digest());
            println!("created_at: {}", doc.created_at);
            println!(
                "signed:     {}",
                if keyids.is_empty() {
                    "no (bare document)".to_owned()
                } else {
                    format!("by key(s) {} (not verified; use verify)", keyids.join(", "))
                }
            );
            println!("features:   {}", doc.features.len());
            let types: Vec<String> = types.iter().map(|(t, n)| format!("{t} ×{n}")).collect();
            println!("types:      {}", types.join(", "));
            println!("bias:       {}", doc.model.bias);
            let p = &doc.provenance;
            println!("provenance:");
            println!("  source:    {}", p.source);
            println!("  query:     {}", p.query);
            println!("  rows:      {}", p.rows);
            println!("  generator: {} {}", p.generator, p.generator_version);
            if let Some(v) = &p.server_version {
                println!("  server:    {v}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn validate(
    contract: Option<&Path>,
    pubkeys: &[PathBuf],
    previous: Option<&Path>,
    format: Format,
    path: &Path,
) -> anyhow::Result<ExitCode> {
    let contract = load_contract(contract)?;
    let keyring = load_keyring(pubkeys)?;
    let previous = match previous {
        Some(p) => {
            let bytes = read_any(p)?;
            let decoded = decode(&bytes, HARD_MAX_BYTES).map_err(|issues| {
                anyhow::anyhow!(
                    "previous file {} is unreadable:\n{}",
                    p.display(),
                    Report(&issues)
                )
            })?;
            Some(decoded.document)
        }
        None => None,
    };
    let limit = wire_limit(contract.max_bytes());
    // A file too large for the contract is an invalid input (exit 1), not an I/O error.
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot stat {}", path.display()))?
        .len();
    if len > u64::try_from(limit).unwrap_or(u64::MAX) {
        let issue = Issue::TooLarge {
            what: "file",
            size: Some(len),
            limit,
        };
        print_invalid(path, &[issue], format);
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let bytes = files::read_capped(path, limit)?;
    let policy = Policy {
        contract: &contract,
        keyring: (!pubkeys.is_empty()).then_some(&keyring),
        previous: previous.as_ref(),
    };
    match check(&bytes, &policy) {
        Ok(checked) => {
            let v = &checked.validated;
            let signature = match (&checked.signer, checked.enveloped) {
                (Some(id), _) => format!("signed by {id}"),
                (None, true) => "signature not checked (no --pubkey)".to_owned(),
                (None, false) => "unsigned".to_owned(),
            };
            match format {
                Format::Text => println!(
                    "{}: valid for consumer {}: version {}, {}, {} features, {}",
                    path.display(),
                    contract.consumer(),
                    v.version(),
                    v.digest(),
                    v.document().features.len(),
                    signature
                ),
                Format::Json => println!(
                    "{}",
                    json!({
                        "file": path.display().to_string(),
                        "valid": true,
                        "issues": [],
                        "consumer": contract.consumer(),
                        "version": v.version(),
                        "digest": v.digest(),
                        "features": v.document().features.len(),
                        "signer": checked.signer,
                    })
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(issues) => {
            print_invalid(path, &issues, format);
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}

fn sign(
    key: &Path,
    contract: Option<&Path>,
    no_validate: bool,
    input: &Path,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let key = SecretKey::from_pem(&files::read_text(key)?)
        .with_context(|| format!("private key {}", key.display()))?;
    let envelope = if no_validate {
        let bytes = read_any(input)?;
        Envelope::sign_payload(PAYLOAD_TYPE, bytes, &key)
    } else {
        let contract = load_contract(contract)?;
        let bytes = files::read_capped(input, wire_limit(contract.max_bytes()))?;
        let policy = Policy {
            contract: &contract,
            keyring: None,
            previous: None,
        };
        match check(&bytes, &policy) {
            Ok(checked) if checked.enveloped => {
                anyhow::bail!(
                    "{} is already an envelope; sign the bare document",
                    input.display()
                )
            }
            Ok(checked) => Envelope::sign(checked.validated.document(), &key),
            Err(issues) => {
                eprintln!(
                    "refusing to sign {}: {} issue(s)",
                    input.display(),
                    issues.len()
                );
                eprint!("{}", Report(&issues));
                eprintln!("(--no-validate signs anyway)");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        }
    };
    files::write_atomic(out, &envelope.to_json())?;
    println!(
        "signed {} with key {} -> {}",
        input.display(),
        key.public().id(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(pubkeys: &[PathBuf], path: &Path) -> anyhow::Result<ExitCode> {
    let keyring = load_keyring(pubkeys)?;
    let bytes = read_any(path)?;
    let decoded = match decode(&bytes, HARD_MAX_BYTES) {
        Ok(d) => d,
        Err(issues) => {
            print_invalid(path, &issues, Format::Text);
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let Some(envelope) = &decoded.envelope else {
        println!("{}: {}", path.display(), Issue::Unsigned);
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    match envelope.verify(&keyring) {
        Ok(id) => {
            println!(
                "{}: signature ok, key {id}, version {}, {}",
                path.display(),
                decoded.document.version,
                decoded.document.digest()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(issue) => {
            println!("{}: {}: {issue}", path.display(), issue.code());
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// `rampart artifact shadow`.
fn shadow(
    candidate: &Path,
    against: &Path,
    sample: Option<&Path>,
    contract: Option<&Path>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    use rampart_fit::shadow::{MAX_SAMPLE_BYTES, Sample, ShadowPolicy, shadow};
    let contract = match contract {
        Some(_) => load_contract(contract)?,
        None => rampart_score::edge_contract(),
    };
    let compile = |p: &Path| -> anyhow::Result<Option<rampart_score::Model>> {
        let bytes = read_any(p)?;
        let Some(decoded) = decode_or_report(p, &bytes, format) else {
            return Ok(None);
        };
        let validated = match rampart_artifact::validate(&decoded.document, &contract, None) {
            Ok(v) => v,
            Err(issues) => {
                print_invalid(p, &issues, format);
                return Ok(None);
            }
        };
        rampart_score::Model::compile(&validated, contract.max_features())
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
    };
    let (Some(cand), Some(serving)) = (compile(candidate)?, compile(against)?) else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let sample = match sample {
        None => Sample::embedded()?,
        Some(p) => {
            let limit = usize::try_from(MAX_SAMPLE_BYTES).unwrap_or(usize::MAX);
            let bytes = files::read_capped(p, limit)?;
            let text = std::str::from_utf8(&bytes)
                .with_context(|| format!("{} is not UTF-8", p.display()))?;
            Sample::from_jsonl(text).with_context(|| format!("sample {}", p.display()))?
        }
    };
    let report = shadow(&cand, &serving, &sample, &ShadowPolicy::default());
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", report.text()),
    }
    Ok(if report.passes() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

fn diff(old: &Path, new: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let read = |p: &Path| -> anyhow::Result<Option<Document>> {
        let bytes = read_any(p)?;
        Ok(decode_or_report(p, &bytes, format).map(|d| d.document))
    };
    let (Some(a), Some(b)) = (read(old)?, read(new)?) else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let d = Diff::between(&a, &b);
    match format {
        Format::Json => println!(
            "{}",
            json!({
                "diff": d,
                "count_ratio": d.count_ratio(),
                "name_churn": d.name_churn(),
            })
        ),
        Format::Text => {
            println!(
                "version {} -> {}, features {} -> {} (ratio {:.2}, name churn {:.0}%)",
                d.old_version,
                d.new_version,
                d.old_count,
                d.new_count,
                d.count_ratio(),
                d.name_churn() * 100.0
            );
            for f in &d.added {
                println!("+ {} {} {}", f.name, f.ty, f.weight);
            }
            for f in &d.removed {
                println!("- {} {} {}", f.name, f.ty, f.weight);
            }
            for c in &d.changed {
                println!(
                    "~ {} {} -> {}, {} -> {}",
                    c.name, c.ty.0, c.ty.1, c.weight.0, c.weight.1
                );
            }
            if let Some((o, n)) = d.bias {
                println!("~ bias {o} -> {n}");
            }
            if d.is_empty() {
                println!("no changes");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
