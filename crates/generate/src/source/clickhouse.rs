//! ClickHouse over its HTTP interface: the feature columns of a table, scoped by database and
//! table, and the model weights.
//!
//! The query Cloudflare ran on 18 November 2025 filtered `system.columns` by table only; once
//! the shard-local database `r0` became visible, every column came back twice. Here the
//! columns query always names its database, and a duplicate is still an error downstream.
//!
//! Every answer is `FORMAT JSONEachRow` with `output_format_json_quote_64bit_integers=0`.
//! ClickHouse 18.16 has no server-side query parameters, so identifiers must be plain
//! (`[A-Za-z_][A-Za-z0-9_]*`, checked before anything is sent) and string literals are
//! escaped here (backslash and single quote).

use std::collections::HashMap;
use std::fmt;
use std::io::Read as _;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{
    BIAS_ROW, Candidate, DEFAULT_CONNECT_TIMEOUT, DEFAULT_QUERY_TIMEOUT, DEFAULT_TABLE,
    DEFAULT_WEIGHTS_TABLE, SourceError, Weights, join_weights,
};

/// The default port of ClickHouse's HTTP interface.
pub const DEFAULT_PORT: u16 = 8123;

/// Largest answer read from the server, in bytes: 200 columns take about 10 KiB; a larger
/// answer is garbage and is not buffered past this.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Most rows accepted from one query. A feature table has about 60 columns; a contract allows
/// 200; past this the answer is not a feature list.
pub const MAX_ROWS: usize = 10_000;

/// Longest identifier (database, table) accepted.
pub const MAX_IDENTIFIER_LEN: usize = 64;

/// Longest server error message quoted back, in characters.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// The query that reads the server's version.
pub const VERSION_QUERY: &str = "SELECT version() AS version FORMAT JSONEachRow";

/// Where a ClickHouse server is: `clickhouse://HOST:PORT/DATABASE`. Never holds credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
    database: String,
}

/// A user and password for ClickHouse. `Debug` does not show the password; it is sent only
/// in the `Authorization` header and appears in no log, error or provenance.
#[derive(Clone)]
pub struct Credentials {
    /// The user.
    pub user: String,
    password: String,
}

/// A ClickHouse source: a table of feature columns and where its weights come from.
#[derive(Debug, Clone)]
pub struct ClickHouse {
    endpoint: Endpoint,
    table: String,
    weights: Weights,
    credentials: Option<Credentials>,
    connect_timeout: Duration,
    query_timeout: Duration,
}

#[derive(Debug, Deserialize)]
struct ColumnRow {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

#[derive(Debug, Deserialize)]
struct WeightRow {
    name: String,
    weight: f64,
}

#[derive(Debug, Deserialize)]
struct VersionRow {
    version: String,
}

// === impl Endpoint ===

impl Endpoint {
    /// Parses `clickhouse://HOST[:PORT][/DATABASE]` (port 8123 and database `default` when
    /// left out). Credentials in the URL are refused: they would end up in shell history,
    /// logs and provenance; pass them with `--user`/`--password` or the environment.
    pub fn parse(given: &str) -> Result<Endpoint, SourceError> {
        let bad = |why: &str| SourceError::BadSource {
            given: redact(given),
            why: why.to_owned(),
        };
        let rest = given
            .strip_prefix("clickhouse://")
            .ok_or_else(|| bad("expected clickhouse://HOST:PORT/DATABASE"))?;
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return Err(bad(
                "credentials in the URL are refused: use --user/--password or RAMPART_CLICKHOUSE_USER/RAMPART_CLICKHOUSE_PASSWORD",
            ));
        }
        if database.contains(['?', '#', '/']) {
            return Err(bad("the path must be a database name only"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
        {
            return Err(bad("bad host"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))?,
        };
        let database = if database.is_empty() {
            "default"
        } else {
            database
        };
        check_identifier(database).map_err(|why| bad(&why))?;
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            database: database.to_owned(),
        })
    }

    /// The database the features are read from.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The HTTP URL of the server's query handler, with the settings every query needs.
    fn http_url(&self, timeout: Duration) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "http://{host}:{}/?output_format_json_quote_64bit_integers=0&max_execution_time={}",
            self.port,
            timeout.as_secs().max(1)
        )
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "clickhouse://[{}]:{}/{}",
                self.host, self.port, self.database
            )
        } else {
            write!(
                f,
                "clickhouse://{}:{}/{}",
                self.host, self.port, self.database
            )
        }
    }
}

// === impl Credentials ===

impl Credentials {
    /// A user and its password.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            password: password.into(),
        }
    }

    fn header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

// === impl ClickHouse ===

impl ClickHouse {
    /// A source reading [`DEFAULT_TABLE`] with weights from [`DEFAULT_WEIGHTS_TABLE`], no
    /// credentials, and the default timeouts.
    pub fn new(endpoint: Endpoint) -> Self {
        ClickHouse {
            endpoint,
            table: DEFAULT_TABLE.to_owned(),
            weights: Weights::Table(DEFAULT_WEIGHTS_TABLE.to_owned()),
            credentials: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        }
    }

    /// Reads the features from `table` (a plain identifier).
    pub fn with_table(mut self, table: &str) -> Result<Self, SourceError> {
        check_identifier(table).map_err(|why| SourceError::BadSource {
            given: table.to_owned(),
            why,
        })?;
        self.table = table.to_owned();
        Ok(self)
    }

    /// Takes the weights from `weights`.
    pub fn with_weights(mut self, weights: Weights) -> Result<Self, SourceError> {
        if let Weights::Table(t) = &weights {
            check_identifier(t).map_err(|why| SourceError::BadSource {
                given: t.clone(),
                why,
            })?;
        }
        self.weights = weights;
        Ok(self)
    }

    /// Authenticates as a user.
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets the connect timeout and the timeout of each query.
    pub fn with_timeouts(mut self, connect: Duration, query: Duration) -> Self {
        self.connect_timeout = connect;
        self.query_timeout = query;
        self
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The query for the feature columns: scoped by database **and** table.
    pub fn columns_query(&self) -> String {
        format!(
            "SELECT name, type FROM system.columns WHERE database = {} AND table = {} ORDER BY name FORMAT JSONEachRow",
            literal(&self.endpoint.database),
            literal(&self.table)
        )
    }

    /// The query for the weights, when they come from a table.
    pub fn weights_query(&self) -> Option<String> {
        match &self.weights {
            Weights::Table(t) => Some(format!(
                "SELECT name, weight FROM `{}`.`{t}` ORDER BY name FORMAT JSONEachRow",
                self.endpoint.database
            )),
            Weights::Model(_) => None,
        }
    }

    /// Reads the server version, the columns and the weights, and joins them.
    pub fn fetch(&self) -> Result<Candidate, SourceError> {
        let version: Vec<VersionRow> = self.rows(VERSION_QUERY, "version")?;
        let server_version = version.into_iter().next().map(|v| v.version);
        let columns_query = self.columns_query();
        let columns: Vec<ColumnRow> = self.rows(&columns_query, "columns")?;
        if columns.is_empty() {
            return Err(SourceError::Empty {
                source_url: self.endpoint.to_string(),
                table: format!("{}.{}", self.endpoint.database, self.table),
            });
        }
        let rows = columns.len() as u64;
        let (weights, bias, query) = match &self.weights {
            Weights::Table(_) => {
                let q = self.weights_query().unwrap_or_default();
                let rows: Vec<WeightRow> = self.rows(&q, "weights")?;
                let (map, bias) = self.weight_map(rows.into_iter().map(|r| (r.name, r.weight)))?;
                (map, bias, format!("{columns_query};\n{q}"))
            }
            Weights::Model(model) => {
                let pairs = model.features.iter().map(|f| (f.name.clone(), f.weight));
                let (map, _) = self.weight_map(pairs.chain([(BIAS_ROW.to_owned(), model.bias)]))?;
                (map, model.bias, columns_query)
            }
        };
        let (features, unweighted) = join_weights(
            columns.into_iter().map(|c| (c.name, c.ty)).collect(),
            &weights,
        );
        Ok(Candidate {
            features,
            bias,
            unweighted,
            source: self.endpoint.to_string(),
            query,
            rows,
            server_version,
        })
    }

    /// Runs a statement and returns the body (bounded): for setup scripts and tests that
    /// create tables. The feature path uses [`fetch`](Self::fetch).
    pub fn execute(&self, sql: &str) -> Result<String, SourceError> {
        self.send(sql)
    }

    fn weight_map(
        &self,
        rows: impl Iterator<Item = (String, f64)>,
    ) -> Result<(HashMap<String, f64>, f64), SourceError> {
        let problem = |problem: String| SourceError::Weights {
            source_url: self.endpoint.to_string(),
            problem,
        };
        let mut map = HashMap::new();
        for (name, weight) in rows {
            if !weight.is_finite() {
                return Err(problem(format!("give {name} a non-finite weight")));
            }
            if map.insert(name.clone(), weight).is_some() {
                return Err(problem(format!("list {name} twice")));
            }
        }
        let bias = map
            .remove(BIAS_ROW)
            .ok_or_else(|| problem(format!("have no `{BIAS_ROW}` row for the bias")))?;
        Ok((map, bias))
    }

    fn rows<T: DeserializeOwned>(
        &self,
        sql: &str,
        what: &'static str,
    ) -> Result<Vec<T>, SourceError> {
        let body = self.send(sql)?;
        let garbage = |detail: String| SourceError::Garbage {
            source_url: self.endpoint.to_string(),
            what,
            detail,
        };
        let mut out = Vec::new();
        for (n, line) in body.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if out.len() == MAX_ROWS {
                return Err(garbage(format!("more than {MAX_ROWS} rows")));
            }
            let row = serde_json::from_str::<T>(line)
                .map_err(|e| garbage(format!("line {}: {e}: {}", n + 1, excerpt(line))))?;
            out.push(row);
        }
        Ok(out)
    }

    fn send(&self, sql: &str) -> Result<String, SourceError> {
        let source_url = self.endpoint.to_string();
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(self.connect_timeout)
            .timeout(self.query_timeout)
            .redirects(0)
            .build();
        let mut request = agent.post(&self.endpoint.http_url(self.query_timeout));
        if let Some(c) = &self.credentials {
            request = request.set("Authorization", &c.header());
        }
        let response = match request.send_string(sql) {
            Ok(r) => r,
            Err(ureq::Error::Status(status, r)) => {
                let body = read_body(r).unwrap_or_default();
                let first = body.lines().next().unwrap_or("").to_owned();
                return Err(SourceError::Server {
                    source_url,
                    status,
                    message: excerpt(&first),
                });
            }
            Err(ureq::Error::Transport(t)) => return Err(self.transport(t)),
        };
        read_body(response).map_err(|e| self.io(e))
    }

    fn transport(&self, t: ureq::Transport) -> SourceError {
        let source_url = self.endpoint.to_string();
        if is_timeout(&t) {
            return SourceError::Timeout {
                source_url,
                timeout: self.query_timeout,
            };
        }
        match t.kind() {
            ureq::ErrorKind::BadStatus | ureq::ErrorKind::BadHeader => SourceError::Garbage {
                source_url,
                what: "HTTP",
                detail: t.to_string(),
            },
            _ => SourceError::Unreachable {
                source_url,
                detail: t.to_string(),
            },
        }
    }

    fn io(&self, e: BodyError) -> SourceError {
        let source_url = self.endpoint.to_string();
        match e {
            BodyError::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                SourceError::Timeout {
                    source_url,
                    timeout: self.query_timeout,
                }
            }
            BodyError::Io(e) => SourceError::Unreachable {
                source_url,
                detail: e.to_string(),
            },
            BodyError::TooLarge => SourceError::Garbage {
                source_url,
                what: "HTTP",
                detail: format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
            },
            BodyError::NotUtf8 => SourceError::Garbage {
                source_url,
                what: "HTTP",
                detail: "answer is not UTF-8".into(),
            },
        }
    }
}

#[derive(Debug)]
enum BodyError {
    Io(std::io::Error),
    TooLarge,
    NotUtf8,
}

fn read_body(response: ureq::Response) -> Result<String, BodyError> {
    let mut buf = Vec::new();
    response
        .into_reader()
        .take(MAX_RESPONSE_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(BodyError::Io)?;
    if buf.len() > MAX_RESPONSE_BYTES {
        return Err(BodyError::TooLarge);
    }
    String::from_utf8(buf).map_err(|_| BodyError::NotUtf8)
}

fn is_timeout(t: &ureq::Transport) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(t);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            )
        {
            return true;
        }
        source = e.source();
    }
    t.to_string().contains("timed out")
}

/// A ClickHouse string literal: single-quoted, backslash and quote escaped.
pub fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Checks a database or table name: `[A-Za-z_][A-Za-z0-9_]*`, at most
/// [`MAX_IDENTIFIER_LEN`] bytes.
pub fn check_identifier(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok
        || name.len() > MAX_IDENTIFIER_LEN
        || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!(
            "{name:?} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most {MAX_IDENTIFIER_LEN} bytes)"
        ));
    }
    Ok(())
}

fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_MESSAGE_CHARS).collect();
    if s.chars().count() > MAX_MESSAGE_CHARS {
        out.push('…');
    }
    out
}

/// The source string with anything between `://` and `@` removed, for error messages.
fn redact(given: &str) -> String {
    match (given.split_once("://"), given.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let after = rest.rsplit_once('@').map_or(rest, |(_, a)| a);
            format!("{scheme}://<redacted>@{after}")
        }
        _ => given.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn endpoints_parse_with_defaults() {
        let e = Endpoint::parse("clickhouse://ch.internal:9123/analytics").unwrap();
        assert_eq!(e.to_string(), "clickhouse://ch.internal:9123/analytics");
        let e = Endpoint::parse("clickhouse://ch").unwrap();
        assert_eq!(e.to_string(), "clickhouse://ch:8123/default");
        let e = Endpoint::parse("clickhouse://[::1]:8124/db").unwrap();
        assert_eq!(e.to_string(), "clickhouse://[::1]:8124/db");
        assert!(
            e.http_url(Duration::from_secs(3))
                .starts_with("http://[::1]:8124/?")
        );
    }

    #[test]
    fn endpoints_refuse_credentials_and_odd_parts_without_echoing_secrets() {
        let err = Endpoint::parse("clickhouse://bot:hunter2@ch:8123/default").unwrap_err();
        let shown = err.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("--user"), "{shown}");
        for bad in [
            "clickhouse://ch:0/db",
            "clickhouse://ch:99999/db",
            "clickhouse://ch:8123/db?x=1",
            "clickhouse://ch:8123/a/b",
            "clickhouse://ch:8123/r0;DROP",
            "clickhouse://:8123/db",
            "clickhouse://c h/db",
            "clickhouse://[::1/db",
            "http://ch/db",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literals_are_escaped_and_identifiers_checked() {
        assert_eq!(literal("abc"), "'abc'");
        assert_eq!(literal("a'b\\c"), "'a\\'b\\\\c'");
        assert!(check_identifier("http_requests_features").is_ok());
        assert!(check_identifier("_x1").is_ok());
        for bad in ["", "1a", "a-b", "a.b", "a`b", "a b", &"x".repeat(65)] {
            assert!(check_identifier(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_columns_query_names_its_database_and_table() {
        let ch = ClickHouse::new(Endpoint::parse("clickhouse://h/default").unwrap());
        let q = ch.columns_query();
        assert_eq!(
            q,
            "SELECT name, type FROM system.columns WHERE database = 'default' AND table = 'http_requests_features' ORDER BY name FORMAT JSONEachRow"
        );
        assert_eq!(
            ch.weights_query().unwrap(),
            "SELECT name, weight FROM `default`.`bot_model_weights` ORDER BY name FORMAT JSONEachRow"
        );
        assert!(ch.clone().with_table("x;y").is_err());
        assert!(ch.with_weights(Weights::Table("w w".into())).is_err());
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let c = Credentials::new("bot", "hunter2");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && shown.contains("bot"));
        assert_eq!(c.header(), "Basic Ym90Omh1bnRlcjI=");
    }

    /// A one-connection HTTP server that answers `reply` (or nothing, after `delay`).
    fn fake(reply: &'static [u8], delay: Duration) -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                std::thread::sleep(delay);
                let _ = stream.write_all(reply);
            }
        });
        (format!("clickhouse://127.0.0.1:{port}/default"), handle)
    }

    fn source(url: &str, timeout: Duration) -> ClickHouse {
        ClickHouse::new(Endpoint::parse(url).unwrap())
            .with_timeouts(Duration::from_secs(1), timeout)
    }

    #[test]
    fn a_slow_server_times_out() {
        let (url, h) = fake(b"", Duration::from_millis(1500));
        let err = source(&url, Duration::from_millis(300))
            .fetch()
            .unwrap_err();
        assert!(matches!(err, SourceError::Timeout { .. }), "{err}");
        h.join().unwrap();
    }

    #[test]
    fn garbage_answers_are_errors() {
        let (url, h) = fake(
            b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\n<html>oops</ht",
            Duration::ZERO,
        );
        let err = source(&url, Duration::from_secs(2)).fetch().unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::Garbage {
                    what: "version",
                    ..
                }
            ),
            "{err}"
        );
        h.join().unwrap();
        let (url, h) = fake(b"SSH-2.0-OpenSSH_9.2\r\n", Duration::ZERO);
        let err = source(&url, Duration::from_secs(2)).fetch().unwrap_err();
        assert!(matches!(err, SourceError::Garbage { .. }), "{err}");
        h.join().unwrap();
    }

    #[test]
    fn server_errors_carry_the_status_and_first_line() {
        let (url, h) = fake(
            b"HTTP/1.1 516 Unknown\r\nContent-Length: 39\r\nConnection: close\r\n\r\nCode: 516, Authentication failed\nmore\n\n",
            Duration::ZERO,
        );
        let err = source(&url, Duration::from_secs(2)).fetch().unwrap_err();
        match err {
            SourceError::Server {
                status, message, ..
            } => {
                assert_eq!(status, 516);
                assert_eq!(message, "Code: 516, Authentication failed");
            }
            other => panic!("{other}"),
        }
        h.join().unwrap();
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("clickhouse://127.0.0.1:{port}/default");
        let err = source(&url, Duration::from_secs(1)).fetch().unwrap_err();
        assert!(matches!(err, SourceError::Unreachable { .. }), "{err}");
    }

    #[test]
    fn weights_need_a_bias_and_no_repeats() {
        let ch = source("clickhouse://h/default", Duration::from_secs(1));
        let ok = ch
            .weight_map([("a".into(), 1.0), (BIAS_ROW.into(), -2.0)].into_iter())
            .unwrap();
        assert_eq!(ok.1, -2.0);
        assert_eq!(ok.0.len(), 1);
        assert!(ch.weight_map([("a".into(), 1.0)].into_iter()).is_err());
        assert!(
            ch.weight_map(
                [("a".into(), 1.0), ("a".into(), 2.0), (BIAS_ROW.into(), 0.0)].into_iter()
            )
            .is_err()
        );
        assert!(
            ch.weight_map([("a".into(), f64::NAN), (BIAS_ROW.into(), 0.0)].into_iter())
                .is_err()
        );
    }
}
