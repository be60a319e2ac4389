//! The generator against a real ClickHouse in the 18 November layout: `r0` holds the data,
//! `default` a Distributed table over it.
//!
//! Needs Debian's `clickhouse-server`; fails (does not skip) without it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/clickhouse.rs"]
mod server;

use std::path::{Path, PathBuf};

use rampart_artifact::testing::key;
use rampart_artifact::{Contract, Keyring, Policy, check};
use rampart_generate::guard::{self, Refusal};
use rampart_generate::source::clickhouse::Credentials;
use rampart_generate::source::join_weights;
use rampart_generate::{
    Catalog, GenerateError, Job, Outcome, Output, Source, SourceError, StateDir,
};
use rampart_score::edge_contract;
use server::{PASSWORD, Server, USER, catalog_columns, extra_columns};
use time::OffsetDateTime;

/// The query Cloudflare's generator ran: filtered by table only.
const UNSCOPED: &str = "SELECT name, type FROM system.columns WHERE table = 'http_requests_features' ORDER BY name FORMAT JSONEachRow";

struct Run {
    tmp: tempfile::TempDir,
}

impl Run {
    fn new() -> Self {
        Run {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn out(&self) -> PathBuf {
        self.tmp.path().join("features.json")
    }
    fn state(&self) -> PathBuf {
        self.tmp.path().join("state")
    }
    fn job(&self, server: &Server) -> Job {
        Job {
            source: Source::parse(&server.source_url("default")).unwrap(),
            contracts: vec![edge_contract()],
            key: key(),
            state_dir: self.state(),
            output: Output::File(self.out()),
            approve_delta: false,
            unfreeze: false,
            output_check: None,
            approve_shadow: false,
        }
    }
    fn run(&self, job: &Job) -> Result<Outcome, GenerateError> {
        job.run_once(OffsetDateTime::now_utc())
    }
}

fn guards(out: &Outcome) -> Vec<&'static str> {
    match out {
        Outcome::Held { refusals, .. } => refusals.iter().map(Refusal::guard).collect(),
        other => panic!("expected held, got {other}"),
    }
}

fn checked_document(path: &Path) -> rampart_artifact::Document {
    let bytes = std::fs::read(path).unwrap();
    let keyring = Keyring::new([key().public()]);
    let contract = edge_contract();
    check(
        &bytes,
        &Policy {
            contract: &contract,
            keyring: Some(&keyring),
            previous: None,
        },
    )
    .unwrap()
    .validated
    .into_document()
}

#[test]
fn the_unscoped_query_doubles_every_column_and_the_generator_scoped_query_does_not() {
    let server = Server::start();
    let columns = catalog_columns();
    server.nov18_layout(&columns, true);

    // Cloudflare's query sees default (Distributed) and r0 (MergeTree): every column twice.
    let unscoped = server.query(UNSCOPED);
    let rows: Vec<&str> = unscoped.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 2 * columns.len());
    assert_eq!(rows[0], rows[1], "each name comes back twice, side by side");

    // Had a generator published those rows, the guards would have refused them.
    let parsed: Vec<(String, String)> = rows
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["name"].as_str().unwrap().to_owned(),
                v["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let weights = Catalog::embedded()
        .unwrap()
        .features
        .into_iter()
        .map(|f| (f.name, f.weight))
        .collect();
    let (doubled, _) = join_weights(parsed, &weights);
    assert!(matches!(
        guard::duplicates(&doubled),
        Some(Refusal::Duplicates { names }) if names.len() == columns.len()
    ));

    // The generator's query names its database: each column once, a valid file.
    let run = Run::new();
    let out = run.run(&run.job(&server)).unwrap();
    assert!(
        matches!(out, Outcome::Published { version: 1, features, .. } if features == columns.len()),
        "{out}"
    );
    let doc = checked_document(&run.out());
    let catalog = Catalog::embedded().unwrap();
    assert_eq!(doc.features.len(), catalog.features.len());
    for (got, want) in doc.features.iter().zip(&catalog.features) {
        assert_eq!((&got.name, &got.ty), (&want.name, &want.ty));
        assert!((got.weight - want.weight).abs() <= 1e-12 * want.weight.abs().max(1.0));
    }
    assert!((doc.model.bias - catalog.bias).abs() < 1e-12);
    let p = &doc.provenance;
    assert_eq!(p.source, server.source_url("default"));
    assert!(
        p.query
            .contains("WHERE database = 'default' AND table = 'http_requests_features'"),
        "{}",
        p.query
    );
    assert!(p.query.contains("bot_model_weights"), "{}", p.query);
    assert_eq!(p.rows as usize, columns.len());
    assert_eq!(p.server_version.as_deref(), Some("18.16.1"));
    assert_eq!(p.generator, "rampart-generate");
}

#[test]
fn a_table_altered_to_250_columns_is_refused_by_the_contract_guard() {
    let server = Server::start();
    let columns = catalog_columns();
    server.nov18_layout(&columns, true);
    let run = Run::new();
    let job = run.job(&server);
    assert!(matches!(
        run.run(&job).unwrap(),
        Outcome::Published { version: 1, .. }
    ));
    let published = std::fs::read(run.out()).unwrap();

    let extra = extra_columns(250 - columns.len());
    server.add_columns(&extra);
    server.add_weights(&extra, false);
    let out = run.run(&job).unwrap();
    assert_eq!(out.exit_code(), 1);
    let g = guards(&out);
    assert!(g.contains(&"contract"), "{g:?}");
    let Outcome::Held { refusals, .. } = &out else {
        panic!("not held")
    };
    let text = refusals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("250 features, over the limit of 200"),
        "{text}"
    );
    assert!(text.contains("not known to consumer edge"), "{text}");
    assert_eq!(
        std::fs::read(run.out()).unwrap(),
        published,
        "the published file is untouched"
    );
}

#[test]
fn a_jump_from_60_to_100_columns_is_held_until_approved() {
    let server = Server::start();
    // A consumer that knows any name, so that only the delta guard can hold the jump.
    let open = Contract::from_toml("consumer = \"analytics\"").unwrap();
    let base: Vec<(String, String)> = catalog_columns().into_iter().take(60).collect();
    server.nov18_layout(&base, true);
    let run = Run::new();
    let mut job = run.job(&server);
    job.contracts = vec![open];
    assert!(matches!(
        run.run(&job).unwrap(),
        Outcome::Published {
            version: 1,
            features: 60,
            ..
        }
    ));

    let extra = extra_columns(40);
    server.add_columns(&extra);
    server.add_weights(&extra, false);
    let out = run.run(&job).unwrap();
    assert_eq!(guards(&out), ["delta"]);
    assert!(out.to_string().contains("60 -> 100 features"), "{out}");
    assert_eq!(checked_or_bare_version(&run.out()), 1);

    job.approve_delta = true;
    let out = run.run(&job).unwrap();
    assert!(
        matches!(
            out,
            Outcome::Published {
                version: 2,
                features: 100,
                ..
            }
        ),
        "{out}"
    );
}

fn checked_or_bare_version(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let contract = Contract::from_toml("consumer = \"x\"").unwrap();
    check(
        &bytes,
        &Policy {
            contract: &contract,
            keyring: None,
            previous: None,
        },
    )
    .unwrap()
    .validated
    .version()
}

#[test]
fn a_column_set_alternating_between_two_states_trips_the_flapping_guard() {
    let server = Server::start();
    let columns = catalog_columns();
    server.nov18_layout(&columns, true);
    let run = Run::new();
    let job = run.job(&server);
    let dropped = columns.last().unwrap().clone();

    // A, B, A: as the nodes of a cluster got a change one by one on 18 November.
    assert!(matches!(
        run.run(&job).unwrap(),
        Outcome::Published { version: 1, .. }
    ));
    server.drop_columns(&[&dropped.0]);
    assert!(matches!(
        run.run(&job).unwrap(),
        Outcome::Published { version: 2, .. }
    ));
    server.add_columns(std::slice::from_ref(&dropped));
    let out = run.run(&job).unwrap();
    assert_eq!(guards(&out), ["flapping"]);
    assert!(out.to_string().contains("--unfreeze"), "{out}");

    // Frozen: the next run is refused too, even with a stable source.
    let out = run.run(&job).unwrap();
    assert_eq!(guards(&out), ["frozen"]);
    assert_eq!(checked_or_bare_version(&run.out()), 2);

    let mut thaw = run.job(&server);
    thaw.unfreeze = true;
    assert!(matches!(
        run.run(&thaw).unwrap(),
        Outcome::Published { version: 3, .. }
    ));
}

#[test]
fn a_stopped_server_gives_a_clean_error_and_no_file() {
    let mut server = Server::start();
    server.nov18_layout(&catalog_columns(), true);
    let run = Run::new();
    let job = run.job(&server);
    server.stop();
    let err = run.run(&job).unwrap_err();
    assert!(
        matches!(err, GenerateError::Source(SourceError::Unreachable { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains(&server.source_url("default")),
        "{err}"
    );
    assert!(!run.out().exists());
    let state = StateDir::open(&run.state()).unwrap().load().unwrap();
    assert_eq!(
        (
            state.counters.runs,
            state.counters.failed,
            state.counters.published
        ),
        (1, 1, 0)
    );
}

#[test]
fn a_missing_table_is_an_empty_result_and_writes_nothing() {
    let server = Server::start();
    let run = Run::new();
    let err = run.run(&run.job(&server)).unwrap_err();
    assert!(
        matches!(err, GenerateError::Source(SourceError::Empty { .. })),
        "{err}"
    );
    assert!(!run.out().exists());
}

#[test]
fn credentials_are_used_and_never_written_or_shown() {
    let server = Server::start();
    server.nov18_layout(&catalog_columns(), true);
    let run = Run::new();
    let with = |password: &str| {
        let Source::ClickHouse(ch) = Source::parse(&server.source_url("default")).unwrap() else {
            panic!("not a ClickHouse source")
        };
        let mut job = run.job(&server);
        job.source =
            Source::ClickHouse(ch.with_credentials(Some(Credentials::new(USER, password))));
        job
    };
    let err = run.run(&with("wrong-password")).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("516") || shown.contains("192") || shown.contains("193"),
        "{shown}"
    );
    assert!(!shown.contains("wrong-password"), "{shown}");

    let job = with(PASSWORD);
    assert!(!format!("{job:?}").contains(PASSWORD));
    assert!(matches!(run.run(&job).unwrap(), Outcome::Published { .. }));
    for path in [
        run.out(),
        run.state().join("state.json"),
        run.state().join("published.json"),
    ] {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(PASSWORD), "{}", path.display());
    }
    // The envelope's payload is base64: check the decoded document too.
    let doc = checked_document(&run.out());
    assert!(!doc.to_pretty_json().contains(PASSWORD));
}

#[test]
fn weights_from_a_model_file_replace_the_table() {
    let server = Server::start();
    server.nov18_layout(&catalog_columns(), false);
    let run = Run::new();
    // No weights table: the default source fails cleanly.
    let err = run.run(&run.job(&server)).unwrap_err();
    assert!(
        matches!(err, GenerateError::Source(SourceError::Server { .. })),
        "{err}"
    );
    let Source::ClickHouse(ch) = Source::parse(&server.source_url("default")).unwrap() else {
        panic!("not a ClickHouse source")
    };
    let model = Catalog::embedded().unwrap();
    let mut job = run.job(&server);
    job.source = Source::ClickHouse(
        ch.with_weights(rampart_generate::Weights::Model(Box::new(model)))
            .unwrap(),
    );
    let out = run.run(&job).unwrap();
    assert!(
        matches!(out, Outcome::Published { version: 1, .. }),
        "{out}"
    );
    let doc = checked_document(&run.out());
    assert!(!doc.provenance.query.contains("bot_model_weights"));
}
