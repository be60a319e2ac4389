//! Fleet traffic over NATS (`rampart_api::nats_link`, `rampart_control::nats_api`): a
//! client on `nats://…` reaches the leading control plane's own router: the node's
//! credential is checked as over HTTP (none: 401; another node's: 403), only fleet routes
//! are served (an admin's publish is refused, whatever its token), artifacts come from the
//! object store with the caller's cap checked before reading, and with no leader a request
//! fails at once and may be retried.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use rampart_api::{Client, ClientError, Heartbeat, Labels, Registration};
use rampart_artifact::ContractSpec;
use rampart_artifact::testing::doc_weighted;
use rampart_control::store::StoreSpec;
use rampart_control::store::nats::NatsConfig;
use rampart_e2e::NatsCluster;
use rampart_e2e::control_plane::{ADMIN, Harness, enroll};

fn registration(node: &str) -> Registration {
    Registration {
        node: node.into(),
        labels: Labels {
            pop: "fra".into(),
            region: "eu".into(),
            canary: false,
        },
        contract: ContractSpec::default(),
        software_version: "test".into(),
    }
}

fn status(e: &ClientError) -> Option<u16> {
    e.status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_traffic_over_nats_is_the_http_api_and_nothing_more() {
    let cluster = NatsCluster::start(1);
    let spec = StoreSpec::Nats(NatsConfig::parse(&cluster.url()).unwrap());
    let mut h = Harness::start_with(|c| c.store = spec.clone()).await;
    let over = Client::new(&cluster.url(), None).unwrap();

    // The leader subscribes as it starts: health answers over NATS.
    let deadline = Instant::now() + Duration::from_secs(10);
    let health = loop {
        match over.health().await {
            Ok(h) => break h,
            Err(e) => {
                assert!(Instant::now() < deadline, "no answer over NATS: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(health["role"], "leader", "{health}");

    // A node with its own credential registers and beats over NATS.
    let fra1 = over.with_token(Some(enroll(&h.admin, "fra-1").await));
    fra1.register(&registration("fra-1")).await.unwrap();
    let answer = fra1.heartbeat("fra-1", &Heartbeat::empty(0)).await.unwrap();
    assert!(!answer.etag.is_empty());
    let view = h.admin.node("fra-1").await.unwrap();
    assert!(
        view.last_beat_ms.is_some(),
        "the beat reached the leader: {view:?}"
    );

    // Forged: no credential, then another node's credential.
    let e = over
        .heartbeat("fra-1", &Heartbeat::empty(1))
        .await
        .unwrap_err();
    assert_eq!(status(&e), Some(401), "{e}");
    let fra2 = over.with_token(Some(enroll(&h.admin, "fra-2").await));
    let e = fra2
        .heartbeat("fra-1", &Heartbeat::empty(1))
        .await
        .unwrap_err();
    assert_eq!(status(&e), Some(403), "{e}");

    // Only fleet traffic: an admin's write is refused over NATS, even with its token.
    let bytes = h.sign(&doc_weighted(1, 10, 0.5));
    let e = over
        .with_token(Some(ADMIN.into()))
        .publish(bytes.clone())
        .await
        .unwrap_err();
    assert_eq!(status(&e), Some(403), "{e}");
    assert!(e.to_string().contains("not served over NATS"), "{e}");
    assert!(
        over.artifacts(10).await.is_err(),
        "reads of the admin API too"
    );

    // Artifacts from the object store: the bytes published over HTTPS, capped before reading.
    let digest = h
        .publisher
        .publish(bytes.clone())
        .await
        .unwrap()
        .artifact
        .digest;
    assert_eq!(fra1.fetch(&digest).await.unwrap(), bytes);
    let e = fra1.fetch_at_most(&digest, 10).await.unwrap_err();
    assert!(matches!(e, ClientError::TooLarge { limit: 10 }), "{e}");
    let unknown = rampart_artifact::testing::doc_weighted(9, 10, 0.5).digest();
    let e = fra1.fetch(&unknown).await.unwrap_err();
    assert_eq!(status(&e), Some(404), "{e}");

    // No leader: the request fails at once, and may be retried.
    h.server.take().unwrap().shutdown().await;
    let asked = Instant::now();
    let e = fra1
        .heartbeat("fra-1", &Heartbeat::empty(2))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Nats(_)), "{e}");
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("no responders"), "{e}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_read_chunk_by_chunk_without_a_consumer_and_capped_from_their_metadata() {
    use async_nats::jetstream::object_store;
    use rampart_api::nats_link::{ObjectRead, read_object};
    let cluster = NatsCluster::start(1);
    let js = async_nats::jetstream::new(async_nats::connect(&cluster.urls()[0]).await.unwrap());
    let store = js
        .create_object_store(object_store::Config {
            bucket: "T_ARTIFACTS".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Three chunks (the object store cuts at 128 KiB).
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    store.put("sha256:big", &mut big.as_slice()).await.unwrap();
    let read = |name: &'static str, limit: usize| {
        let js = js.clone();
        async move { read_object(&js, "T_ARTIFACTS", name, limit).await.unwrap() }
    };
    assert_eq!(
        read("sha256:big", 1 << 20).await,
        ObjectRead::Bytes(big.clone())
    );
    assert_eq!(read("sha256:big", 300_000).await, ObjectRead::Bytes(big));
    assert_eq!(
        read("sha256:big", 299_999).await,
        ObjectRead::TooLarge { size: 300_000 }
    );
    assert_eq!(read("sha256:none", 1 << 20).await, ObjectRead::Missing);
    let stream = js.get_stream("OBJ_T_ARTIFACTS").await.unwrap();
    assert_eq!(
        stream.get_info().await.unwrap().state.consumer_count,
        0,
        "read without a consumer"
    );
    store.delete("sha256:big").await.unwrap();
    assert_eq!(read("sha256:big", 1 << 20).await, ObjectRead::Missing);
}
