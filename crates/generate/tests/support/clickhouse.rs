//! A real ClickHouse server for tests and benches: Debian's `clickhouse-server` started as a
//! child on 127.0.0.1 with a config written into a temp dir, free ports, and stopped by PID
//! when the guard is dropped.
//!
//! If `clickhouse-server` is not installed this panics with how to install it: the tests that
//! need it must fail loudly, never skip (`.ci/run` installs it).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rampart_generate::source::clickhouse::{ClickHouse, Credentials, Endpoint};

/// How long a server may take to answer `SELECT 1` (it needs about 0.2 s here).
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Start attempts (a port taken between choosing and binding is retried with new ports).
pub const START_ATTEMPTS: usize = 3;
/// The user with a password that the config defines (besides `default`, no password).
pub const USER: &str = "rampart";
/// Its password.
pub const PASSWORD: &str = "s3cret-test-pw";

/// A running ClickHouse server; killed (by PID) on drop.
pub struct Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
    http_port: u16,
    tcp_port: u16,
}

fn binary() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let p = Path::new(dir).join("clickhouse-server");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "clickhouse-server is not installed: these tests need a real ClickHouse. \
         Install Debian's package (`apt-get install clickhouse-server`; .ci/run does) and run again."
    );
}

fn free_ports() -> (u16, u16, u16) {
    // Hold all three at once so they differ; the server binds them right after.
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
        c.local_addr().unwrap().port(),
    )
}

fn config(dir: &Path, http: u16, tcp: u16, interserver: u16) -> String {
    let d = dir.display();
    format!(
        r#"<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/err.log</errorlog><size>10M</size><count>1</count></logger>
    <http_port>{http}</http_port>
    <tcp_port>{tcp}</tcp_port>
    <interserver_http_port>{interserver}</interserver_http_port>
    <listen_host>127.0.0.1</listen_host>
    <max_connections>64</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>32</max_concurrent_queries>
    <uncompressed_cache_size>8388608</uncompressed_cache_size>
    <mark_cache_size>8388608</mark_cache_size>
    <path>{d}/data/</path>
    <tmp_path>{d}/tmp/</tmp_path>
    <user_files_path>{d}/user_files/</user_files_path>
    <format_schema_path>{d}/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mlock_executable>false</mlock_executable>
    <remote_servers>
        <rampart>
            <shard><replica><host>127.0.0.1</host><port>{tcp}</port></replica></shard>
        </rampart>
    </remote_servers>
</yandex>
"#
    )
}

fn users() -> String {
    format!(
        r#"<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
    <users>
        <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
        <{USER}><password>{PASSWORD}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></{USER}>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#
    )
}

impl Server {
    /// Starts a server and waits until it answers `SELECT 1`.
    pub fn start() -> Server {
        let bin = binary();
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().unwrap();
            let (http, tcp, inter) = free_ports();
            std::fs::write(
                dir.path().join("config.xml"),
                config(dir.path(), http, tcp, inter),
            )
            .unwrap();
            std::fs::write(dir.path().join("users.xml"), users()).unwrap();
            let out = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
            let err = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
            let child = Command::new(&bin)
                .arg(format!(
                    "--config-file={}",
                    dir.path().join("config.xml").display()
                ))
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut server = Server {
                child: Some(child),
                dir,
                http_port: http,
                tcp_port: tcp,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("clickhouse-server did not start after {START_ATTEMPTS} attempts: {last}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = self.client("default", None);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log =
                    std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
                let err = std::fs::read_to_string(self.dir.path().join("log/err.log"))
                    .unwrap_or_default();
                self.child = None;
                return Err(format!("exited with {status}: {log} {err}"));
            }
            if client.execute("SELECT 1").is_ok_and(|b| b.trim() == "1") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("no answer to SELECT 1 within {START_TIMEOUT:?}"))
    }

    /// `clickhouse://127.0.0.1:PORT/DATABASE`.
    pub fn source_url(&self, database: &str) -> String {
        format!("clickhouse://127.0.0.1:{}/{database}", self.http_port)
    }

    /// The HTTP port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// A client on `database`, as `default` or with credentials.
    pub fn client(&self, database: &str, credentials: Option<Credentials>) -> ClickHouse {
        ClickHouse::new(Endpoint::parse(&self.source_url(database)).unwrap())
            .with_credentials(credentials)
            .with_timeouts(Duration::from_secs(2), Duration::from_secs(10))
    }

    /// Runs statements (as `default`), panicking with the server's message on error.
    pub fn run(&self, statements: &[String]) {
        let c = self.client("default", None);
        for s in statements {
            if let Err(e) = c.execute(s) {
                panic!("{s}: {e}");
            }
        }
    }

    /// The answer to one query, as text.
    pub fn query(&self, sql: &str) -> String {
        self.client("default", None)
            .execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The 18 November layout: `r0.http_requests_features` (MergeTree, the data) and
    /// `default.http_requests_features` (Distributed over r0), with `columns`; when `weights`
    /// is set, `default.bot_model_weights` with every column's weight from the embedded
    /// catalog (0.25 for names it lacks) and the bias.
    pub fn nov18_layout(&self, columns: &[(String, String)], weights: bool) {
        let cols = columns
            .iter()
            .map(|(n, t)| format!("`{n}` {t}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut s = vec![
            "CREATE DATABASE IF NOT EXISTS r0".to_owned(),
            "DROP TABLE IF EXISTS default.http_requests_features".to_owned(),
            "DROP TABLE IF EXISTS r0.http_requests_features".to_owned(),
            format!("CREATE TABLE r0.http_requests_features ({cols}) ENGINE = MergeTree() ORDER BY tuple()"),
            "CREATE TABLE default.http_requests_features AS r0.http_requests_features ENGINE = Distributed(rampart, r0, http_requests_features)".to_owned(),
        ];
        if weights {
            s.push("DROP TABLE IF EXISTS default.bot_model_weights".to_owned());
            s.push("CREATE TABLE default.bot_model_weights (name String, weight Float64) ENGINE = MergeTree() ORDER BY name".to_owned());
        }
        self.run(&s);
        if weights {
            self.add_weights(columns, true);
        }
    }

    /// Inserts weights for `columns` (from the embedded catalog, 0.25 when it lacks the name),
    /// and the bias row when `bias` is set.
    pub fn add_weights(&self, columns: &[(String, String)], bias: bool) {
        let catalog = rampart_generate::Catalog::embedded().unwrap();
        let mut rows: Vec<String> = columns
            .iter()
            .map(|(n, _)| format!("('{n}', {:?})", catalog.weight(n).unwrap_or(0.25)))
            .collect();
        if bias {
            rows.push(format!("('__bias__', {:?})", catalog.bias));
        }
        self.run(&[format!(
            "INSERT INTO default.bot_model_weights (name, weight) VALUES {}",
            rows.join(", ")
        )]);
    }

    /// Adds columns to both tables, as an `ALTER` on a live cluster would.
    pub fn add_columns(&self, columns: &[(String, String)]) {
        let adds = columns
            .iter()
            .map(|(n, t)| format!("ADD COLUMN `{n}` {t}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.run(&[
            format!("ALTER TABLE r0.http_requests_features {adds}"),
            format!("ALTER TABLE default.http_requests_features {adds}"),
        ]);
    }

    /// Drops columns from both tables.
    pub fn drop_columns(&self, names: &[&str]) {
        let drops = names
            .iter()
            .map(|n| format!("DROP COLUMN `{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        self.run(&[
            format!("ALTER TABLE default.http_requests_features {drops}"),
            format!("ALTER TABLE r0.http_requests_features {drops}"),
        ]);
    }

    /// Kills the server (by PID) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The embedded catalog's features as `(name, type)` columns.
pub fn catalog_columns() -> Vec<(String, String)> {
    rampart_generate::Catalog::embedded()
        .unwrap()
        .features
        .into_iter()
        .map(|f| (f.name, f.ty))
        .collect()
}

/// `n` extra columns `extra_feature_NNN UInt8` (names no consumer knows).
pub fn extra_columns(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("extra_feature_{i:03}"), "UInt8".to_owned()))
        .collect()
}
