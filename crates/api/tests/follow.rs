//! The client of an HA control plane: a refused connection moves on to the next URL given; a
//! follower's 503 naming the leader moves to the leader, once; other answers are returned as
//! they are. Tiny HTTP servers on loopback stand in for the replicas.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rampart_api::Client;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// A server answering every request with `status` and `body`; counts the requests.
async fn server(status: &'static str, body: String) -> (String, Arc<AtomicUsize>) {
    server_with(status, |_| body).await
}

/// [`server`], the body made knowing the server's own URL.
async fn server_with(
    status: &'static str,
    body: impl FnOnce(&str) -> String,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let body = body(&url);
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, hits)
}

/// A loopback URL nothing listens on.
async fn closed() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

#[tokio::test]
async fn a_refused_connection_moves_on_to_the_next_url_and_stays_there() {
    let dead = closed().await;
    let (live, hits) = server("200 OK", r#"{"status":"ok"}"#.into()).await;
    let client = Client::new(&format!("{dead},{live}"), None).unwrap();
    assert_eq!(client.health().await.unwrap()["status"], "ok");
    assert_eq!(client.base_url().trim_end_matches('/'), live);
    // Clones share what was learned.
    let other = client.with_token(Some("t".into()));
    other.health().await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(other.base_url().trim_end_matches('/'), live);
}

#[tokio::test]
async fn every_url_refusing_is_a_transport_error() {
    let (a, b) = (closed().await, closed().await);
    let e = Client::new(&format!("{a},{b}"), None)
        .unwrap()
        .health()
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.status(), None);
}

#[tokio::test]
async fn a_followers_503_naming_the_leader_is_sent_to_the_leader_once() {
    let (leader, leader_hits) = server("200 OK", r#"{"status":"ok"}"#.into()).await;
    let (follower, follower_hits) = server(
        "503 Service Unavailable",
        format!(
            r#"{{"error":"unavailable","message":"this replica follows; the leader is {leader}","leader":"{leader}"}}"#
        ),
    )
    .await;
    let client = Client::new(&follower, None).unwrap();
    assert_eq!(client.health().await.unwrap()["status"], "ok");
    assert_eq!(client.base_url().trim_end_matches('/'), leader);
    client.health().await.unwrap();
    assert_eq!(follower_hits.load(Ordering::SeqCst), 1, "asked once");
    assert_eq!(leader_hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_503_without_a_leader_or_naming_itself_or_another_scheme_is_returned_as_it_is() {
    for leader in [None, Some("self"), Some("https://127.0.0.1:1")] {
        let (url, hits) = server_with("503 Service Unavailable", |me| {
            let named = match leader {
                None => String::new(),
                Some("self") => format!(r#","leader":"{me}""#),
                Some(other) => format!(r#","leader":"{other}""#),
            };
            format!(r#"{{"error":"unavailable","message":"busy"{named}}}"#)
        })
        .await;
        let e = Client::new(&url, None).unwrap().health().await.unwrap_err();
        assert_eq!(e.status(), Some(503), "{leader:?}: {e}");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "{leader:?}");
    }
}

#[tokio::test]
async fn urls_are_checked_each_and_together() {
    assert!(
        Client::new("http://127.0.0.1:1,http://10.0.0.1:2", None).is_err(),
        "plain, not loopback"
    );
    assert!(
        Client::new("http://127.0.0.1:1,https://127.0.0.1:2", None).is_err(),
        "mixed schemes"
    );
    assert!(Client::new(" , ", None).is_err(), "no URL");
    let many = ["http://127.0.0.1:1"; rampart_api::client::MAX_CONTROL_URLS + 1].join(",");
    assert!(Client::new(&many, None).is_err(), "too many");
}
