//! The control API's connections on real sockets: slow clients (a partial request head, or
//! nothing) from one address are capped and closed after the header timeout while another
//! address gets `/v1/health` and heartbeats through; idle keep-alive connections are closed
//! but a long-poll longer than the idle timeout is not; near the cap only fleet traffic is
//! served, and past it connections are refused with 503. The counters in `/v1/health` say
//! so. Every load is bounded in count and time; every wait is a bounded poll.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rampart_api::Heartbeat;
use rampart_e2e::Harness;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

/// The slow clients' address (the harness's own clients use it too).
const SLOW: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// The legitimate client's address.
const GOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A connection to `to` from `from` (bound before connect).
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    timeout(Duration::from_secs(5), socket.connect(to))
        .await
        .expect("connect timed out")
        .unwrap()
}

/// One HTTP/1.1 response: status, headers (lowercase names), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one response (head, then `content-length` bytes) within 10 s.
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let read = async {
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "EOF before a response head: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < len {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "EOF inside a body");
            body.extend_from_slice(&chunk[..n]);
        }
        Answer {
            status,
            headers,
            body,
        }
    };
    timeout(Duration::from_secs(10), read)
        .await
        .expect("no response within 10 s")
}

/// One request from `from` on a fresh connection (closed after it).
async fn request(
    from: Ipv4Addr,
    to: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&[u8]>,
) -> Answer {
    let mut s = connect_from(from, to).await;
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n");
    if let Some(token) = auth {
        req.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    s.write_all(&bytes).await.unwrap();
    read_answer(&mut s).await
}

/// `/v1/health`'s `connections`, asked from [`GOOD`]; `None` when refused at the cap.
async fn connections(addr: SocketAddr) -> Option<serde_json::Value> {
    let a = request(GOOD, addr, "GET", "/v1/health", None, None).await;
    if a.status == 503 {
        return None;
    }
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    Some(a.json()["connections"].clone())
}

/// Polls `/v1/health` until `ok(connections)` holds (a 503 at the cap is polled again);
/// fails with the last answer after `within`.
async fn wait_for(
    addr: SocketAddr,
    within: Duration,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let c = connections(addr).await;
        if let Some(c) = c.as_ref().filter(|c| ok(c)) {
            return c.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `s` is closed by the server within `within`: EOF (or a reset) after reading
/// whatever the server sent. The bytes read are returned.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    timeout(within, read).await.ok().map(|()| got)
}

/// A node registered and enrolled by the harness: its credential.
async fn enrolled(h: &Harness, node: &str) -> String {
    h.register(node, "fra", "eu", false).await;
    h.node(node).await;
    h.credentials.lock().unwrap()[node].clone()
}

fn beat() -> Vec<u8> {
    serde_json::to_vec(&Heartbeat::empty(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_from_one_address_are_capped_and_cut_while_the_fleet_gets_through() {
    const PER_CLIENT: u64 = 50;
    const SLOW_CONNECTIONS: usize = 120;
    const HEADER_TIMEOUT_MS: u64 = 500;
    let h = Harness::start_with(|c| {
        c.connections.max_connections_per_client = PER_CLIENT as usize;
        c.connections.header_timeout_ms = HEADER_TIMEOUT_MS;
        // Short, so the harness's own pooled connections are gone before the load.
        c.connections.idle_timeout_ms = 300;
    })
    .await;
    let addr = h.server.as_ref().unwrap().addr();
    let credential = enrolled(&h, "edge-1").await;
    let quiet = wait_for(
        addr,
        Duration::from_secs(10),
        "pooled connections idle out",
        |c| c["open"] == 1,
    )
    .await;
    assert_eq!(quiet["per_client_cap"], PER_CLIENT);
    assert_eq!(quiet["header_timeout_ms"], HEADER_TIMEOUT_MS);

    // The load: every other one sends a partial request head, the rest send nothing.
    let mut slow = Vec::with_capacity(SLOW_CONNECTIONS);
    for i in 0..SLOW_CONNECTIONS {
        let mut s = connect_from(SLOW, addr).await;
        if i % 2 == 0 {
            s.write_all(b"GET /v1/health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
                .await
                .unwrap();
        }
        slow.push(s);
    }

    // Meanwhile, from another address: health and a heartbeat.
    let health = request(GOOD, addr, "GET", "/v1/health", None, None).await;
    assert_eq!(health.status, 200);
    let answer = request(
        GOOD,
        addr,
        "POST",
        "/v1/nodes/edge-1/heartbeat",
        Some(&credential),
        Some(&beat()),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.json()["etag"].is_string());

    // Every slow connection ends within a bounded wait: the ones over the cap at once with
    // 429, the admitted ones after the header timeout with nothing.
    let (mut refused, mut cut) = (0u64, 0u64);
    for s in &mut slow {
        let got = closed_within(s, Duration::from_millis(HEADER_TIMEOUT_MS + 5_000))
            .await
            .expect("a slow connection still open 5 s after the header timeout");
        if got.starts_with(b"HTTP/1.1 429") {
            refused += 1;
        } else {
            assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
            cut += 1;
        }
    }
    assert_eq!(cut, PER_CLIENT, "admitted: the per-client cap");
    assert_eq!(refused, SLOW_CONNECTIONS as u64 - PER_CLIENT);

    let c = wait_for(addr, Duration::from_secs(5), "counters", |c| {
        c["closed_header_timeout"].as_u64() >= Some(PER_CLIENT)
            && c["refused_per_client"].as_u64() >= Some(refused)
            && c["open"] == 1
    })
    .await;
    assert_eq!(c["refused_over_cap"], 0);
    // The slow address has its slots back.
    h.anon.health().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_but_a_long_poll_is_not() {
    const IDLE_MS: u64 = 400;
    let h = Harness::start_with(|c| {
        c.connections.idle_timeout_ms = IDLE_MS;
        c.connections.header_timeout_ms = 5_000;
    })
    .await;
    let addr = h.server.as_ref().unwrap().addr();
    let credential = enrolled(&h, "edge-1").await;

    // A keep-alive connection answered once, then left idle: closed.
    let mut s = connect_from(GOOD, addr).await;
    s.write_all(b"GET /v1/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let first = read_answer(&mut s).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["connections"]["idle_timeout_ms"], IDLE_MS);
    let got = closed_within(&mut s, Duration::from_millis(IDLE_MS + 5_000))
        .await
        .expect("an idle keep-alive connection still open 5 s after the idle timeout");
    assert!(got.is_empty());
    wait_for(addr, Duration::from_secs(5), "closed_idle counted", |c| {
        c["closed_idle"].as_u64() >= Some(1)
    })
    .await;

    // A long-poll waiting three times the idle timeout is a request in progress: answered.
    let first = request(
        GOOD,
        addr,
        "POST",
        "/v1/nodes/edge-1/heartbeat",
        Some(&credential),
        Some(&beat()),
    )
    .await;
    assert_eq!(first.status, 200);
    let mut poll = Heartbeat::empty(1);
    poll.seen = Some(first.json()["etag"].as_str().unwrap().to_owned());
    poll.wait_ms = IDLE_MS * 3;
    let started = Instant::now();
    let answer = request(
        GOOD,
        addr,
        "POST",
        "/v1/nodes/edge-1/heartbeat",
        Some(&credential),
        Some(&serde_json::to_vec(&poll).unwrap()),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["changed"], false);
    // It did wait (the server held it past the idle timeout), so the idle watchdog left it.
    assert!(started.elapsed() >= Duration::from_millis(IDLE_MS * 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_the_cap_only_fleet_traffic_is_served_and_past_it_connections_get_503() {
    const CAP: usize = 20;
    let h = Harness::start_with(|c| {
        c.connections.max_connections = CAP;
        c.connections.header_timeout_ms = 30_000;
        c.connections.idle_timeout_ms = 300;
    })
    .await;
    let addr = h.server.as_ref().unwrap().addr();
    let credential = enrolled(&h, "edge-1").await;
    let quiet = wait_for(
        addr,
        Duration::from_secs(10),
        "pooled connections idle out",
        |c| c["open"] == 1,
    )
    .await;
    assert_eq!(quiet["cap"], CAP);
    assert_eq!(quiet["high_water"], 18);

    // 17 held connections, plus the one asking: 18 open, the high-water mark.
    let mut held = Vec::new();
    for _ in 0..17 {
        held.push(connect_from(SLOW, addr).await);
    }
    wait_for(addr, Duration::from_secs(5), "17 held", |c| c["open"] == 18).await;
    let refused = request(GOOD, addr, "GET", "/v1/nodes", None, None).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["error"], "unavailable");
    assert_eq!(refused.header("retry-after"), Some("5"));
    let health = request(GOOD, addr, "GET", "/v1/health", None, None).await;
    assert_eq!(health.status, 200);
    let beat_answer = request(
        GOOD,
        addr,
        "POST",
        "/v1/nodes/edge-1/heartbeat",
        Some(&credential),
        Some(&beat()),
    )
    .await;
    assert_eq!(beat_answer.status, 200);
    // Near the cap even a served request gives its connection back.
    assert_eq!(beat_answer.header("connection"), Some("close"));

    // 20 held: the next connection is refused at once with 503.
    for _ in 0..2 {
        held.push(connect_from(SLOW, addr).await);
    }
    wait_for(addr, Duration::from_secs(5), "19 held", |c| c["open"] == 20).await;
    held.push(connect_from(SLOW, addr).await);
    // The cap is full now, unless the last health check's connection was still closing when
    // the 20th arrived (then that one was refused, and the next one takes its slot): a few
    // tries, each held when admitted.
    let mut text = String::new();
    for _ in 0..3 {
        let mut over = connect_from(GOOD, addr).await;
        match closed_within(&mut over, Duration::from_secs(1)).await {
            Some(got) => {
                text = String::from_utf8_lossy(&got).into_owned();
                break;
            }
            None => held.push(over),
        }
    }
    assert!(
        text.starts_with("HTTP/1.1 503"),
        "no connection refused at the cap: {text:?}"
    );
    assert!(text.contains("retry-after: 1"), "{text}");

    drop(held);
    let c = wait_for(addr, Duration::from_secs(5), "counters", |c| c["open"] == 1).await;
    assert!(c["refused_over_cap"].as_u64() >= Some(1), "{c}");
    assert!(c["shed"].as_u64() >= Some(1), "{c}");
    assert_eq!(c["refused_per_client"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_client_that_never_says_hello_is_cut_at_the_header_timeout() {
    const HEADER_TIMEOUT_MS: u64 = 500;
    let h = Harness::start_tls_with(|c| {
        c.connections.header_timeout_ms = HEADER_TIMEOUT_MS;
        c.connections.max_connections_per_client = 20;
    })
    .await;
    let addr = h.server.as_ref().unwrap().addr();
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(connect_from(SLOW, addr).await);
    }
    // Meanwhile a TLS client gets its answer.
    assert_eq!(h.anon.health().await.unwrap()["status"], "ok");
    for s in &mut silent {
        let got = closed_within(s, Duration::from_millis(HEADER_TIMEOUT_MS + 5_000))
            .await
            .expect("a silent TLS connection still open 5 s after the header timeout");
        assert!(got.is_empty());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let health = h.anon.health().await.unwrap();
        let c = &health["connections"];
        if c["closed_header_timeout"].as_u64() >= Some(10) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "closed_header_timeout not counted: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
