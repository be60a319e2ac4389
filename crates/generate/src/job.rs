//! One generator run: source → candidate → guards → signed file, with the state directory
//! updated. Each run stands alone: what it needs from earlier runs is in the state dir.

use std::fmt;
use std::path::PathBuf;

use rampart_artifact::{
    Contract, Digest, Document, Envelope, Model, Provenance, SCHEMA, SecretKey,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::guard::{self, Refusal};
use crate::publish::{PublishError, Target};
use crate::source::{Candidate, Source, SourceError};
use crate::state::{Freeze, Published, Run, StateDir, StateError};

/// The generator's name in provenance.
pub const GENERATOR: &str = "rampart-generate";

/// The generator's version in provenance.
pub const GENERATOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Exit code: published, or nothing changed.
pub const EXIT_OK: u8 = 0;
/// Exit code: a guard held or refused the file.
pub const EXIT_HELD: u8 = 1;
/// Exit code: usage, I/O or source error.
pub const EXIT_ERROR: u8 = 2;

/// Where a published file goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A file, written atomically.
    File(PathBuf),
    /// The control plane: recorded as published only once it accepted the file.
    Publish(Target),
}

/// Everything one run needs.
#[derive(Debug)]
pub struct Job {
    /// Where the features come from.
    pub source: Source,
    /// Every consumer contract the file must satisfy.
    pub contracts: Vec<Contract>,
    /// The signing key.
    pub key: SecretKey,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Where the file goes.
    pub output: Output,
    /// Let a file the delta guard would hold through.
    pub approve_delta: bool,
    /// Lift a freeze set by the flapping guard (and forget the run history).
    pub unfreeze: bool,
    /// Judges what the candidate would answer against the published file (the `rampart`
    /// binary passes shadow scoring; `None`: not judged).
    pub output_check: Option<Box<dyn OutputCheck>>,
    /// Let a file the output check holds through.
    pub approve_shadow: bool,
}

/// A judge of a candidate's **output**, beside the published file's: the generator builds and
/// guards files but does not score them, so the binary supplies this (shadow scoring on a
/// labelled sample, `rampart_fit::shadow`), as it supplies the edge's contract. It runs only
/// when every other guard passed, there is a published file, and the content changed.
pub trait OutputCheck: std::fmt::Debug + Send {
    /// `Ok` with one line of numbers when within policy; `Err` with every reason when not.
    fn check(&self, candidate: &Document, published: &Document) -> Result<String, Vec<String>>;
}

/// How a run ended, when it did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A new file was published.
    Published {
        /// Its version.
        version: u64,
        /// Its document digest.
        digest: Digest,
        /// Its feature count.
        features: usize,
        /// Where it went.
        output: String,
    },
    /// The candidate has the content of the published file: nothing to publish.
    Unchanged {
        /// The published version.
        version: u64,
    },
    /// A guard refused: nothing published.
    Held {
        /// The version the file would have had.
        version: u64,
        /// Every refusal.
        refusals: Vec<Refusal>,
    },
}

/// Why a run failed (exit 2). Nothing is published when a run fails.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The state directory failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The output file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Output {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The control plane could not be reached, or failed (a refusal of the file itself is a
    /// held run, not this).
    #[error(transparent)]
    Publish(PublishError),
    /// The clock gave a time that cannot be formatted.
    #[error("cannot format the current time: {0}")]
    Time(#[from] time::error::Format),
}

// === impl Job ===

impl Job {
    /// Runs once at `now`. Returns the outcome (exit 0 or 1) or an error (exit 2).
    pub fn run_once(&self, now: OffsetDateTime) -> Result<Outcome, GenerateError> {
        let at = now.format(&Rfc3339)?;
        let dir = StateDir::open(&self.state_dir)?;
        let mut state = dir.load()?;
        let previous = dir.published(&state)?;
        state.counters.runs += 1;
        let candidate = match self.source.fetch() {
            Ok(c) => c,
            Err(e) => {
                state.counters.failed += 1;
                // The source error is what matters; a state write failure on top of it would
                // hide it.
                let _ = dir.save(&state);
                return Err(e.into());
            }
        };
        let version = state.next_version();
        let document = build_document(&candidate, version, &at);
        let content = guard::content_digest(&document.features, document.model.bias);

        if self.unfreeze {
            state.frozen = None;
            state.history.clear();
        }
        let refusals = self.guards(&candidate, &document, previous.as_ref(), &state, content);
        state.record(Run {
            at: at.clone(),
            content,
            features: document.features.len(),
        });
        if let Some(flap) = refusals.iter().find(|r| r.guard() == "flapping") {
            state.frozen = Some(Freeze {
                since: at.clone(),
                reason: flap.to_string(),
            });
        }
        if !refusals.is_empty() {
            state.counters.held += 1;
            dir.save(&state)?;
            return Ok(Outcome::Held { version, refusals });
        }
        if let Some(p) = state.published.as_ref().filter(|p| p.content == content) {
            let version = p.version;
            state.counters.unchanged += 1;
            dir.save(&state)?;
            return Ok(Outcome::Unchanged { version });
        }

        let envelope = Envelope::sign(&document, &self.key);
        let output = match &self.output {
            Output::File(path) => {
                if let Err(e) = rampart_host::file::write_atomic(path, &envelope.to_json()) {
                    state.counters.failed += 1;
                    let _ = dir.save(&state);
                    return Err(GenerateError::Output {
                        path: path.clone(),
                        source: e.into_io(),
                    });
                }
                path.display().to_string()
            }
            // Recorded as published only once the control plane took it: a refused or lost
            // publish leaves the previous file as the one the guards compare against.
            Output::Publish(target) => match target.publish(&envelope.to_json()) {
                Ok(_) => target.url.clone(),
                Err(PublishError::Refused { status, error }) => {
                    state.counters.held += 1;
                    dir.save(&state)?;
                    return Ok(Outcome::Held {
                        version,
                        refusals: vec![Refusal::ControlPlane {
                            status,
                            error: error.error,
                            message: error.message,
                            issues: error.issues.unwrap_or_default(),
                        }],
                    });
                }
                Err(e) => {
                    state.counters.failed += 1;
                    let _ = dir.save(&state);
                    return Err(GenerateError::Publish(e));
                }
            },
        };
        let digest = document.digest();
        dir.save_published(&document)?;
        state.published = Some(Published {
            version,
            digest,
            content,
            at,
            output: output.clone(),
        });
        state.counters.published += 1;
        dir.save(&state)?;
        Ok(Outcome::Published {
            version,
            digest,
            features: document.features.len(),
            output,
        })
    }

    fn guards(
        &self,
        candidate: &Candidate,
        document: &Document,
        previous: Option<&Document>,
        state: &crate::state::State,
        content: Digest,
    ) -> Vec<Refusal> {
        let mut refusals = Vec::new();
        if let Some(f) = &state.frozen {
            refusals.push(Refusal::Frozen {
                since: f.since.clone(),
                reason: f.reason.clone(),
            });
        }
        refusals.extend(guard::duplicates(&candidate.features));
        refusals.extend(guard::weights(&candidate.unweighted));
        refusals.extend(guard::contracts(document, &self.contracts, previous));
        if !self.approve_delta {
            refusals.extend(guard::delta(previous, document));
        }
        if state.frozen.is_none() {
            refusals.extend(guard::flapping(&state.digests(), content));
        }
        let changed = state
            .published
            .as_ref()
            .is_none_or(|p| p.content != content);
        if refusals.is_empty()
            && changed
            && !self.approve_shadow
            && let (Some(check), Some(published)) = (&self.output_check, previous)
            && let Err(reasons) = check.check(document, published)
        {
            refusals.push(Refusal::Shadow { reasons });
        }
        refusals
    }
}

/// The feature file for a candidate.
pub fn build_document(candidate: &Candidate, version: u64, created_at: &str) -> Document {
    Document {
        schema: SCHEMA.to_owned(),
        version,
        created_at: created_at.to_owned(),
        provenance: Provenance {
            source: candidate.source.clone(),
            query: candidate.query.clone(),
            rows: candidate.rows,
            generator: GENERATOR.to_owned(),
            generator_version: GENERATOR_VERSION.to_owned(),
            server_version: candidate.server_version.clone(),
        },
        model: Model {
            bias: candidate.bias,
        },
        features: candidate.features.clone(),
    }
}

// === impl Outcome ===

impl Outcome {
    /// The process exit code: 0 published or unchanged, 1 held.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Published { .. } | Outcome::Unchanged { .. } => EXIT_OK,
            Outcome::Held { .. } => EXIT_HELD,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Published {
                version,
                digest,
                features,
                output,
            } => write!(
                f,
                "published version {version} ({features} features, {digest}) to {output}"
            ),
            Outcome::Unchanged { version } => {
                write!(
                    f,
                    "unchanged: the source matches published version {version}; nothing written"
                )
            }
            Outcome::Held { version, refusals } => {
                write!(
                    f,
                    "held: version {version} not published; {} guard(s) refused:",
                    refusals.len()
                )?;
                for r in refusals {
                    write!(f, "\n  - {r}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rampart_artifact::testing::key;
    use rampart_artifact::{Feature, Keyring, Policy, check};
    use rampart_score::edge_contract;

    use super::*;
    use crate::catalog::{CATALOG_SCHEMA, Catalog};
    use crate::source::CatalogSource;

    struct Fixture {
        tmp: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                tmp: tempfile::tempdir().unwrap(),
            }
        }
        fn catalog(&self, names: &[&str]) -> Source {
            let features = names
                .iter()
                .map(|n| Feature {
                    name: (*n).into(),
                    ty: rampart_score::lookup(n)
                        .map_or("UInt8", |id| id.ty())
                        .into(),
                    weight: 0.5,
                })
                .collect();
            let c = Catalog {
                schema: CATALOG_SCHEMA.into(),
                bias: -1.0,
                features,
                fit: serde_json::Value::Null,
            };
            let path = self.tmp.path().join("model.json");
            std::fs::write(&path, c.to_json()).unwrap();
            Source::Catalog(CatalogSource::File(path))
        }
        fn job(&self, source: Source) -> Job {
            Job {
                source,
                contracts: vec![edge_contract()],
                key: key(),
                state_dir: self.tmp.path().join("state"),
                output: Output::File(self.tmp.path().join("features.json")),
                approve_delta: false,
                unfreeze: false,
                output_check: None,
                approve_shadow: false,
            }
        }
        fn out(&self) -> PathBuf {
            self.tmp.path().join("features.json")
        }
    }

    fn now(minute: u8) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_763_463_900 + i64::from(minute) * 60).unwrap()
    }

    fn names(n: usize) -> Vec<&'static str> {
        rampart_score::CATALOG
            .iter()
            .take(n)
            .map(|e| e.name)
            .collect()
    }

    #[test]
    fn the_default_source_publishes_a_signed_file_the_edge_accepts() {
        let fx = Fixture::new();
        let job = fx.job(Source::Catalog(CatalogSource::Embedded));
        let out = job.run_once(now(0)).unwrap();
        assert!(
            matches!(out, Outcome::Published { version: 1, .. }),
            "{out}"
        );
        let bytes = std::fs::read(fx.out()).unwrap();
        let keyring = Keyring::new([key().public()]);
        let contract = edge_contract();
        let checked = check(
            &bytes,
            &Policy {
                contract: &contract,
                keyring: Some(&keyring),
                previous: None,
            },
        )
        .unwrap();
        let doc = checked.validated.document();
        assert_eq!(doc.provenance.source, "catalog:embedded");
        assert_eq!(doc.provenance.generator, GENERATOR);
        assert_eq!(doc.created_at, "2025-11-18T11:05:00Z");
        // Same content again: nothing new.
        let again = job.run_once(now(5)).unwrap();
        assert_eq!(again, Outcome::Unchanged { version: 1 });
        assert_eq!(again.exit_code(), EXIT_OK);
    }

    #[test]
    fn versions_grow_by_one_per_published_file() {
        let fx = Fixture::new();
        let a = names(60);
        let mut b = names(60);
        b.pop();
        let mut c = b.clone();
        c.pop();
        for (i, set) in [a, b, c].iter().enumerate() {
            let out = fx.job(fx.catalog(set)).run_once(now(i as u8 * 5)).unwrap();
            assert!(
                matches!(out, Outcome::Published { version, .. } if version == i as u64 + 1),
                "{out}"
            );
        }
    }

    #[test]
    fn duplicates_are_held_and_nothing_is_written() {
        let fx = Fixture::new();
        let mut set = names(60);
        set.extend(names(60));
        let out = fx.job(fx.catalog(&set)).run_once(now(0)).unwrap();
        let Outcome::Held { refusals, .. } = &out else {
            panic!("{out}")
        };
        let guards: Vec<_> = refusals.iter().map(Refusal::guard).collect();
        assert!(
            guards.contains(&"duplicates") && guards.contains(&"contract"),
            "{guards:?}"
        );
        assert_eq!(out.exit_code(), EXIT_HELD);
        assert!(!fx.out().exists());
    }

    /// An output check that holds any candidate whose bias differs from the published one.
    #[derive(Debug)]
    struct BiasMustStay;

    impl OutputCheck for BiasMustStay {
        fn check(&self, candidate: &Document, published: &Document) -> Result<String, Vec<String>> {
            if candidate.model.bias == published.model.bias {
                Ok("same bias".into())
            } else {
                Err(vec![format!(
                    "bias {} -> {}",
                    published.model.bias, candidate.model.bias
                )])
            }
        }
    }

    #[test]
    fn the_output_check_holds_a_changed_file_until_approved_and_skips_the_first_and_the_same() {
        let fx = Fixture::new();
        let with_check = |source: Source, approve: bool| Job {
            output_check: Some(Box::new(BiasMustStay)),
            approve_shadow: approve,
            ..fx.job(source)
        };
        // Nothing published yet: nothing to compare with.
        let first = with_check(fx.catalog(&names(60)), false)
            .run_once(now(0))
            .unwrap();
        assert!(
            matches!(first, Outcome::Published { version: 1, .. }),
            "{first}"
        );
        // Same content: not judged, unchanged.
        let same = with_check(fx.catalog(&names(60)), false)
            .run_once(now(5))
            .unwrap();
        assert_eq!(same, Outcome::Unchanged { version: 1 });
        // A changed bias: held by the output check, with its reason; nothing written.
        let mut changed =
            Catalog::parse(&std::fs::read_to_string(fx.tmp.path().join("model.json")).unwrap())
                .unwrap();
        changed.bias = -999.0;
        std::fs::write(fx.tmp.path().join("model.json"), changed.to_json()).unwrap();
        let source = || Source::Catalog(CatalogSource::File(fx.tmp.path().join("model.json")));
        let held = with_check(source(), false).run_once(now(10)).unwrap();
        let Outcome::Held { refusals, .. } = &held else {
            panic!("{held}")
        };
        assert_eq!(refusals.len(), 1, "{held}");
        assert_eq!(refusals[0].guard(), "shadow");
        assert!(
            refusals[0].to_string().contains("bias -1 -> -999"),
            "{held}"
        );
        assert!(
            refusals[0].to_string().contains("--approve-shadow"),
            "{held}"
        );
        // Approved for one run: published.
        let approved = with_check(source(), true).run_once(now(15)).unwrap();
        assert!(
            matches!(approved, Outcome::Published { version: 2, .. }),
            "{approved}"
        );
    }

    #[test]
    fn a_delta_is_held_until_approved() {
        let fx = Fixture::new();
        fx.job(fx.catalog(&names(40))).run_once(now(0)).unwrap();
        let out = fx.job(fx.catalog(&names(79))).run_once(now(5)).unwrap();
        assert!(
            matches!(&out, Outcome::Held { refusals, .. } if refusals.iter().any(|r| r.guard() == "delta")),
            "{out}"
        );
        let mut job = fx.job(fx.catalog(&names(79)));
        job.approve_delta = true;
        let out = job.run_once(now(10)).unwrap();
        assert!(
            matches!(
                out,
                Outcome::Published {
                    version: 2,
                    features: 79,
                    ..
                }
            ),
            "{out}"
        );
    }

    #[test]
    fn an_a_b_a_alternation_freezes_until_unfrozen() {
        let fx = Fixture::new();
        let a = names(60);
        let mut b = names(60);
        b.pop();
        assert!(matches!(
            fx.job(fx.catalog(&a)).run_once(now(0)).unwrap(),
            Outcome::Published { .. }
        ));
        assert!(matches!(
            fx.job(fx.catalog(&b)).run_once(now(5)).unwrap(),
            Outcome::Published { .. }
        ));
        let out = fx.job(fx.catalog(&a)).run_once(now(10)).unwrap();
        assert!(
            matches!(&out, Outcome::Held { refusals, .. } if refusals.iter().any(|r| r.guard() == "flapping")),
            "{out}"
        );
        // Frozen: even the published content is refused now.
        let out = fx.job(fx.catalog(&b)).run_once(now(15)).unwrap();
        assert!(
            matches!(&out, Outcome::Held { refusals, .. } if refusals.iter().any(|r| r.guard() == "frozen")),
            "{out}"
        );
        let mut job = fx.job(fx.catalog(&a));
        job.unfreeze = true;
        let out = job.run_once(now(20)).unwrap();
        assert!(
            matches!(out, Outcome::Published { version: 3, .. }),
            "{out}"
        );
    }

    #[test]
    fn a_failing_source_writes_nothing_and_is_counted() {
        let fx = Fixture::new();
        let job = fx.job(Source::Catalog(CatalogSource::File(
            fx.tmp.path().join("missing.json"),
        )));
        assert!(matches!(
            job.run_once(now(0)),
            Err(GenerateError::Source(_))
        ));
        assert!(!fx.out().exists());
        let state = StateDir::open(&job.state_dir).unwrap().load().unwrap();
        assert_eq!((state.counters.runs, state.counters.failed), (1, 1));
    }

    #[test]
    fn an_unreachable_control_plane_fails_the_run_and_records_nothing() {
        let fx = Fixture::new();
        let mut job = fx.job(Source::Catalog(CatalogSource::Embedded));
        job.output = Output::Publish(Target {
            url: "http://127.0.0.1:1/".into(),
            token: None,
            transport: rampart_api::Transport {
                ca_pem: None,
                plain_http: true,
            },
        });
        let err = job.run_once(now(0)).unwrap_err();
        assert!(matches!(err, GenerateError::Publish(_)), "{err}");
        let state = StateDir::open(&job.state_dir).unwrap().load().unwrap();
        assert!(state.published.is_none());
        assert_eq!(state.counters.failed, 1);
        assert_eq!(state.next_version(), 1, "the version is not used up");
    }

    #[test]
    fn every_contract_is_checked() {
        let fx = Fixture::new();
        let mut job = fx.job(Source::Catalog(CatalogSource::Embedded));
        job.contracts
            .push(Contract::from_toml("consumer = \"tiny\"\nmax_features = 10").unwrap());
        let out = job.run_once(now(0)).unwrap();
        assert!(out.to_string().contains("consumer tiny"), "{out}");
    }
}
