//! `rampart up` as a user runs it: it prints the URLs, the edges proxy traffic to its origin,
//! `DIR/up.json` names the same URLs and every child's PID while it runs, and SIGINT (Ctrl-C)
//! stops every child it started (up.json is then gone) before it exits 0. With `--inject nov18`
//! (and a fast policy), each layer stops its file and says so.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Lines `rampart up` may take to print its URLs and first summary.
const START: Duration = Duration::from_secs(60);

/// How long a dropped [`Up`] waits for `rampart up` to stop its children after SIGINT.
const STOP_ON_DROP: Duration = Duration::from_secs(30);

/// A running `rampart up`: when a test fails before it stops it, dropping this sends SIGINT
/// (so `up` stops every child it started) and, after [`STOP_ON_DROP`], SIGKILL. A failed
/// test leaves no stack running.
struct Up(std::process::Child);

impl std::ops::Deref for Up {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Up {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_ON_DROP;
        while Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` (a `rampart up` command line) with its stdout read line by line on a thread.
fn spawn_up(mut cmd: Command) -> (Up, mpsc::Receiver<String>) {
    let mut child = Up(cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap());
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

#[test]
fn up_starts_everything_and_ctrl_c_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args([
        "up", "--edges", "2", "--pops", "2", "--rate", "50", "--every", "1h",
    ])
    .arg("--dir")
    .arg(dir.path().join("stack"));
    let (mut child, rx) = spawn_up(cmd);
    let mut seen = Vec::new();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let deadline = Instant::now() + START;
    // Until a summary line shows traffic through the edges.
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no traffic summary; got:\n{}", seen.join("\n")));
        if let Some(rest) = line.trim().strip_prefix("control plane   https://") {
            addrs.push(rest.split_whitespace().next().unwrap().parse().unwrap());
        }
        if line.trim().starts_with("edge ") {
            for part in line.split_whitespace() {
                if let Some(a) = part.strip_prefix("http://") {
                    addrs.push(a.trim_end_matches("/status").parse().unwrap());
                }
            }
        }
        let traffic = line
            .split("traffic ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok());
        seen.push(line);
        if traffic.is_some_and(|n| n > 0) {
            break;
        }
    }
    let text = seen.join("\n");
    assert!(text.contains("dashboard"), "{text}");
    assert!(text.contains("(canary)"), "{text}");
    assert!(text.contains(", 0 failed"), "{text}");
    assert_eq!(
        addrs.len(),
        5,
        "control, and proxy and admin of 2 edges: {text}"
    );
    for a in &addrs {
        assert!(TcpStream::connect(a).is_ok(), "{a} listens");
    }
    // The state file says the same, for scripts.
    let state_path = dir.path().join("stack/up.json");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    assert_eq!(state["pid"], child.id());
    assert_eq!(
        state["control"].as_str().unwrap(),
        format!("https://{}", addrs[0]),
        "the control plane runs over TLS"
    );
    let ca = std::fs::read_to_string(state["files"]["ca"].as_str().unwrap()).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert_eq!(
        std::fs::read_to_string(state["files"]["admin_token"].as_str().unwrap())
            .unwrap()
            .len(),
        48,
        "the admin token file"
    );
    let edges = state["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    assert_eq!(edges[0]["canary"], true);
    assert!(text.contains(edges[1]["admin"].as_str().unwrap()), "{text}");
    let pids: Vec<u64> = state["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 4, "control, 2 edges, generator: {state}");
    for pid in &pids {
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} runs"
        );
    }

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "rampart up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Everything it printed up to its exit (the reader ends at the pipe's end).
    let mut rest: Vec<String> = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        rest.push(line);
    }
    assert!(exit.success(), "{exit:?}: {}", rest.join("\n"));
    let rest = rest.join("\n");
    assert!(rest.contains("stopped control"), "{rest}");
    assert!(rest.contains("stopped edge-"), "{rest}");
    for a in &addrs {
        assert!(
            TcpStream::connect(a).is_err(),
            "{a} still listens after the stop"
        );
    }
    // Every child was waited for (no process, not even a zombie), and the state file is gone.
    for pid in &pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} is left after the stop"
        );
    }
    assert!(!state_path.exists(), "up.json outlived the stack");
    // The work dir keeps the logs.
    assert!(dir.path().join("stack/logs/control.log").exists());
}

/// Bakes of a fraction of a second and small samples: the demo's story in about 20 s.
const FAST_POLICY: &str = "\
[plan]
canary_bake_ms = 1000
[[plan.waves]]
share = 0.5
bake_ms = 500
[[plan.waves]]
share = 1.0
bake_ms = 500
[rollout]
tick_ms = 100
baseline_wait_ms = 1000
watch_ms = 1000
[rollout.gates]
min_requests = 100
[rollout.gates.shift]
min_scores = 100
";

#[test]
fn up_inject_nov18_shows_each_layer_stopping_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, FAST_POLICY).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args(["up", "--inject", "nov18", "--rate", "400", "--every", "1h"])
        .args(["--beat-interval-ms", "200", "--policy"])
        .arg(&policy)
        .arg("--dir")
        .arg(dir.path().join("stack"));
    let (mut child, rx) = spawn_up(cmd);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(110);
    let mut table = Vec::new();
    let mut in_table = false;
    while table.len() < 5 {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no inject table; got:\n{}", seen.join("\n")));
        if in_table {
            table.push(line.clone());
        }
        in_table |= line.starts_with("inject nov18: who stopped what");
        seen.push(line);
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "rampart up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = table.join("\n");
    let row = |layer: &str| {
        table
            .iter()
            .find(|l| l.contains(layer))
            .unwrap_or_else(|| panic!("no {layer} row in\n{text}"))
            .clone()
    };
    assert!(
        row("generator guards").contains("duplicates (105 names)"),
        "{text}"
    );
    assert!(
        row("control plane").contains("422 too_many_features"),
        "{text}"
    );
    assert!(row("edge fra-1").contains("invalid"), "{text}");
    assert!(row("(nack)").contains("unknown_key"), "{text}");
    // Every score 1: held before wave 0 by the control plane's shadow scoring.
    let shadow = row("control plane shadow");
    assert!(
        shadow.contains("held before wave 0, no edge told"),
        "{text}"
    );
    assert!(shadow.contains("score distribution"), "{text}");
    assert!(exit.success(), "{exit:?}");
    let all = seen.join("\n");
    assert!(!all.contains("inject: stopped"), "{all}");
}

#[test]
fn up_removes_an_old_state_file_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    // Left by a run that was killed: it names processes that are gone.
    std::fs::write(stack.join("up.json"), r#"{"pid": 1, "children": []}"#).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[rollout]\ntick_ms = \"not a number\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["up", "--no-traffic", "--edges", "1", "--policy"])
        .arg(&policy)
        .arg("--dir")
        .arg(&stack)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a policy the control plane refuses stops rampart up"
    );
    assert!(
        !stack.join("up.json").exists(),
        "the old up.json is gone, and no new one was written"
    );
}

/// How long `rampart up` may take to see an edge's death, record it and start it again.
const RESTART: Duration = Duration::from_secs(60);

#[test]
fn up_records_how_an_edge_died_and_starts_it_again_on_its_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args([
        "up", "--edges", "2", "--pops", "2", "--rate", "50", "--every", "1h",
    ])
    .args(["--beat-interval-ms", "200", "--dir"])
    .arg(dir.path().join("stack"));
    let (mut child, rx) = spawn_up(cmd);
    let mut seen = Vec::new();
    let mut wait_for = |what: &str, within: Duration, done: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + within;
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no {what}; got:\n{}", seen.join("\n")));
            let hit = done(&line);
            seen.push(line.clone());
            if hit {
                return line;
            }
        }
    };
    wait_for("stack", START, &|l| l.trim().starts_with("edge "));
    let state_path = dir.path().join("stack/up.json");
    let read_state = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap()
    };
    let state = read_state();
    let edge = state["edges"][1].clone();
    let id = edge["id"].as_str().unwrap().to_owned();
    let pid = edge["pid"].as_u64().unwrap();
    let admin: SocketAddr = edge["admin"].as_str().unwrap().parse().unwrap();
    let proxy: SocketAddr = edge["proxy"].as_str().unwrap().parse().unwrap();

    // A crash the edge cannot see: SIGKILL.
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let died = wait_for("death line", RESTART, &|l| {
        l.starts_with(&format!("supervisor: edge {id} died"))
    });
    assert!(died.contains("signal 9, SIGKILL"), "{died}");
    assert!(died.contains("recorded in its journal"), "{died}");
    let again = wait_for("restart line", RESTART, &|l| {
        l.starts_with(&format!("supervisor: edge {id} started again"))
    });

    // Same addresses, a new PID, and up.json says so.
    let state = read_state();
    let now = state["edges"][1].clone();
    let new_pid = now["pid"].as_u64().unwrap();
    assert_ne!(new_pid, pid, "{again}");
    assert!(again.contains(&format!("pid {new_pid}")), "{again}");
    assert_eq!(now["admin"], edge["admin"]);
    assert_eq!(now["proxy"], edge["proxy"]);
    assert!(
        state["children"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["pid"].as_u64() == Some(new_pid)),
        "{state}"
    );
    assert!(TcpStream::connect(admin).is_ok() && TcpStream::connect(proxy).is_ok());

    // The restarted edge told the control plane how its last run died.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ca = state["files"]["ca"].as_str().unwrap();
    let transport =
        rampart_api::Transport::from_flags(Some(std::path::Path::new(ca)), false).unwrap();
    let anon =
        rampart_api::Client::with_transport(state["control"].as_str().unwrap(), None, &transport)
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let death = loop {
        // The node may not have registered yet (it was killed early): 404 until it does.
        let view = rt.block_on(anon.node(&id));
        if let Some(d) = view.as_ref().ok().and_then(|v| v.last_death.clone()) {
            break d;
        }
        assert!(Instant::now() < deadline, "no death reported: {view:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Drain what `up` said meanwhile (a restart that failed shows here), for the message.
    while let Ok(line) = rx.try_recv() {
        seen.push(line);
    }
    let log = std::fs::read_to_string(dir.path().join(format!("stack/logs/edge-{id}.log")))
        .unwrap_or_default();
    // A restart on the same ports can fail once (another process took a port in the second
    // the edge was dead: an outgoing connection's ephemeral port, a test binding port 0):
    // the supervisor says so and tries again, and that failed start (exit 2) is the newest
    // death. Otherwise the newest death is the SIGKILL.
    let failed_start = format!("supervisor: edge {id} did not start");
    let expected = if seen.iter().any(|l| l.starts_with(&failed_start)) {
        rampart_api::DeathCause::Exit { code: 2 }
    } else {
        rampart_api::DeathCause::Signal { signal: 9 }
    };
    assert_eq!(
        death.cause,
        expected,
        "up said:\n{}\nthe edge's log:\n{log}",
        seen.join("\n")
    );

    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "rampart up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(
        !std::path::Path::new(&format!("/proc/{new_pid}")).exists(),
        "the restarted edge was stopped too"
    );
}

#[test]
fn up_engine_nats_runs_replicas_on_a_nats_cluster_and_survives_the_leaders_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args([
        "up", "--engine", "nats", "--edges", "2", "--pops", "2", "--rate", "50",
    ])
    .args(["--every", "1h", "--beat-interval-ms", "200", "--dir"])
    .arg(dir.path().join("stack"));
    let (mut child, rx) = spawn_up(cmd);
    let mut seen = Vec::new();
    let deadline = Instant::now() + START;
    let leader_line = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no leader line; got:\n{}", seen.join("\n")));
        seen.push(line.clone());
        if line.contains("control-plane replicas on NATS; leader: ") {
            break line;
        }
    };
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("stack/up.json")).unwrap())
            .unwrap();
    let control = state["control"].as_str().unwrap().to_owned();
    let urls: Vec<&str> = control.split(',').collect();
    assert_eq!(urls.len(), 2, "{control}");
    assert!(leader_line.ends_with(urls[0]), "{leader_line}");
    let children: Vec<(String, u64)> = state["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["pid"].as_u64().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = children.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "nats-n0",
        "nats-n1",
        "nats-n2",
        "control-0",
        "control-1",
        "generator",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }

    // SIGKILL the leader: the other replica leads, and the edges' beats reach it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ca = state["files"]["ca"].as_str().unwrap();
    let transport =
        rampart_api::Transport::from_flags(Some(std::path::Path::new(ca)), false).unwrap();
    let second = rampart_api::Client::with_transport(urls[1], None, &transport).unwrap();
    // The edges reach the control plane over NATS, not at either replica's URL.
    for edge in state["edges"].as_array().unwrap() {
        let admin: SocketAddr = edge["admin"].as_str().unwrap().parse().unwrap();
        let status = rt
            .block_on(rampart_up::status::get_json(admin, "/status"))
            .unwrap();
        let via = status["control"]["control"].as_str().unwrap_or_default();
        assert!(via.starts_with("nats://"), "{status}");
    }
    let pid = children.iter().find(|(n, _)| n == "control-0").unwrap().1;
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(20);
    loop {
        let h = rt.block_on(second.health());
        if h.as_ref().is_ok_and(|h| h["role"] == "leader") {
            break;
        }
        assert!(Instant::now() < deadline, "no new leader: {h:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "rampart up --engine nats: new leader {:?} after the SIGKILL",
        killed.elapsed()
    );
    let beat_after = rampart_host::clock::now_ms();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let nodes = rt.block_on(second.nodes()).unwrap().nodes;
        if nodes.len() == 2
            && nodes
                .iter()
                .all(|n| n.last_beat_ms.is_some_and(|b| b > beat_after))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "edges do not beat to the new leader: {nodes:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "rampart up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    for (name, pid) in &children {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{name} ({pid}) is left after the stop"
        );
    }
}
