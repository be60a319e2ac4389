//! The producer: a generator run turns the source's answer into a signed feature file.
//!
//! Two producers, one interface. The **naive** one is the pipeline of 18 November: it builds
//! the document from whatever the query returned, signs it, and publishes whenever the content
//! changed. The **guarded** one is rampart's generator itself: [`rampart_generate::Job`] reads
//! the answer (written as a catalog file in the run's scratch dir), runs every producer guard
//! against the edge contract and the run history in its state dir, and publishes only what none
//! of them refuses. With shadow scoring on, the Job's output check is the generator binary's
//! own, [`rampart_fit::shadow::ShadowCheck`] on the embedded labelled sample.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_artifact::limits::HARD_MAX_BYTES;
use rampart_artifact::{Digest, Document, Envelope, SecretKey, decode};
use rampart_fit::shadow::ShadowCheck;
use rampart_generate::guard::{Refusal, content_digest};
use rampart_generate::job::build_document;
use rampart_generate::source::CatalogSource;
use rampart_generate::{Candidate, Job, Outcome, Output, OutputCheck};
use rampart_score::edge_contract;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fault::Mark;
use crate::source::{Answer, Source};

/// Where the simulated cluster is said to be, in provenance.
pub const SOURCE_URL: &str = "clickhouse://clickhouse.sim:8123/default";

/// A published feature file as the distribution carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// The document's version.
    pub version: u64,
    /// Its digest.
    pub digest: Digest,
    /// The signed envelope, exactly as every node receives it.
    pub bytes: Arc<[u8]>,
    /// The document.
    pub document: Arc<Document>,
    /// Whether the source's answer carried the fault (ground truth, for the report only).
    pub faulty: bool,
    /// The retrain epoch of its weights.
    pub epoch: u64,
    /// Process faults it carries (ground truth: no layer reads them, see [`crate::fault`]).
    pub marks: Vec<Mark>,
}

/// How one generator run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunResult {
    /// A new file.
    Published(Arc<Publication>),
    /// The content is the published one: nothing to do.
    Unchanged,
    /// The producer guards refused.
    Held {
        /// Every refusal.
        refusals: Vec<Refusal>,
    },
    /// The run failed (I/O in the scratch dir).
    Failed(String),
}

/// A generator.
#[derive(Debug)]
pub struct Producer {
    /// Keys are made from a seed: the Job takes its key by value, and a secret is not Clone.
    key_seed: [u8; 32],
    key: SecretKey,
    query: String,
    kind: Kind,
    /// The highest version published so far (also by hand).
    version: u64,
}

#[derive(Debug)]
enum Kind {
    Naive {
        last_content: Option<Digest>,
    },
    Guarded {
        dir: PathBuf,
        shadow: Option<Arc<ShadowCheck>>,
    },
}

/// The shadow check the generator binary passes as its Job's output check, shared by every
/// run (the Job takes a fresh box each run; the sample is built once).
#[derive(Debug)]
struct Shadow(Arc<ShadowCheck>);

impl OutputCheck for Shadow {
    fn check(&self, candidate: &Document, published: &Document) -> Result<String, Vec<String>> {
        self.0.check(candidate, published)
    }
}

/// Why a producer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The scratch dir cannot be made.
    #[error("cannot create the generator's dir {}: {source}", path.display())]
    Dir {
        /// The dir.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

// === impl Producer ===

impl Producer {
    /// The pipeline of 18 November: no guards, publish on change.
    pub fn naive(key_seed: [u8; 32], query: &str) -> Producer {
        Producer {
            key_seed,
            key: SecretKey::from_seed(key_seed),
            query: query.to_owned(),
            kind: Kind::Naive { last_content: None },
            version: 0,
        }
    }

    /// rampart's generator with its state dir under `dir`, judging each changed candidate's
    /// output with `shadow` when given.
    pub fn guarded(
        key_seed: [u8; 32],
        query: &str,
        dir: &Path,
        shadow: Option<Arc<ShadowCheck>>,
    ) -> Result<Producer, ProducerError> {
        std::fs::create_dir_all(dir).map_err(|source| ProducerError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Producer {
            key_seed,
            key: SecretKey::from_seed(key_seed),
            query: query.to_owned(),
            kind: Kind::Guarded {
                dir: dir.to_owned(),
                shadow,
            },
            version: 0,
        })
    }

    /// The query this producer sends.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// Whether the producer guards run.
    pub fn is_guarded(&self) -> bool {
        matches!(self.kind, Kind::Guarded { .. })
    }

    /// One run on `answer` at `now`.
    pub fn run(&mut self, answer: &Answer, now: OffsetDateTime) -> RunResult {
        match &mut self.kind {
            Kind::Naive { last_content } => {
                let content = content_digest(&answer.features, answer.bias);
                if *last_content == Some(content) {
                    return RunResult::Unchanged;
                }
                *last_content = Some(content);
                let version = self.version + 1;
                let created_at = now.format(&Rfc3339).unwrap_or_default();
                let doc = build_document(&candidate(answer, &self.query), version, &created_at);
                self.version = version;
                let mut p = publish(doc, &self.key, answer.faulty, answer.epoch);
                p.marks = answer.marks.clone();
                RunResult::Published(Arc::new(p))
            }
            Kind::Guarded { dir, shadow } => {
                let answer_path = dir.join("clickhouse-answer.json");
                let out = dir.join("features.rfeat");
                if let Err(e) = std::fs::write(&answer_path, Source::catalog(answer).to_json()) {
                    return RunResult::Failed(format!("write {}: {e}", answer_path.display()));
                }
                let job = Job {
                    source: rampart_generate::Source::Catalog(CatalogSource::File(answer_path)),
                    contracts: vec![edge_contract()],
                    key: SecretKey::from_seed(self.key_seed),
                    state_dir: dir.join("state"),
                    output: Output::File(out.clone()),
                    approve_delta: false,
                    unfreeze: false,
                    output_check: shadow
                        .as_ref()
                        .map(|s| Box::new(Shadow(Arc::clone(s))) as Box<dyn OutputCheck>),
                    approve_shadow: false,
                };
                match job.run_once(now) {
                    Ok(Outcome::Published { .. }) => match read_publication(&out, answer) {
                        Ok(p) => {
                            self.version = self.version.max(p.version);
                            RunResult::Published(Arc::new(p))
                        }
                        Err(e) => RunResult::Failed(e),
                    },
                    Ok(Outcome::Unchanged { .. }) => RunResult::Unchanged,
                    Ok(Outcome::Held { refusals, .. }) => RunResult::Held { refusals },
                    Err(e) => RunResult::Failed(e.to_string()),
                }
            }
        }
    }

    /// An operator re-publishes `document` by hand (bypassing the generator) as the next
    /// version, signed with the same key.
    pub fn by_hand(&mut self, document: &Document, now: OffsetDateTime, epoch: u64) -> Publication {
        let mut doc = document.clone();
        self.version += 1;
        doc.version = self.version;
        doc.created_at = now.format(&Rfc3339).unwrap_or_default();
        doc.provenance.generator = "operator (by hand)".to_owned();
        publish(doc, &self.key, false, epoch)
    }

    /// Notes a version published elsewhere (the first file), so later ones are above it.
    pub fn saw_version(&mut self, version: u64) {
        self.version = self.version.max(version);
    }
}

/// The generator's candidate for an answer, with the query as provenance.
fn candidate(answer: &Answer, query: &str) -> Candidate {
    Candidate {
        features: answer.features.clone(),
        bias: answer.bias,
        unweighted: Vec::new(),
        source: SOURCE_URL.to_owned(),
        query: query.to_owned(),
        rows: answer.rows as u64,
        server_version: Some("25.8 (simulated)".to_owned()),
    }
}

fn publish(doc: Document, key: &SecretKey, faulty: bool, epoch: u64) -> Publication {
    let envelope = Envelope::sign(&doc, key);
    Publication {
        version: doc.version,
        digest: doc.digest(),
        bytes: Arc::from(envelope.to_json()),
        document: Arc::new(doc),
        faulty,
        epoch,
        marks: Vec::new(),
    }
}

fn read_publication(path: &Path, answer: &Answer) -> Result<Publication, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let decoded = decode(&bytes, HARD_MAX_BYTES)
        .map_err(|issues| format!("the generator wrote a file it cannot read: {issues:?}"))?;
    let doc = decoded.document;
    Ok(Publication {
        version: doc.version,
        digest: doc.digest(),
        bytes: Arc::from(bytes),
        document: Arc::new(doc),
        faulty: answer.faulty,
        epoch: answer.epoch,
        marks: answer.marks.clone(),
    })
}

/// The seed of a replay's signing key: fixed by the scenario's seed, so files and digests are
/// reproducible.
pub fn key_seed(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let word = seed
            .wrapping_add(i as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::parse_time_of_day;
    use crate::scenario::Scenario;
    use rampart_fit::shadow::Judgement;

    /// The files the faults that ride in the file make are real documents: the edge's
    /// contract compiles them, so shadow scoring scores them (it does not answer "not
    /// judged"), and holds the bad ones.
    #[test]
    fn shadow_scoring_judges_the_files_the_faults_make() {
        let check = ShadowCheck::embedded(edge_contract()).unwrap();
        let base = "name='x'\ntitle='t'\ndate='2025-10-29'\nstart='15:00'\nend='16:00'\n[fleet]\npops=2\nnodes_per_pop=2\nregions=1\n[[fault]]\nat='15:10'\n";
        let at = parse_time_of_day("15:20").unwrap();
        let now = OffsetDateTime::UNIX_EPOCH;
        let file = |fault: Option<&str>| {
            let s = Scenario::from_toml(&format!(
                "{base}{}",
                fault.unwrap_or("kind='latency'\nms=1\n")
            ))
            .unwrap();
            let src = crate::source::Source::new(&s).unwrap();
            let mut a = src.answer(crate::source::UNSCOPED_QUERY, 0, at);
            if fault.is_some() {
                crate::fault::apply(&s.faults, &mut a, at);
            }
            match Producer::naive([7; 32], "q").run(&a, now) {
                RunResult::Published(p) => p,
                other => panic!("{other:?}"),
            }
        };
        let serving = file(None);
        for (fault, held) in [
            ("kind='score_shift'\nby='all_1'\n", true),
            ("kind='sign_flip'\n", true),
            ("kind='retrain'\nshift=2.0\n", true),
            ("kind='retrain'\nshift=-2.0\n", true),
            ("kind='retrain'\nshift=-4.0\n", true),
            ("kind='retrain'\nshift=0.05\n", false),
            ("kind='crash_after'\nminutes=5\n", false),
        ] {
            let candidate = file(Some(fault));
            assert_ne!(candidate.digest, serving.digest, "{fault}");
            match check.judge(&candidate.document, &serving.document) {
                Judgement::Held(reasons) => assert!(held, "{fault}: held: {reasons:?}"),
                Judgement::Pass(line) => assert!(!held, "{fault}: passed: {line}"),
                Judgement::NotJudged(why) => panic!("{fault}: not judged: {why}"),
            }
        }
    }
}
