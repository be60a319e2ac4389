//! The ceiling for the edge's speed goal: the least a hyper reverse proxy can do, with the
//! edge's threading (one current-thread runtime per worker, `SO_REUSEPORT` listeners) and
//! nothing else: no bot module, no header rewriting, no metrics, no timeouts.
//!
//! `scripts/bench-edge.sh` runs it beside nginx and the edge, so the report separates what
//! hyper itself costs (bare / nginx) from what rampart adds (edge / bare).
//!
//!   bare_proxy LISTEN_ADDR UPSTREAM_ADDR [WORKERS] [legacy|conn]
//!
//! `conn` (default) gives each client connection its own origin connection
//! (`hyper::client::conn::http1`); `legacy` shares hyper-util's pooled client per worker.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use http::{Request, Response, Uri};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;

/// `BARE_TIMEOUT` set: wrap each origin exchange in `tokio::time::timeout` (what a timer per
/// request costs). Read once, not on the request path.
static PER_REQUEST_TIMEOUT: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("BARE_TIMEOUT").is_some());

/// `BARE_HRT` set: hyper's header-read timeout (a boxed sleep per request).
static HEADER_READ_TIMEOUT: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("BARE_HRT").is_some());

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen: SocketAddr = args[1].parse().unwrap();
    let upstream: SocketAddr = args[2].parse().unwrap();
    let workers: usize = args.get(3).map_or(2, |w| w.parse().unwrap());
    let legacy = args.get(4).is_some_and(|m| m == "legacy");
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let socket = TcpSocket::new_v4().unwrap();
                    socket.set_reuseaddr(true).unwrap();
                    socket.set_reuseport(true).unwrap();
                    socket.bind(listen).unwrap();
                    serve(socket.listen(1024).unwrap(), upstream, legacy).await;
                });
            })
        })
        .collect();
    eprintln!("bare proxy on {listen} -> {upstream}");
    for t in threads {
        t.join().unwrap();
    }
}

async fn serve(listener: tokio::net::TcpListener, upstream: SocketAddr, legacy: bool) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    let base: Uri = format!("http://{upstream}").parse().unwrap();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let client = client.clone();
        let base = base.clone();
        let origin: Arc<Mutex<Option<hyper::client::conn::http1::SendRequest<Incoming>>>> =
            Arc::default();
        tokio::spawn(async move {
            let service = service_fn(move |mut req: Request<Incoming>| {
                let client = client.clone();
                let origin = origin.clone();
                let base = base.clone();
                async move {
                    if legacy {
                        let pq = req.uri().path_and_query().cloned();
                        let mut parts = base.into_parts();
                        parts.path_and_query = pq;
                        *req.uri_mut() = Uri::from_parts(parts).unwrap();
                        let resp = client.request(req).await;
                        return Ok::<_, Infallible>(match resp {
                            Ok(r) => r.map(Either::Left),
                            Err(_) => Response::builder()
                                .status(502)
                                .body(Either::Right(Empty::new()))
                                .unwrap(),
                        });
                    }
                    let mut slot = origin.lock().await;
                    if slot.as_ref().is_none_or(|s| s.is_closed()) {
                        let tcp = TcpStream::connect(upstream).await.unwrap();
                        tcp.set_nodelay(true).unwrap();
                        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                            .await
                            .unwrap();
                        tokio::spawn(conn);
                        *slot = Some(send);
                    }
                    let send = slot.as_mut().unwrap();
                    send.ready().await.unwrap();
                    let resp = if *PER_REQUEST_TIMEOUT {
                        tokio::time::timeout(
                            std::time::Duration::from_secs(15),
                            send.send_request(req),
                        )
                        .await
                        .unwrap()
                    } else {
                        send.send_request(req).await
                    };
                    drop(slot);
                    Ok(match resp {
                        Ok(r) => r.map(Either::Left),
                        Err(_) => Response::builder()
                            .status(502)
                            .body(Either::Right(Empty::<bytes::Bytes>::new()))
                            .unwrap(),
                    })
                }
            });
            let mut builder = http1::Builder::new();
            if *HEADER_READ_TIMEOUT {
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(30));
            }
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
