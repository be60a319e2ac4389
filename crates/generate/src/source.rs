//! Where a candidate feature list comes from: a ClickHouse table's columns (with weights from a
//! table or a model file), or a catalog file (the embedded one by default).

pub mod clickhouse;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rampart_artifact::Feature;

use crate::catalog::{Catalog, CatalogError, EMBEDDED_PATH, embedded_digest};
pub use clickhouse::{ClickHouse, Credentials, Endpoint};

/// The default source: the catalog compiled into the binary.
pub const DEFAULT_SOURCE: &str = "catalog:embedded";

/// The table whose columns are the features, unless `--table` says otherwise.
pub const DEFAULT_TABLE: &str = "http_requests_features";

/// The table the weights come from, unless a model file is given.
pub const DEFAULT_WEIGHTS_TABLE: &str = "bot_model_weights";

/// The name of the row of the weights table that holds the bias.
pub const BIAS_ROW: &str = "__bias__";

/// Default time to connect to a source.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Default time for a whole query (sent, run, answered). The file is regenerated every five
/// minutes; a query that takes longer than this is a sick source, not a slow one.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A source of features, as given on the command line.
#[derive(Debug, Clone)]
pub enum Source {
    /// `catalog:embedded` (the default) or `catalog:PATH`.
    Catalog(CatalogSource),
    /// `clickhouse://HOST:PORT/DATABASE`.
    ClickHouse(ClickHouse),
}

/// A catalog file as a source.
#[derive(Debug, Clone)]
pub enum CatalogSource {
    /// The catalog compiled into the binary.
    Embedded,
    /// A catalog file on disk.
    File(PathBuf),
}

/// Where the weights of a ClickHouse source come from.
#[derive(Debug, Clone)]
pub enum Weights {
    /// A table (`name String, weight Float64`) in the same database; the row named
    /// [`BIAS_ROW`] is the bias.
    Table(String),
    /// A model file in the catalog format (its features' weights and its bias).
    Model(Box<Catalog>),
}

/// What a source produced, before any guard ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The features in source order, duplicates included (the guards judge them).
    pub features: Vec<Feature>,
    /// The model's bias.
    pub bias: f64,
    /// Features the weights did not cover (given weight 0; the weights guard refuses them).
    pub unweighted: Vec<String>,
    /// The source, without credentials.
    pub source: String,
    /// The exact queries (or catalog path and digest).
    pub query: String,
    /// Rows the feature query returned.
    pub rows: u64,
    /// The server's version, when the source is a server.
    pub server_version: Option<String>,
}

/// Why a source gave nothing usable. Nothing is written when a source fails.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The `--source` value is not a source this generator knows.
    #[error("bad source {given:?}: {why}")]
    BadSource {
        /// The value given.
        given: String,
        /// What is wrong with it.
        why: String,
    },
    /// The server could not be reached (refused, no route, name unknown).
    #[error("{source_url} is unreachable: {detail}")]
    Unreachable {
        /// The source, without credentials.
        source_url: String,
        /// The transport's message.
        detail: String,
    },
    /// The server did not answer within the timeout.
    #[error("{source_url} did not answer within {:.1} s", timeout.as_secs_f64())]
    Timeout {
        /// The source, without credentials.
        source_url: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The server answered with an error status.
    #[error("{source_url} answered HTTP {status}: {message}")]
    Server {
        /// The source, without credentials.
        source_url: String,
        /// The HTTP status.
        status: u16,
        /// The first line of the server's message, truncated.
        message: String,
    },
    /// The answer is not what the query asks for.
    #[error("{source_url} answered garbage to the {what} query: {detail}")]
    Garbage {
        /// The source, without credentials.
        source_url: String,
        /// Which query (`version`, `columns`, `weights`).
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The feature query returned no row: the table is missing, or has no columns.
    #[error("{source_url}: no columns for {table}: the table is missing or empty")]
    Empty {
        /// The source, without credentials.
        source_url: String,
        /// `database.table`.
        table: String,
    },
    /// The weights have no bias row, or list a name twice.
    #[error("{source_url}: weights {problem}")]
    Weights {
        /// The source, without credentials.
        source_url: String,
        /// What is wrong.
        problem: String,
    },
    /// A catalog file that cannot be read or used.
    #[error("catalog {path}: {error}")]
    Catalog {
        /// The catalog's path (or `embedded`).
        path: String,
        /// Why.
        error: CatalogError,
    },
    /// A catalog file that cannot be read.
    #[error("cannot read catalog {path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        error: std::io::Error,
    },
}

// === impl Source ===

impl Source {
    /// Parses a `--source` value. A ClickHouse URL gets the default table, weights table and
    /// timeouts, and no credentials; set them on the [`ClickHouse`] afterwards.
    pub fn parse(given: &str) -> Result<Source, SourceError> {
        if let Some(rest) = given.strip_prefix("catalog:") {
            return match rest {
                "embedded" => Ok(Source::Catalog(CatalogSource::Embedded)),
                "" => Err(SourceError::BadSource {
                    given: given.into(),
                    why: "catalog: needs `embedded` or a path".into(),
                }),
                path => Ok(Source::Catalog(CatalogSource::File(PathBuf::from(path)))),
            };
        }
        if given.starts_with("clickhouse://") {
            return Ok(Source::ClickHouse(ClickHouse::new(Endpoint::parse(given)?)));
        }
        Err(SourceError::BadSource {
            given: given.into(),
            why: "expected clickhouse://HOST:PORT/DATABASE, catalog:embedded or catalog:PATH"
                .into(),
        })
    }

    /// Fetches a candidate.
    pub fn fetch(&self) -> Result<Candidate, SourceError> {
        match self {
            Source::Catalog(c) => c.fetch(),
            Source::ClickHouse(ch) => ch.fetch(),
        }
    }

    /// The source as shown in logs and provenance (never with credentials).
    pub fn display(&self) -> String {
        match self {
            Source::Catalog(CatalogSource::Embedded) => DEFAULT_SOURCE.to_owned(),
            Source::Catalog(CatalogSource::File(p)) => format!("catalog:{}", p.display()),
            Source::ClickHouse(ch) => ch.endpoint().to_string(),
        }
    }
}

// === impl CatalogSource ===

impl CatalogSource {
    fn fetch(&self) -> Result<Candidate, SourceError> {
        let (catalog, source, query) = match self {
            CatalogSource::Embedded => {
                let catalog = Catalog::embedded().map_err(|error| SourceError::Catalog {
                    path: "embedded".into(),
                    error,
                })?;
                let query = format!("{EMBEDDED_PATH} ({})", embedded_digest());
                (catalog, DEFAULT_SOURCE.to_owned(), query)
            }
            CatalogSource::File(path) => {
                let shown = path.display().to_string();
                let text = read_catalog(path).map_err(|error| SourceError::Io {
                    path: shown.clone(),
                    error,
                })?;
                let catalog = Catalog::parse(&text).map_err(|error| SourceError::Catalog {
                    path: shown.clone(),
                    error,
                })?;
                let query = format!(
                    "{shown} ({})",
                    rampart_artifact::Digest::of(text.as_bytes())
                );
                (catalog, format!("catalog:{shown}"), query)
            }
        };
        if catalog.features.is_empty() {
            return Err(SourceError::Empty {
                source_url: source,
                table: "catalog".into(),
            });
        }
        Ok(Candidate {
            rows: catalog.features.len() as u64,
            features: catalog.features,
            bias: catalog.bias,
            unweighted: Vec::new(),
            source,
            query,
            server_version: None,
        })
    }
}

/// Joins columns with weights by name: a column without a weight gets 0 and is listed in
/// `unweighted`; weights for names that are not columns are ignored (a model may know more).
pub fn join_weights(
    columns: Vec<(String, String)>,
    weights: &HashMap<String, f64>,
) -> (Vec<Feature>, Vec<String>) {
    let mut unweighted = Vec::new();
    let features = columns
        .into_iter()
        .map(|(name, ty)| {
            let weight = match weights.get(&name) {
                Some(w) => *w,
                None => {
                    if !unweighted.contains(&name) {
                        unweighted.push(name.clone());
                    }
                    0.0
                }
            };
            Feature { name, ty, weight }
        })
        .collect();
    (features, unweighted)
}

fn read_catalog(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(crate::catalog::MAX_CATALOG_BYTES as u64 + 1)
        .read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert!(matches!(
            Source::parse("catalog:embedded").unwrap(),
            Source::Catalog(CatalogSource::Embedded)
        ));
        assert!(matches!(
            Source::parse("catalog:/x/y.json").unwrap(),
            Source::Catalog(CatalogSource::File(_))
        ));
        let ch = Source::parse("clickhouse://127.0.0.1:8123/default").unwrap();
        assert_eq!(ch.display(), "clickhouse://127.0.0.1:8123/default");
        for bad in ["catalog:", "http://x", "", "clickhouse://u:p@h:1/db"] {
            assert!(
                matches!(Source::parse(bad), Err(SourceError::BadSource { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_embedded_catalog_is_a_candidate_with_provenance() {
        let c = Source::parse(DEFAULT_SOURCE).unwrap().fetch().unwrap();
        assert_eq!(c.source, "catalog:embedded");
        assert!(
            c.query
                .starts_with("catalog/features.catalog.json (sha256:")
        );
        assert_eq!(c.rows as usize, c.features.len());
        assert!(c.unweighted.is_empty());
    }

    #[test]
    fn a_catalog_file_that_is_missing_or_empty_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Source::Catalog(CatalogSource::File(dir.path().join("no.json")));
        assert!(matches!(missing.fetch(), Err(SourceError::Io { .. })));
        let empty = dir.path().join("empty.json");
        std::fs::write(
            &empty,
            r#"{"schema":"rampart.catalog/v1","bias":0,"features":[]}"#,
        )
        .unwrap();
        let s = Source::Catalog(CatalogSource::File(empty));
        assert!(matches!(s.fetch(), Err(SourceError::Empty { .. })));
        let garbage = dir.path().join("garbage.json");
        std::fs::write(&garbage, "<html>").unwrap();
        let s = Source::Catalog(CatalogSource::File(garbage));
        assert!(matches!(s.fetch(), Err(SourceError::Catalog { .. })));
    }

    #[test]
    fn weights_join_by_name_and_missing_ones_are_listed() {
        let cols = vec![
            ("a".to_owned(), "UInt8".to_owned()),
            ("b".to_owned(), "UInt8".to_owned()),
            ("a".to_owned(), "UInt8".to_owned()),
        ];
        let w = HashMap::from([("a".to_owned(), 1.5), ("z".to_owned(), 9.0)]);
        let (f, missing) = join_weights(cols, &w);
        assert_eq!(f.len(), 3, "duplicates are kept for the guard");
        assert_eq!(f[0].weight, 1.5);
        assert_eq!(f[1].weight, 0.0);
        assert_eq!(missing, ["b"]);
    }
}
