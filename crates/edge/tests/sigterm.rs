//! `rampart edge`'s real entry point under a real SIGTERM: the in-flight request finishes,
//! the process's run returns success, and the boot journal records a clean exit.
//!
//! Alone in its test binary: the signal goes to this whole process, whose handler the edge
//! installs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/origin.rs"]
mod origin;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Parser;
use http::StatusCode;
use origin::{Origin, get};
use rampart_edge::EdgeArgs;

#[derive(Debug, Parser)]
struct Top {
    #[command(flatten)]
    edge: EdgeArgs,
}

/// A loopback port that was free a moment ago.
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_in_flight_request_and_exits_cleanly() {
    let origin = Origin::start().await;
    let data = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let args = Top::try_parse_from([
        "edge".to_owned(),
        format!("--listen={listen}"),
        format!("--admin={admin}"),
        format!("--upstream=http://{}", origin.addr),
        format!("--data-dir={}", data.path().display()),
    ])
    .unwrap()
    .edge;
    // run() owns its runtime, so it gets a thread of its own.
    let edge = std::thread::spawn(move || rampart_edge::run(args));

    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(admin).await.is_err() {
        assert!(Instant::now() < deadline, "edge never came up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let slow = tokio::spawn(async move { get(listen, "/slow/600").await });
    loop {
        let (_, _, body) = get(admin, "/metrics").await;
        if String::from_utf8_lossy(&body).contains("rampart_edge_requests_in_flight 1\n") {
            break;
        }
        assert!(Instant::now() < deadline, "request never in flight");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let (status, _, body) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "slow done\n");
    let result = tokio::task::spawn_blocking(move || edge.join().unwrap())
        .await
        .unwrap();
    assert_eq!(result.unwrap(), ExitCode::SUCCESS);
    assert!(
        tokio::net::TcpStream::connect(listen).await.is_err(),
        "still accepting after the drain"
    );
    let journal = std::fs::read_to_string(data.path().join("sentinel/journal")).unwrap();
    assert!(
        journal.lines().last().unwrap().contains("clean_exit"),
        "{journal}"
    );
}
