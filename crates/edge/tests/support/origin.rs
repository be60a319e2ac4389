//! A tiny in-process origin and client helpers for the edge's socket tests.

// Each test binary uses a different part of this file.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Upper bound on any one step of a test, so a bug shows as a failure, not a hang.
pub const STEP: Duration = Duration::from_secs(10);

/// A request as the origin received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The origin: `/slow/<ms>` sleeps then answers, `/stream` sends `first\n`, waits for
/// `release`, then `second\n`; `/upload` reads one body frame, tells `got_first`, then
/// echoes everything; anything else echoes the body with a few hop-by-hop headers added.
#[derive(Clone)]
pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub release: Arc<Notify>,
    pub got_first: Arc<Notify>,
}

type OriginBody = BoxBody<Bytes, Infallible>;

impl Origin {
    pub async fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = Origin {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            release: Arc::new(Notify::new()),
            got_first: Arc::new(Notify::new()),
        };
        let shared = origin.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let o = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let o = o.clone();
                        async move { Ok::<_, Infallible>(o.answer(req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        origin
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<OriginBody> {
        let path = req.uri().path().to_owned();
        if let Some(ms) = path.strip_prefix("/slow/") {
            let ms: u64 = ms.parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return text("slow done\n");
        }
        if path == "/stream" {
            let release = self.release.clone();
            let (mut tx, body) = Channel::<Bytes, Infallible>::new(2);
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::from_static(b"first\n")).await;
                release.notified().await;
                let _ = tx.send_data(Bytes::from_static(b"second\n")).await;
            });
            return Response::new(BodyExt::boxed(body));
        }
        let (parts, mut body) = req.into_parts();
        let mut collected = Vec::new();
        if path == "/upload" {
            if let Some(Ok(frame)) = body.frame().await
                && let Ok(data) = frame.into_data()
            {
                collected.extend_from_slice(&data);
            }
            self.got_first.notify_one();
        }
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                collected.extend_from_slice(&data);
            }
        }
        let body = Bytes::from(collected);
        self.seen.lock().unwrap().push(Seen {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body: body.clone(),
        });
        let mut resp = Response::new(BodyExt::boxed(Full::new(body)));
        resp.headers_mut()
            .insert("keep-alive", "timeout=5".parse().unwrap());
        resp.headers_mut()
            .insert("x-origin", "yes".parse().unwrap());
        resp
    }
}

fn text(s: &'static str) -> Response<OriginBody> {
    Response::new(BodyExt::boxed(Full::new(Bytes::from_static(s.as_bytes()))))
}

/// A client with its own pool.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends one request and collects the response, bounded by [`STEP`].
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> (StatusCode, HeaderMap, Bytes) {
    let resp = tokio::time::timeout(STEP, client.request(req))
        .await
        .expect("no response in time")
        .expect("request failed");
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(STEP, body.collect())
        .await
        .expect("body too slow")
        .expect("body failed")
        .to_bytes();
    (parts.status, parts.headers, body)
}

/// GET `path` from `addr`.
pub async fn get(addr: SocketAddr, path: &str) -> (StatusCode, HeaderMap, Bytes) {
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(&client(), req).await
}

/// Writes raw bytes on a new connection and reads until the server closes it.
pub async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut out))
        .await
        .expect("server did not close")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}
