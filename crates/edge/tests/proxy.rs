//! The proxy core over real sockets, with a stand-in bot module: forwarding, header
//! rewriting, origin failures, the module boundary, the connection cap and the drain.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/origin.rs"]
mod origin;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use origin::{Origin, STEP, client, get, raw, send};
use rampart_edge::metrics::{Metrics, UnscoredReason};
use rampart_edge::module::{
    Boundary, FailPolicy, Inbound, Module, Rules, Scoring, TEST_PANIC_HEADER,
};
use rampart_edge::proxy::{OriginTimeouts, Proxy, Upstream};
use rampart_edge::server::{Drained, ServeOptions, ShutdownSignal, ShutdownTrigger, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

struct Fixed(Scoring);

impl Module for Fixed {
    fn evaluate(&self, _: &Inbound<'_>) -> Scoring {
        self.0
    }
    fn record(&self, _: bool) {}
}

struct Edge {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    trigger: ShutdownTrigger,
    task: JoinHandle<Drained>,
}

struct Setup {
    verdict: Scoring,
    rules: Rules,
    hooks: bool,
    timeouts: OriginTimeouts,
    options: ServeOptions,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            verdict: Scoring::Scored(42),
            rules: Rules::default(),
            hooks: false,
            timeouts: OriginTimeouts::default(),
            options: ServeOptions::simple(64, Duration::from_secs(30), Duration::from_secs(5)),
        }
    }
}

async fn edge(upstream: SocketAddr, setup: Setup) -> Edge {
    let metrics = Arc::new(Metrics::default());
    let boundary = Boundary::new(
        Arc::new(Fixed(setup.verdict)),
        metrics.clone(),
        setup.rules,
        setup.hooks,
    );
    let upstream: Upstream = format!("http://{upstream}").parse().unwrap();
    let proxy = Arc::new(Proxy::new(
        upstream,
        boundary,
        metrics.clone(),
        setup.timeouts,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, signal) = ShutdownSignal::new();
    let task = tokio::spawn(serve(
        listener,
        setup.options,
        Some(metrics.clone()),
        signal,
        move |peer| {
            let conn = proxy.connection(peer);
            move |req| conn.clone().handle(req)
        },
    ));
    Edge {
        addr,
        metrics,
        trigger,
        task,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_method_path_query_and_body_and_sets_the_score() {
    let origin = Origin::start().await;
    let e = edge(origin.addr, Setup::default()).await;
    let req = Request::post(format!("http://{}/echo/a?b=1&c", e.addr))
        .header("x-rampart-bot-score", "99")
        .header("x-custom", "kept")
        .body(Full::new(Bytes::from_static(b"hello body")))
        .unwrap();
    let (status, headers, body) = send(&client(), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello body");
    assert_eq!(headers["x-origin"], "yes");
    let seen = origin.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(r.uri.path(), "/echo/a");
    assert_eq!(r.uri.query(), Some("b=1&c"));
    assert_eq!(r.body, "hello body");
    assert_eq!(r.headers["x-custom"], "kept");
    // The client's own score header is replaced, not forwarded next to ours.
    assert_eq!(r.headers.get_all("x-rampart-bot-score").iter().count(), 1);
    assert_eq!(r.headers["x-rampart-bot-score"], "42");
    assert_eq!(e.metrics.responses_in_class(2), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unscored_requests_say_so() {
    let origin = Origin::start().await;
    let e = edge(
        origin.addr,
        Setup {
            verdict: Scoring::Unscored(UnscoredReason::NoModel),
            ..Setup::default()
        },
    )
    .await;
    assert_eq!(get(e.addr, "/x").await.0, StatusCode::OK);
    assert_eq!(
        origin.requests()[0].headers["x-rampart-bot-score"],
        "unscored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_stream() {
    let origin = Origin::start().await;
    let e = edge(origin.addr, Setup::default()).await;
    let req = Request::get(format!("http://{}/stream", e.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(STEP, client().request(req))
        .await
        .unwrap()
        .unwrap();
    let mut body = resp.into_body();
    // The origin holds its second chunk until released: the first must already be here.
    let first = tokio::time::timeout(STEP, body.frame())
        .await
        .expect("first chunk was buffered")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first\n");
    origin.release.notify_one();
    let rest = tokio::time::timeout(STEP, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "second\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_stream() {
    let origin = Origin::start().await;
    let e = edge(origin.addr, Setup::default()).await;
    let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(1);
    let client: Client<HttpConnector, Channel<Bytes, std::convert::Infallible>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let req = Request::post(format!("http://{}/upload", e.addr))
        .body(body)
        .unwrap();
    let pending = tokio::spawn(async move { client.request(req).await });
    tx.send_data(Bytes::from_static(b"part one;"))
        .await
        .unwrap();
    // The origin has the first part while the client has not finished sending.
    tokio::time::timeout(STEP, origin.got_first.notified())
        .await
        .expect("request body was buffered");
    tx.send_data(Bytes::from_static(b"part two")).await.unwrap();
    drop(tx);
    let resp = tokio::time::timeout(STEP, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "part one;part two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let origin = Origin::start().await;
    let e = edge(origin.addr, Setup::default()).await;
    let response = raw(
        e.addr,
        "GET /h HTTP/1.1\r\nHost: site.test\r\nConnection: close, X-Secret\r\n\
         X-Secret: s\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\n\
         Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\n\
         Trailer: x-t\r\nX-Kept: k\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(!lower.contains("keep-alive: timeout=5"), "{response}");
    assert!(lower.contains("x-origin: yes"), "{response}");
    let seen = &origin.requests()[0];
    for name in [
        "x-secret",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
        "trailer",
    ] {
        assert!(!seen.headers.contains_key(name), "{name} was forwarded");
    }
    assert_eq!(seen.headers["x-kept"], "k");
    assert_eq!(seen.headers["host"], "site.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_name_the_client() {
    let origin = Origin::start().await;
    let e = edge(origin.addr, Setup::default()).await;
    let req = Request::get(format!("http://{}/f", e.addr))
        .header("x-forwarded-for", "203.0.113.9")
        .header("forwarded", "for=6.6.6.6")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&client(), req).await.0, StatusCode::OK);
    let seen = &origin.requests()[0];
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    let forwarded = seen.headers["forwarded"].to_str().unwrap();
    assert!(forwarded.starts_with("for=127.0.0.1;host="), "{forwarded}");
    assert!(!forwarded.contains("6.6.6.6"), "{forwarded}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_origin_port_is_a_502() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let e = edge(closed, Setup::default()).await;
    let (status, _, body) = get(e.addr, "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body, "origin unreachable\n");
    let mut text = String::new();
    e.metrics.render(&mut text);
    assert!(text.contains("rampart_edge_origin_errors_total{status=\"502\"} 1\n"));
    assert_eq!(e.metrics.responses_in_class(5), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_origin_is_a_504() {
    let origin = Origin::start().await;
    let e = edge(
        origin.addr,
        Setup {
            timeouts: OriginTimeouts {
                connect: Duration::from_secs(1),
                response_header: Duration::from_millis(200),
            },
            ..Setup::default()
        },
    )
    .await;
    let (status, _, _) = get(e.addr, "/slow/5000").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let mut text = String::new();
    e.metrics.render(&mut text);
    assert!(text.contains("rampart_edge_origin_errors_total{status=\"504\"} 1\n"));
    // A fast request on the same edge still works.
    assert_eq!(get(e.addr, "/slow/0").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_block_rule_blocks_low_scores_and_never_unscored() {
    let origin = Origin::start().await;
    let rules = Rules {
        block_below: Some(30),
        fail_policy: FailPolicy::Open,
    };
    let low = edge(
        origin.addr,
        Setup {
            verdict: Scoring::Scored(12),
            rules,
            ..Setup::default()
        },
    )
    .await;
    let (status, _, body) = get(low.addr, "/").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "blocked by bot rule\n");
    assert!(
        origin.requests().is_empty(),
        "a blocked request reached the origin"
    );
    for verdict in [
        Scoring::Scored(30),
        Scoring::Unscored(UnscoredReason::Disabled),
        Scoring::Unscored(UnscoredReason::NoModel),
    ] {
        let e = edge(
            origin.addr,
            Setup {
                verdict,
                rules,
                ..Setup::default()
            },
        )
        .await;
        assert_eq!(get(e.addr, "/").await.0, StatusCode::OK, "{verdict:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_panic_follows_the_fail_policy_for_that_request_only() {
    let origin = Origin::start().await;
    for (policy, expected) in [
        (FailPolicy::Open, StatusCode::OK),
        (FailPolicy::Closed, StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let e = edge(
            origin.addr,
            Setup {
                hooks: true,
                rules: Rules {
                    block_below: Some(50),
                    fail_policy: policy,
                },
                verdict: Scoring::Scored(80),
                ..Setup::default()
            },
        )
        .await;
        let req = Request::get(format!("http://{}/p", e.addr))
            .header(TEST_PANIC_HEADER, "1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let c = client();
        let (status, _, _) = send(&c, req).await;
        assert_eq!(status, expected, "{policy:?}");
        assert_eq!(e.metrics.panics_caught(), 1);
        // The next request on the same edge and pool is scored normally.
        let (status, _, _) = send(
            &c,
            Request::get(format!("http://{}/q", e.addr))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let seen = origin.requests();
    // Fail-open forwarded the panicking request unscored; fail-closed did not forward it.
    let scores: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| {
            (
                s.uri.path(),
                s.headers["x-rampart-bot-score"].to_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(scores, [("/p", "unscored"), ("/q", "80"), ("/q", "80")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panic_hook_is_inert_without_test_hooks() {
    let origin = Origin::start().await;
    let e = edge(
        origin.addr,
        Setup {
            rules: Rules {
                block_below: None,
                fail_policy: FailPolicy::Closed,
            },
            ..Setup::default()
        },
    )
    .await;
    let req = Request::get(format!("http://{}/p", e.addr))
        .header(TEST_PANIC_HEADER, "1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&client(), req).await.0, StatusCode::OK);
    assert_eq!(e.metrics.panics_caught(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_an_in_flight_request_then_stops_accepting() {
    let origin = Origin::start().await;
    let e = edge(origin.addr, Setup::default()).await;
    let addr = e.addr;
    let in_flight = tokio::spawn(async move { get(addr, "/slow/700").await });
    // Wait until the request is in flight (a connection without a request head yet is
    // idle, and a graceful shutdown closes idle connections), then ask the edge to stop.
    for _ in 0..1000 {
        if e.metrics.requests_in_flight() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(e.metrics.requests_in_flight(), 1);
    e.trigger.trigger();
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "slow done\n");
    let drained = tokio::time::timeout(STEP, e.task).await.unwrap().unwrap();
    assert_eq!(drained, Drained::Clean);
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_is_bounded() {
    let origin = Origin::start().await;
    let mut setup = Setup::default();
    setup.options.drain_timeout = Duration::from_millis(200);
    let e = edge(origin.addr, setup).await;
    let addr = e.addr;
    let _stuck = tokio::spawn(async move { get(addr, "/slow/30000").await });
    for _ in 0..1000 {
        if e.metrics.requests_in_flight() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(e.metrics.requests_in_flight(), 1);
    e.trigger.trigger();
    let drained = tokio::time::timeout(STEP, e.task).await.unwrap().unwrap();
    assert_eq!(drained, Drained::TimedOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed() {
    let origin = Origin::start().await;
    let mut setup = Setup::default();
    setup.options.idle_timeout = Duration::from_millis(200);
    let e = edge(origin.addr, setup).await;
    let mut stream = TcpStream::connect(e.addr).await.unwrap();
    // One request, then silence on the kept-alive connection.
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let rest = tokio::time::timeout(STEP, stream.read(&mut buf))
        .await
        .expect("idle connection was kept open");
    assert_eq!(rest.unwrap(), 0, "expected EOF");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_for_a_slot() {
    let origin = Origin::start().await;
    let mut setup = Setup::default();
    setup.options.max_connections = 1;
    let e = edge(origin.addr, setup).await;
    let mut first = TcpStream::connect(e.addr).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    assert!(first.read(&mut buf).await.unwrap() > 0);
    // The first connection holds the only slot: the second is not served meanwhile.
    let addr = e.addr;
    let second = tokio::spawn(async move {
        raw(
            addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "served over the cap");
    drop(first);
    let response = tokio::time::timeout(STEP, second).await.unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tunnels_are_refused() {
    let origin = Origin::start().await;
    let e = edge(origin.addr, Setup::default()).await;
    let response = raw(
        e.addr,
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 405"), "{response}");
    assert!(origin.requests().is_empty());
}

/// Issue 13, "HTTP edge cases at the edge": RFC 9110/9112 say 400 for each of these, and the
/// origin must see none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_and_never_reach_the_origin() {
    let origin = Origin::start().await;
    let e = edge(origin.addr, Setup::default()).await;
    let long_method = "A".repeat(70 * 1024);
    let cases = [
        (
            "two Host headers",
            "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n"
                .to_owned(),
        ),
        (
            "HTTP/1.1 without Host",
            "GET / HTTP/1.1\r\nConnection: close\r\n\r\n".to_owned(),
        ),
        (
            "a 70 KB method",
            format!("{long_method} / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"),
        ),
        (
            "an overflowing chunk size",
            "POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\nfffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"
                .to_owned(),
        ),
    ];
    for (what, request) in cases {
        let response = raw(e.addr, &request).await;
        assert!(
            response.starts_with("HTTP/1.1 400"),
            "{what}: {}",
            response.lines().next().unwrap_or("")
        );
    }
    // The broken chunk reached the origin as a head and a cut body, never as a request.
    assert!(
        origin.requests().is_empty(),
        "forwarded: {:?}",
        origin.requests()
    );
    let mut text = String::new();
    e.metrics.render(&mut text);
    assert!(
        text.contains("rampart_edge_malformed_requests_total 4\n"),
        "{text}"
    );
    // HTTP/1.0 needs no Host.
    let response = raw(e.addr, "GET /ten HTTP/1.0\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
}

/// RFC 9112 3.2.2: in absolute form, the request target's authority is the host, whatever
/// the Host header says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authority_of_an_absolute_form_target_wins_over_host() {
    let origin = Origin::start().await;
    let e = edge(origin.addr, Setup::default()).await;
    let response = raw(
        e.addr,
        "GET http://real.test/p?q=1 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let seen = &origin.requests()[0];
    assert_eq!(seen.headers["host"], "real.test");
    assert_eq!(seen.headers.get_all("host").iter().count(), 1);
    assert_eq!(seen.uri.path(), "/p");
    assert_eq!(seen.uri.query(), Some("q=1"));
}

/// A connection from `local` (any 127.0.0.0/8 address is loopback) to `addr`.
async fn connect_from(local: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Issue 13: 10,100 slow connections from one client made legitimate requests time out
/// until the 60 s idle timeout. Now one address holds at most its cap, and a connection
/// with no request head is closed after the (short) header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_from_one_address_cannot_starve_the_others() {
    const SLOW: usize = 200;
    const CAP: usize = 8;
    let origin = Origin::start().await;
    let mut setup = Setup::default();
    setup.options.max_connections = 64;
    setup.options.per_client = Some(rampart_edge::server::PerClient::new(CAP));
    setup.options.header_timeout = Duration::from_millis(1_500);
    let e = edge(origin.addr, setup).await;

    // A bounded slow-loris load from 127.0.0.1: a partial head, then nothing.
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut s = connect_from("127.0.0.1", e.addr).await;
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHo").await;
        slow.push(s);
    }
    // Meanwhile, another client is served, request after request.
    for i in 0..20 {
        let mut s = connect_from("127.0.0.2", e.addr).await;
        s.write_all(
            format!("GET /ok/{i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(STEP, s.read_to_end(&mut out))
            .await
            .expect("a legitimate request was starved")
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
    // Every slow connection over the cap was told 429 and closed; the ones admitted are
    // closed by the header timeout. None of them waits for the 30 s idle timeout.
    let mut refused = 0;
    for mut s in slow {
        let mut out = Vec::new();
        tokio::time::timeout(STEP, s.read_to_end(&mut out))
            .await
            .expect("a slow connection was kept past the header timeout")
            .unwrap_or_default();
        if String::from_utf8_lossy(&out).starts_with("HTTP/1.1 429") {
            refused += 1;
        }
    }
    assert_eq!(refused, SLOW - CAP);
    let mut text = String::new();
    e.metrics.render(&mut text);
    assert!(
        text.contains(&format!(
            "rampart_edge_connections_closed_early_total{{reason=\"per_client_cap\"}} {}\n",
            SLOW - CAP
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "rampart_edge_connections_closed_early_total{{reason=\"header_timeout\"}} {CAP}\n"
        )),
        "{text}"
    );
    assert_eq!(origin.requests().len(), 20);
}
