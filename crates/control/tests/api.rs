//! The control plane over real sockets: publish, contracts, auth, limits, long-poll, kill
//! switches, and whole rollouts driven by simulated edges heartbeating through the API.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use rampart_api::{
    ClientError, ErrorCode, Heartbeat, KillSwitchSet, Module, Registration, StartRollout,
};
use rampart_artifact::ContractSpec;
use rampart_artifact::testing::{doc_weighted, doubled, other_key, signed_by};
use rampart_e2e::control_plane::{ADMIN, EDGE, PUBLISHER};
use rampart_e2e::{Fleet, Harness};

fn code(e: &ClientError) -> (u16, String) {
    (
        e.status().unwrap_or(0),
        e.api().map(|a| a.error.clone()).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_file_is_stored_once_and_served_byte_for_byte() {
    let h = Harness::start().await;
    let bytes = h.sign(&doc_weighted(1, 10, 0.5));
    let first = h.publisher.publish(bytes.clone()).await.unwrap();
    assert!(first.created);
    assert_eq!(first.artifact.version, 1);
    assert_eq!(first.artifact.features, 10);
    assert_eq!(first.artifact.published_by, "gen");
    let again = h.publisher.publish(bytes.clone()).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.artifact.digest, first.artifact.digest);
    let fetched = h.anon.fetch(&first.artifact.digest).await.unwrap();
    assert_eq!(fetched, bytes);
    let e = h
        .anon
        .fetch_at_most(&first.artifact.digest, bytes.len() - 1)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::TooLarge { .. }), "{e}");
    let list = h.anon.artifacts(10).await.unwrap();
    assert_eq!(list.artifacts.len(), 1);
    let meta = h.anon.artifact_meta(&first.artifact.digest).await.unwrap();
    assert_eq!(meta.signer, h.key.public().id().as_str());

    // Raw status codes: 201 then 200.
    let raw = reqwest::Client::new();
    let resp = raw
        .post(format!("{}/v1/artifacts", h.url))
        .bearer_auth(PUBLISHER)
        .header("content-type", "application/octet-stream")
        .body(h.sign(&doc_weighted(2, 10, 0.5)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = raw
        .post(format!("{}/v1/artifacts", h.url))
        .bearer_auth(PUBLISHER)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let diff = h
        .anon
        .diff(&h.sign_digest(&doc_weighted(2, 10, 0.5)), None)
        .await
        .unwrap();
    assert_eq!((diff.old_version, diff.new_version), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_breaks_a_registered_contract_is_refused_with_its_issues() {
    let h = Harness::start().await;
    let small = ContractSpec {
        consumer: "edge/small".into(),
        max_features: 20,
        ..ContractSpec::default()
    };
    h.register_with("edge-1", "fra", "eu", true, small).await;
    let contracts = h.anon.contracts().await.unwrap();
    assert_eq!(contracts.contracts.len(), 1);
    assert_eq!(contracts.contracts[0].max_features, 20);

    // Fine under the default 200, over edge-1's 20.
    let e = h
        .publisher
        .publish(h.sign(&doc_weighted(1, 30, 0.5)))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (422, "invalid".into()));
    assert_eq!(e.api().unwrap().issue_codes(), vec!["too_many_features"]);
    assert!(e.api().unwrap().message.contains("edge/small"), "{e}");

    // The 18 November file: every feature twice, over the limit.
    h.register("edge-2", "fra", "eu", false).await;
    let e = h
        .publisher
        .publish(h.sign(&doubled(2, 120)))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (422, "invalid".into()));
    let codes = e.api().unwrap().issue_codes();
    assert!(codes.contains(&"duplicate_name"), "{codes:?}");
    assert!(codes.contains(&"too_many_features"), "{codes:?}");
    let dup = e.api().unwrap().issues.as_ref().unwrap();
    let too_many = dup.iter().find(|i| i.code == "too_many_features").unwrap();
    assert_eq!(too_many.detail["count"], 240);

    // Unsigned, and signed by an unknown key.
    let e = h
        .publisher
        .publish(doc_weighted(3, 5, 0.5).canonical_bytes())
        .await
        .unwrap_err();
    assert_eq!(e.api().unwrap().issue_codes(), vec!["unsigned"]);
    let forged = signed_by(&doc_weighted(3, 5, 0.5), &other_key());
    let e = h.publisher.publish(forged).await.unwrap_err();
    assert_eq!(e.api().unwrap().issue_codes(), vec!["unknown_key"]);
    assert!(h.anon.artifacts(10).await.unwrap().artifacts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_a_token_with_the_right_role_and_reads_do_not() {
    let h = Harness::start().await;
    let raw = reqwest::Client::new();
    let bytes = h.sign(&doc_weighted(1, 5, 0.5));
    for token in [
        None,
        Some("wrong-secret-0123456789abcdef0123456789"),
        Some(""),
    ] {
        let mut req = raw
            .post(format!("{}/v1/artifacts", h.url))
            .body(bytes.clone());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{token:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
    // The old shared edge token may do nothing: not publish, not speak for nodes.
    let edge = rampart_api::Client::new(&h.url, Some(EDGE.into())).unwrap();
    let e = edge.publish(bytes.clone()).await.unwrap_err();
    assert_eq!(code(&e), (403, "forbidden".into()));
    let e = h
        .publisher
        .killswitch_set(&KillSwitchSet {
            module: Module::Bot,
            enabled: false,
            node: None,
            clear: false,
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(&e), (403, "forbidden".into()));
    // Reads are open.
    h.anon.nodes().await.unwrap();
    h.anon.audit(0, 10).await.unwrap();
    let resp = raw
        .get(format!("{}/openapi.json", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Nothing was written by the refused requests.
    assert!(h.anon.artifacts(10).await.unwrap().artifacts.is_empty());
    assert!(h.anon.audit(0, 10).await.unwrap().entries.is_empty());
    let _ = ADMIN;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_json_error() {
    let h = Harness::start().await;
    let raw = reqwest::Client::new();
    h.node("ghost").await;
    let node = h.credentials.lock().unwrap()["ghost"].clone();
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (raw.get(format!("{}/v1/nope", h.url)), 404, "not_found"),
        (
            raw.delete(format!("{}/v1/nodes", h.url)),
            405,
            "method_not_allowed",
        ),
        (
            raw.get(format!("{}/v1/artifacts/sha256:zz", h.url)),
            400,
            "bad_request",
        ),
        (
            raw.get(format!(
                "{}/v1/artifacts/{}",
                h.url,
                h.sign_digest(&doc_weighted(1, 1, 0.0))
            )),
            404,
            "not_found",
        ),
        (
            raw.get(format!("{}/v1/artifacts?limit=x", h.url)),
            400,
            "bad_request",
        ),
        (
            raw.get(format!("{}/v1/audit?colour=red", h.url)),
            400,
            "bad_request",
        ),
        (
            raw.post(format!("{}/v1/nodes", h.url))
                .bearer_auth(&node)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "bad_request",
        ),
        (
            raw.post(format!("{}/v1/nodes", h.url))
                .bearer_auth(&node)
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            raw.post(format!("{}/v1/nodes/ghost/heartbeat", h.url))
                .bearer_auth(&node)
                .json(&Heartbeat::empty(0)),
            404,
            "unknown_node",
        ),
        (
            raw.post(format!("{}/v1/rollouts/1/explode", h.url))
                .bearer_auth(ADMIN),
            404,
            "not_found",
        ),
    ];
    for (req, status, error) in cases {
        let resp = req.send().await.unwrap();
        let got = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            (got, body["error"].as_str().unwrap()),
            (status, error),
            "{body}"
        );
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Too large by its Content-Length: refused before the body is sent. A raw socket reads
    // the refusal; a client writing the whole body races the server closing the connection.
    let addr = h.url.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/nodes HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {node}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        rampart_api::limits::MAX_JSON_BODY + 1
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");

    // A histogram of the wrong length, and a node id that is not an identifier.
    h.register("edge-1", "fra", "eu", false).await;
    let mut beat = Heartbeat::empty(0);
    beat.scores.buckets.truncate(10);
    let e = h
        .node("edge-1")
        .await
        .heartbeat("edge-1", &beat)
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, "bad_request".into()));
    let e = h
        .node("edge-1")
        .await
        .register(&Registration {
            node: "bad id".into(),
            labels: rampart_api::Labels {
                pop: "p".into(),
                region: "r".into(),
                canary: false,
            },
            contract: ContractSpec::default(),
            software_version: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, "bad_request".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_answers_at_once_when_the_desired_state_changes() {
    let h = Harness::start().await;
    h.register("edge-1", "fra", "eu", false).await;
    // First beat: nothing seen yet, answered at once.
    let first = h
        .node("edge-1")
        .await
        .heartbeat("edge-1", &Heartbeat::empty(0))
        .await
        .unwrap();
    assert!(first.changed);
    assert!(first.desired.is_none());
    assert!(first.kill_switches.bot.enabled);
    // Seen and nothing to wait for: answered at once, unchanged.
    let mut beat = Heartbeat::empty(1);
    beat.seen = Some(first.etag.clone());
    let same = h
        .node("edge-1")
        .await
        .heartbeat("edge-1", &beat)
        .await
        .unwrap();
    assert!(!same.changed);
    assert_eq!(same.etag, first.etag);
    // Now wait the longest a long-poll may; a kill switch set meanwhile ends the wait with
    // the new state (were the wait not woken, the answer would say `changed: false`).
    beat.wait_ms = rampart_api::limits::MAX_LONG_POLL_MS;
    let poll = {
        let edge = h.node("edge-1").await;
        let beat = beat.clone();
        tokio::spawn(async move { edge.heartbeat("edge-1", &beat).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Fleet-wide: alice asks, bob approves.
    let pending = h
        .admin
        .killswitch_set(&KillSwitchSet {
            module: Module::Bot,
            enabled: false,
            node: None,
            clear: false,
            reason: "scores drift on every node".into(),
        })
        .await
        .unwrap()
        .pending()
        .unwrap();
    h.admin2.approve(pending.id).await.unwrap();
    let answer = poll.await.unwrap().unwrap();
    assert!(answer.changed);
    assert_ne!(answer.etag, first.etag);
    assert!(!answer.kill_switches.bot.enabled);
    assert_eq!(
        answer.kill_switches.bot.set_by.as_deref(),
        Some("alice+bob")
    );

    // Both ways: a node override turns it back on for edge-1 only, then clearing it
    // follows the fleet again.
    h.register("edge-2", "fra", "eu", false).await;
    h.admin
        .killswitch_set(&KillSwitchSet {
            module: Module::Bot,
            enabled: true,
            node: Some("edge-1".into()),
            clear: false,
            reason: "edge-1 verified".into(),
        })
        .await
        .unwrap();
    let e1 = h
        .node("edge-1")
        .await
        .heartbeat("edge-1", &Heartbeat::empty(2))
        .await
        .unwrap();
    let e2 = h
        .node("edge-2")
        .await
        .heartbeat("edge-2", &Heartbeat::empty(0))
        .await
        .unwrap();
    assert!(e1.kill_switches.bot.enabled && !e2.kill_switches.bot.enabled);
    let list = h
        .admin
        .killswitch_set(&KillSwitchSet {
            module: Module::Bot,
            enabled: true,
            node: Some("edge-1".into()),
            clear: true,
            reason: "back to the fleet setting".into(),
        })
        .await
        .unwrap();
    assert_eq!(list.done().unwrap().switches.len(), 1);
    let e1 = h
        .node("edge-1")
        .await
        .heartbeat("edge-1", &Heartbeat::empty(3))
        .await
        .unwrap();
    assert!(!e1.kill_switches.bot.enabled);
    let audit = h.anon.audit(0, 100).await.unwrap();
    let actions: Vec<&str> = audit.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.starts_with("killswitch."))
            .count(),
        3,
        "{actions:?}"
    );
}

const NODES: [(&str, &str, &str, bool); 6] = [
    ("fra-1", "fra", "eu", true),
    ("fra-2", "fra", "eu", false),
    ("ams-1", "ams", "eu", false),
    ("ams-2", "ams", "eu", false),
    ("iad-1", "iad", "us", false),
    ("iad-2", "iad", "us", false),
];

async fn fleet(h: &Harness) -> Fleet {
    for (id, pop, region, canary) in NODES {
        h.register(id, pop, region, canary).await;
    }
    let ids: Vec<&str> = NODES.iter().map(|n| n.0).collect();
    let fleet = Fleet::start(h.anon.clone(), &h.enrolled(&ids).await);
    // Every node beats before a rollout plans them (bounded wait).
    for _ in 0..100 {
        let nodes = h.anon.nodes().await.unwrap().nodes;
        if nodes.iter().all(|n| n.last_beat_ms.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fleet
}

async fn actives(h: &Harness) -> Vec<Option<u64>> {
    h.anon
        .nodes()
        .await
        .unwrap()
        .nodes
        .iter()
        .map(|n| n.active.map(|a| a.version))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_passes_every_wave_and_the_next_one_is_gated_against_the_baseline() {
    let h = Harness::start().await;
    let fleet = fleet(&h).await;
    let v1 = h
        .publisher
        .publish(h.sign(&doc_weighted(1, 10, 0.5)))
        .await
        .unwrap();
    let started = h.start_rollout(v1.artifact.digest, 300).await;
    assert_eq!(started.phase, "baking");
    assert_eq!(started.current_wave, Some(0));
    assert_eq!(
        started.waves[0].nodes,
        vec!["fra-1"],
        "the canary goes first"
    );
    assert!(started.waves.len() >= 3, "{:?}", started.waves);

    // One rollout at a time per kind.
    let v2 = h
        .publisher
        .publish(h.sign(&doc_weighted(2, 10, 0.6)))
        .await
        .unwrap();
    let e = h
        .admin
        .rollout_start(&StartRollout {
            digest: v2.artifact.digest,
            reason: None,
            break_glass: false,
            bake_ms: None,
            watch_ms: None,
        })
        .await
        .unwrap_err();
    assert_eq!(code(&e), (409, "conflict".into()));

    let done = h.wait_done(started.id, 60).await;
    assert_eq!(done.phase, "succeeded", "{done:?}");
    assert!(
        done.waves.iter().all(|w| w.phase == "passed"),
        "{:?}",
        done.waves
    );
    assert!(done.waves.iter().all(|w| w.acked == w.nodes.len()));
    assert!(actives(&h).await.iter().all(|v| *v == Some(1)));

    // v2: now there is a baseline on v1 for every wave but the last.
    let second = h.start_rollout(v2.artifact.digest, 300).await;
    assert_eq!(second.previous.map(|p| p.version), Some(1));
    let done = h.wait_done(second.id, 60).await;
    assert_eq!(done.phase, "succeeded", "{done:?}");
    assert!(actives(&h).await.iter().all(|v| *v == Some(2)));
    let audit = h.anon.audit(0, 1000).await.unwrap();
    let passed: Vec<_> = audit
        .entries
        .iter()
        .filter(|e| {
            e.action == "rollout.wave_passed" && e.subject == format!("rollout/{}", second.id)
        })
        .collect();
    assert_eq!(passed.len(), done.waves.len());
    // The canary was judged on the score distribution against nodes still on v1.
    let canary = &passed[0].detail["report"];
    assert_eq!(canary["score_shift"]["verdict"], "pass", "{canary}");
    assert!(
        canary["score_shift"]["numbers"]["ks"]["d"]
            .as_f64()
            .unwrap()
            < 0.1
    );
    assert!(
        audit
            .entries
            .iter()
            .any(|e| e.action == "rollout.succeeded")
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_nack_rolls_back_marks_the_digest_bad_and_audits_the_numbers() {
    let h = Harness::start().await;
    let fleet = fleet(&h).await;
    let v1 = h
        .publisher
        .publish(h.sign(&doc_weighted(1, 10, 0.5)))
        .await
        .unwrap();
    let first = h.start_rollout(v1.artifact.digest, 200).await;
    assert_eq!(h.wait_done(first.id, 60).await.phase, "succeeded");

    // Valid for the control plane, refused by the edges (as a file published under a
    // looser contract than theirs would be).
    let bad_bytes = h.sign(&doc_weighted(2, 10, 0.7));
    let bad = h.publisher.publish(bad_bytes.clone()).await.unwrap();
    fleet.refuse.lock().unwrap().insert(bad.artifact.digest);
    let rollout = h.start_rollout(bad.artifact.digest, 60_000).await;
    let done = h.wait_done(rollout.id, 30).await;
    assert_eq!(done.phase, "rolled_back", "{done:?}");
    assert!(
        done.outcome.as_deref().unwrap().contains("wave 0"),
        "{:?}",
        done.outcome
    );
    assert_eq!(done.waves[0].nacked, 1);
    assert!(done.waves[1..].iter().all(|w| w.phase == "pending"));
    // Nobody ever served it; everybody is on v1.
    assert!(actives(&h).await.iter().all(|v| *v == Some(1)));
    let nodes = h.anon.nodes().await.unwrap().nodes;
    assert!(
        nodes
            .iter()
            .all(|n| n.desired.as_ref().unwrap().version == 1)
    );

    // Marked bad: refused at publish and at rollout.
    let meta = h.anon.artifact_meta(&bad.artifact.digest).await.unwrap();
    let mark = meta.bad.expect("marked bad");
    assert_eq!(mark.rollout, Some(rollout.id));
    assert!(mark.reason.contains("nack"), "{}", mark.reason);
    let e = h.publisher.publish(bad_bytes).await.unwrap_err();
    assert_eq!(code(&e), (409, ErrorCode::MarkedBad.as_str().into()));
    let e = h
        .admin
        .rollout_start(&StartRollout {
            digest: bad.artifact.digest,
            reason: None,
            break_glass: true,
            bake_ms: None,
            watch_ms: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        (400, "bad_request".into()),
        "break glass needs a reason"
    );

    // The audit log says who, what and why, with the numbers.
    let audit = h.anon.audit(0, 1000).await.unwrap().entries;
    let failed = audit
        .iter()
        .find(|e| e.action == "rollout.gate_failed")
        .expect("gate_failed audited");
    assert_eq!(failed.who, "control");
    assert_eq!(failed.detail["failure"]["gate"], "nack");
    assert_eq!(failed.detail["failure"]["numbers"]["nacked"], 1);
    assert_eq!(
        failed.detail["failure"]["numbers"]["codes"][0],
        "too_many_features"
    );
    let marked = audit
        .iter()
        .find(|e| e.action == "artifact.mark_bad")
        .expect("mark_bad audited");
    assert_eq!(marked.subject, bad.artifact.digest.to_string());
    assert!(audit.iter().any(|e| e.action == "rollout.rolled_back"));
    let seqs: Vec<u64> = audit.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gaps: {seqs:?}"
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_pushes_to_every_node_at_once_with_a_reason_and_operators_can_roll_back() {
    let h = Harness::start().await;
    let fleet = fleet(&h).await;
    let v1 = h
        .publisher
        .publish(h.sign(&doc_weighted(1, 10, 0.5)))
        .await
        .unwrap();
    let r = h
        .break_glass(
            v1.artifact.digest,
            "restore a known-good file everywhere",
            200,
        )
        .await;
    assert!(r.break_glass);
    assert_eq!(r.waves.len(), 1);
    assert_eq!(r.waves[0].nodes.len(), NODES.len());
    assert_eq!(h.wait_done(r.id, 30).await.phase, "succeeded");
    let audit = h.anon.audit(0, 1000).await.unwrap().entries;
    let bg = audit
        .iter()
        .find(|e| e.action == "rollout.break_glass")
        .unwrap();
    assert_eq!(bg.who, "alice+bob");
    assert_eq!(
        bg.reason.as_deref(),
        Some("restore a known-good file everywhere")
    );

    // A staged v2, paused, then rolled back by the operator: every node back on v1.
    let v2 = h
        .publisher
        .publish(h.sign(&doc_weighted(2, 10, 0.6)))
        .await
        .unwrap();
    let r2 = h.start_rollout(v2.artifact.digest, 60_000).await;
    let paused = h
        .admin
        .rollout_pause(r2.id, Some("look first".into()))
        .await
        .unwrap();
    assert_eq!(paused.phase, "paused");
    // The outcome is words, not a JSON dump of the cause.
    let outcome = paused.outcome.as_deref().unwrap_or_default();
    assert!(outcome.starts_with("paused by "), "{outcome}");
    assert!(outcome.ends_with(": look first"), "{outcome}");
    let e = h.admin.rollout_pause(r2.id, None).await.unwrap_err();
    assert_eq!(code(&e), (409, "conflict".into()));
    let back = h
        .admin
        .rollout_rollback(r2.id, Some("not today".into()), false)
        .await
        .unwrap();
    assert_eq!(back.phase, "rolling_back");
    let done = h.wait_done(r2.id, 30).await;
    assert_eq!(done.phase, "rolled_back");
    assert!(actives(&h).await.iter().all(|v| *v == Some(1)));
    assert!(
        h.anon
            .artifact_meta(&v2.artifact.digest)
            .await
            .unwrap()
            .bad
            .is_none()
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_rollout_rolls_out_each_new_version_by_itself_and_never_a_bad_one_again() {
    let h = Harness::start_with(|c| {
        c.auto_rollout = true;
        c.plan_policy.canary_bake_ms = 200;
        for w in &mut c.plan_policy.waves {
            w.bake_ms = 200;
        }
    })
    .await;
    let fleet = fleet(&h).await;
    let v1 = h
        .publisher
        .publish(h.sign(&doc_weighted(1, 10, 0.5)))
        .await
        .unwrap();
    let mut id = None;
    for _ in 0..100 {
        if let Some(r) = h.anon.rollouts(1).await.unwrap().rollouts.first() {
            id = Some(r.id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = h.wait_done(id.expect("an automatic rollout"), 60).await;
    assert_eq!(done.phase, "succeeded");
    assert_eq!(done.target.digest, v1.artifact.digest);
    assert_eq!(done.started_by, "control");

    // A version the edges refuse: rolled back, marked bad, and not started again.
    let bad = h
        .publisher
        .publish(h.sign(&doc_weighted(2, 10, 0.7)))
        .await
        .unwrap();
    fleet.refuse.lock().unwrap().insert(bad.artifact.digest);
    let mut second = None;
    for _ in 0..100 {
        let list = h.anon.rollouts(10).await.unwrap().rollouts;
        if let Some(r) = list.iter().find(|r| r.target.digest == bad.artifact.digest) {
            second = Some(r.id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = h
        .wait_done(second.expect("a second automatic rollout"), 30)
        .await;
    assert_eq!(done.phase, "rolled_back");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.anon.rollouts(10).await.unwrap().rollouts.len(), 2);
    let creates = h
        .anon
        .audit(0, 1000)
        .await
        .unwrap()
        .entries
        .into_iter()
        .filter(|e| e.action == "rollout.create")
        .inspect(|e| assert_eq!(e.who, "control"))
        .count();
    assert_eq!(creates, 2);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_an_order_signed_by_the_director_key_and_its_seq_survives_a_restart() {
    use rampart_api::{Admitted, Order, order::admit};
    use rampart_artifact::{Keyring, SecretKey};
    let director = std::sync::Arc::new(SecretKey::from_seed([42; 32]));
    let ring = Keyring::new([director.public()]);
    let with_director = {
        let d = director.clone();
        move |c: &mut rampart_control::Config| c.director_key = Some(d)
    };
    let mut h = Harness::start_with(with_director.clone()).await;
    h.register("edge-1", "fra", "eu", false).await;
    // The node's own client: its credential, from its enrollment.
    let node = h.node("edge-1").await;
    let beat = || Heartbeat::empty(0);
    let first = node.heartbeat("edge-1", &beat()).await.unwrap();
    let (o1, d1) = Order::open(first.order.as_ref().unwrap(), &ring).unwrap();
    assert_eq!((o1.node.as_str(), o1.epoch), ("edge-1", 1));
    assert_eq!(o1.kill_switches, first.kill_switches);
    // The generator's key does not open it.
    assert!(
        Order::open(
            first.order.as_ref().unwrap(),
            &Keyring::new([h.key.public()])
        )
        .is_err()
    );
    // The same state: the same order, byte for byte.
    let again = node.heartbeat("edge-1", &beat()).await.unwrap();
    let (_, d_again) = Order::open(again.order.as_ref().unwrap(), &ring).unwrap();
    assert_eq!(d_again, d1);
    // A node's own switch (one admin suffices) changes what it must do: a new seq.
    h.admin
        .killswitch_set(&KillSwitchSet {
            module: Module::Bot,
            enabled: false,
            node: Some("edge-1".into()),
            clear: false,
            reason: "test".into(),
        })
        .await
        .unwrap();
    let second = node.heartbeat("edge-1", &beat()).await.unwrap();
    let (o2, d2) = Order::open(second.order.as_ref().unwrap(), &ring).unwrap();
    assert!(o2.seq > o1.seq, "{} then {}", o1.seq, o2.seq);
    assert!(!o2.kill_switches.bot.enabled);
    let applied = rampart_api::Applied {
        epoch: o2.epoch,
        seq: o2.seq,
        digest: d2,
    };
    assert_eq!(
        admit("edge-1", &o1, &d1, Some(&applied))
            .unwrap_err()
            .code(),
        "older"
    );

    // Restarted on the same data dir: the epoch and sequence are where they were.
    h.server.take().unwrap().shutdown().await;
    let dir = h.dir.path().to_owned();
    let mut c = rampart_e2e::control_plane::config(&dir);
    with_director(&mut c);
    let server = rampart_control::Server::start(c).await.unwrap();
    let credential = h.credentials.lock().unwrap().get("edge-1").cloned();
    let edge = rampart_api::Client::new(&format!("http://{}", server.addr()), credential).unwrap();
    let third = edge.heartbeat("edge-1", &beat()).await.unwrap();
    let (o3, d3) = Order::open(third.order.as_ref().unwrap(), &ring).unwrap();
    assert_eq!((o3.epoch, o3.seq), (o2.epoch, o2.seq));
    assert_eq!(
        admit("edge-1", &o3, &d3, Some(&applied)).unwrap(),
        Admitted::Same
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_rollout_blesses_its_version_and_deaths_after_it_roll_it_back_with_no_operator() {
    use rampart_api::{Active, Death, DeathCause, Order};
    use rampart_artifact::{Keyring, SecretKey};
    let director = std::sync::Arc::new(SecretKey::from_seed([7; 32]));
    let ring = Keyring::new([director.public()]);
    let d = director.clone();
    let h = Harness::start_with(move |c| c.director_key = Some(d)).await;
    let fleet = fleet(&h).await;
    let node = h.node("iad-2").await;
    let v1 = h
        .publisher
        .publish(h.sign(&doc_weighted(1, 10, 0.5)))
        .await
        .unwrap()
        .artifact;
    let r1 = h.start_rollout(v1.digest, 300).await;
    let done = h.wait_done(r1.id, 60).await;
    assert_eq!(done.phase, "succeeded", "{done:?}");
    let before = node.heartbeat("iad-2", &Heartbeat::empty(0)).await.unwrap();
    let active1 = Active {
        version: 1,
        digest: v1.digest,
    };
    assert_eq!(before.blessed, vec![active1]);
    let (o1, _) = Order::open(before.order.as_ref().unwrap(), &ring).unwrap();
    assert_eq!(o1.blessed, vec![active1]);
    assert!(h.anon.artifact_meta(&v1.digest).await.unwrap().blessed);

    let v2 = h
        .publisher
        .publish(h.sign(&doc_weighted(2, 10, 0.5)))
        .await
        .unwrap()
        .artifact;
    assert!(!v2.blessed);
    let r2 = h.start_rollout(v2.digest, 300).await;
    let done = h.wait_done(r2.id, 60).await;
    assert_eq!(done.phase, "succeeded", "{done:?}");
    let audit = h.anon.audit(0, 1000).await.unwrap();
    for action in [
        "rollout.watching",
        "rollout.watch_passed",
        "artifact.blessed",
    ] {
        assert!(
            audit.entries.iter().any(|e| e.action == action),
            "{action} missing"
        );
    }
    let active2 = Active {
        version: 2,
        digest: v2.digest,
    };
    let after = node.heartbeat("iad-2", &Heartbeat::empty(0)).await.unwrap();
    assert_eq!(after.blessed, vec![active2, active1], "newest first");
    let (o2, _) = Order::open(after.order.as_ref().unwrap(), &ring).unwrap();
    assert_eq!(o2.blessed, vec![active2, active1]);
    assert!(o2.seq > o1.seq);

    // After success, the node keeps dying on v2: 16 deaths (one beat's worth), sent and
    // resent (as an edge does until a beat is acknowledged); the resent ones count once.
    // (Aftercare judges whenever it ticks: more batches would make the count it saw depend
    // on timing.)
    let death = |at: u64| Death {
        detected_at_ms: at,
        active: Some(active2),
        active_for_ms: Some(300_000),
        uptime_ms: Some(300_000),
        cause: DeathCause::Signal { signal: 6 },
    };
    let mut beat = Heartbeat::empty(0);
    beat.active = Some(active2);
    beat.deaths = (0..16).map(|i| death(1_000 + i)).collect();
    node.heartbeat("iad-2", &beat).await.unwrap();
    node.heartbeat("iad-2", &beat).await.unwrap();
    // Aftercare rolls it back by itself (bounded wait).
    let mut rolled = None;
    for _ in 0..100 {
        let v = h.anon.rollout_status(r2.id).await.unwrap();
        if v.phase == "rolled_back" {
            rolled = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rolled = rolled.expect("aftercare rolled the finished rollout back");
    assert!(rolled.outcome.unwrap().contains("aftercare"));
    let audit = h.anon.audit(0, 1000).await.unwrap();
    let failed = audit
        .entries
        .iter()
        .find(|e| e.action == "rollout.aftercare_failed")
        .expect("audited");
    assert_eq!(failed.who, "control");
    assert_eq!(
        failed.detail["numbers"]["test"]["new_deaths"], 16,
        "{}",
        failed.detail
    );
    assert!(
        audit
            .entries
            .iter()
            .any(|e| e.action == "artifact.unblessed")
    );
    let meta = h.anon.artifact_meta(&v2.digest).await.unwrap();
    assert!(meta.bad.is_some() && !meta.blessed, "{meta:?}");
    // The node's view names its newest death with the cause its supervisor recorded.
    let view = h.anon.node("iad-2").await.unwrap();
    let newest = view.last_death.expect("a death reported");
    assert_eq!(newest.cause, DeathCause::Signal { signal: 6 });
    assert_eq!(newest.detected_at_ms, 1_000 + 15);
    assert_eq!(newest.active, Some(active2));
    let listed = h.anon.nodes().await.unwrap();
    let other = listed.nodes.iter().find(|n| n.node != "iad-2");
    assert!(other.is_some_and(|n| n.last_death.is_none()), "{other:?}");
    let last = node.heartbeat("iad-2", &Heartbeat::empty(9)).await.unwrap();
    assert_eq!(last.blessed, vec![active1]);
    assert_eq!(last.desired.map(|d| d.version), Some(1));
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observing_death_gate_records_what_aftercare_would_have_done_and_rolls_nothing_back() {
    use rampart_api::{Active, Death, DeathCause};
    let h = Harness::start_with(|c| {
        c.rollout_policy.gates.modes.deaths = rampart_rollout::GateMode::Observe;
    })
    .await;
    let fleet = fleet(&h).await;
    let node = h.node("iad-2").await;
    for (version, weight) in [(1, 0.5), (2, 0.6)] {
        let v = h
            .publisher
            .publish(h.sign(&doc_weighted(version, 10, weight)))
            .await
            .unwrap()
            .artifact;
        let r = h.start_rollout(v.digest, 300).await;
        assert_eq!(h.wait_done(r.id, 60).await.phase, "succeeded");
    }
    let v2 = h.anon.nodes().await.unwrap().nodes[0].active.unwrap();
    let active2 = Active {
        version: 2,
        digest: v2.digest,
    };
    let mut beat = Heartbeat::empty(0);
    beat.active = Some(active2);
    beat.deaths = (0..16)
        .map(|i| Death {
            detected_at_ms: 1_000 + i,
            active: Some(active2),
            active_for_ms: Some(300_000),
            uptime_ms: Some(300_000),
            cause: DeathCause::Signal { signal: 11 },
        })
        .collect();
    node.heartbeat("iad-2", &beat).await.unwrap();
    // Aftercare runs every tick: wait for its record (bounded), then a while longer to see
    // that it neither rolls back nor records twice.
    let mut seen = Vec::new();
    for _ in 0..100 {
        let audit = h.anon.audit(0, 1000).await.unwrap();
        seen = audit
            .entries
            .into_iter()
            .filter(|e| e.action.starts_with("rollout.aftercare"))
            .collect();
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let audit = h.anon.audit(0, 1000).await.unwrap();
    let all: Vec<_> = audit
        .entries
        .iter()
        .filter(|e| e.action.starts_with("rollout.aftercare"))
        .collect();
    assert_eq!(all.len(), 1, "{all:#?} ({seen:?})");
    assert_eq!(all[0].action, "rollout.aftercare_observed");
    assert_eq!(all[0].who, "control");
    assert_eq!(
        all[0].detail["numbers"]["new_deaths"], 16,
        "{}",
        all[0].detail
    );
    let meta = h.anon.artifact_meta(&v2.digest).await.unwrap();
    assert!(meta.bad.is_none() && meta.blessed, "{meta:?}");
    let rollouts = h.anon.rollouts(1).await.unwrap().rollouts;
    assert_eq!(rollouts[0].phase, "succeeded", "{:?}", rollouts[0]);
    fleet.stop().await;
}
