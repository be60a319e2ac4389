//! `DIR/up.json`: what a running `rampart up` is, for scripts and tests that drive it (the
//! browser test reads it). Written once every process has started (aside, then renamed, so a
//! reader never sees half a file), removed after every child has stopped: while it exists,
//! its URLs answer.
//!
//! It names the token and key *files*, never a secret: the secrets stay in their `0600` files.
//!
//! ```json
//! {
//!   "pid": 4242,
//!   "dir": "/tmp/rampart-up-…",
//!   "control": "https://127.0.0.1:41234",
//!   "dashboard": "https://127.0.0.1:41234/ui/",
//!   "origin": "http://127.0.0.1:40001",
//!   "files": { "admin_token": "…/admin.token", "approver_token": "…/approver.token",
//!              "publisher_token": "…/publisher.token",
//!              "signing_key": "…/keys/rampart.key", "rotated_key": "…/keys/rotated.key",
//!              "policy": "…/policy.toml", "logs": "…/logs", "ca": "…/tls/ca.pem" },
//!   "children": [ { "name": "control", "pid": 4243 }, { "name": "edge-fra-1", "pid": 4244 }, … ],
//!   "edges": [ { "id": "fra-1", "pop": "fra", "region": "eu", "canary": true,
//!                "proxy": "127.0.0.1:40002", "admin": "127.0.0.1:40003", "pid": 4244,
//!                "watch_dir": "…/edges/fra-1/watch" }, … ]
//! }
//! ```

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::workdir::Workdir;

/// The file's name in the work dir.
pub const FILE: &str = "up.json";

/// A running stack, as written to [`FILE`].
#[derive(Debug, Clone)]
pub struct State {
    /// The `rampart up` process.
    pub pid: u32,
    /// The control plane's URL.
    pub control: String,
    /// The origin.
    pub origin: SocketAddr,
    /// Every child process, in start order: `control`, `edge-<id>`…, `generator`.
    pub children: Vec<ChildState>,
    /// The edges.
    pub edges: Vec<EdgeState>,
}

/// One child process.
#[derive(Debug, Clone)]
pub struct ChildState {
    /// Its name (as in `logs/<name>.log`).
    pub name: String,
    /// Its process id.
    pub pid: u32,
}

/// One edge.
#[derive(Debug, Clone)]
pub struct EdgeState {
    /// Node id.
    pub id: String,
    /// PoP.
    pub pop: String,
    /// Region.
    pub region: String,
    /// Takes canary waves.
    pub canary: bool,
    /// Its proxy.
    pub proxy: SocketAddr,
    /// Its admin API.
    pub admin: SocketAddr,
    /// Its process id.
    pub pid: u32,
    /// Its watch dir.
    pub watch_dir: PathBuf,
}

// === impl State ===

impl State {
    /// The JSON written to [`FILE`].
    pub fn to_json(&self, work: &Workdir) -> serde_json::Value {
        let path = |p: &Path| p.display().to_string();
        json!({
            "pid": self.pid,
            "dir": path(&work.root),
            "control": self.control,
            "dashboard": format!("{}/ui/", self.control),
            "origin": format!("http://{}", self.origin),
            "files": {
                "admin_token": path(&work.admin_token),
                "approver_token": path(&work.approver_token),
                "publisher_token": path(&work.publisher_token),
                "signing_key": path(&work.key),
                "rotated_key": path(&work.rotated_key),
                "policy": path(&work.policy),
                "logs": path(&work.root.join("logs")),
                "ca": path(&work.tls().ca_cert),
            },
            "children": self.children.iter().map(|c| json!({
                "name": c.name,
                "pid": c.pid,
            })).collect::<Vec<_>>(),
            "edges": self.edges.iter().map(|e| json!({
                "id": e.id,
                "pop": e.pop,
                "region": e.region,
                "canary": e.canary,
                "proxy": e.proxy.to_string(),
                "admin": e.admin.to_string(),
                "pid": e.pid,
                "watch_dir": path(&e.watch_dir),
            })).collect::<Vec<_>>(),
        })
    }

    /// Writes [`FILE`] into the work dir: atomically and durably (`rampart_host::file::write_atomic`). Returns its path.
    pub fn write(&self, work: &Workdir) -> io::Result<PathBuf> {
        let file = work.root.join(FILE);
        let text = serde_json::to_string_pretty(&self.to_json(work)).map_err(io::Error::other)?;
        rampart_host::file::write_atomic(&file, (text + "\n").as_bytes())
            .map_err(rampart_host::file::Error::into_io)?;
        Ok(file)
    }
}

/// Removes [`FILE`] from `root` (the stack has stopped); a missing file is fine.
pub fn remove(root: &Path) -> io::Result<()> {
    match std::fs::remove_file(root.join(FILE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(work: &Workdir) -> State {
        State {
            pid: 10,
            control: "http://127.0.0.1:7700".into(),
            origin: "127.0.0.1:7000".parse().unwrap(),
            children: vec![
                ChildState {
                    name: "control".into(),
                    pid: 11,
                },
                ChildState {
                    name: "edge-fra-1".into(),
                    pid: 12,
                },
            ],
            edges: vec![EdgeState {
                id: "fra-1".into(),
                pop: "fra".into(),
                region: "eu".into(),
                canary: true,
                proxy: "127.0.0.1:8001".parse().unwrap(),
                admin: "127.0.0.1:9001".parse().unwrap(),
                pid: 12,
                watch_dir: work.root.join("edges/fra-1/watch"),
            }],
        }
    }

    #[test]
    fn the_state_file_names_urls_files_and_pids_but_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let work = Workdir::create(&dir.path().join("stack"), "").unwrap();
        let path = state(&work).write(&work).unwrap();
        assert_eq!(path, work.root.join(FILE));
        assert!(
            !work.root.join(format!(".{FILE}.tmp")).exists(),
            "written aside, then renamed"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["pid"], 10);
        assert_eq!(v["control"], "http://127.0.0.1:7700");
        assert_eq!(v["dashboard"], "http://127.0.0.1:7700/ui/");
        assert_eq!(v["origin"], "http://127.0.0.1:7000");
        let admin = v["files"]["admin_token"].as_str().unwrap();
        assert_eq!(std::fs::read_to_string(admin).unwrap(), work.admin_secret);
        assert_eq!(
            v["files"]["rotated_key"].as_str().unwrap(),
            work.rotated_key.display().to_string()
        );
        let pids: Vec<u64> = v["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["pid"].as_u64().unwrap())
            .collect();
        assert_eq!(pids, [11, 12]);
        let edge = &v["edges"][0];
        assert_eq!(edge["id"], "fra-1");
        assert_eq!(edge["canary"], true);
        assert_eq!(edge["admin"], "127.0.0.1:9001");
        assert_eq!(edge["pid"], 12);
        for secret in [
            &work.admin_secret,
            &work.publisher_secret,
            &work.approver_secret,
        ] {
            assert!(!text.contains(secret.as_str()), "a secret in up.json");
        }
    }

    #[test]
    fn the_state_file_is_removed_and_a_missing_one_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let work = Workdir::create(dir.path(), "").unwrap();
        state(&work).write(&work).unwrap();
        // Written again (a second look), it replaces the first.
        state(&work).write(&work).unwrap();
        remove(&work.root).unwrap();
        assert!(!work.root.join(FILE).exists());
        remove(&work.root).unwrap();
    }
}
