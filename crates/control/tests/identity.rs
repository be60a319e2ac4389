//! Node identity over real sockets: enrollment with one-time bootstrap tokens, a node that
//! speaks only for itself, contract quorum and ageing, node removal, and two admins for the
//! big switches.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use rampart_api::{
    ApplyReport, ClientError, Heartbeat, IssueEnrollment, KillSwitchSet, Labels, Module,
    Registration,
};
use rampart_artifact::testing::doc_weighted;
use rampart_artifact::{ContractSpec, Issue};
use rampart_control::Server;
use rampart_e2e::control_plane::{EDGE, config};
use rampart_e2e::{Fleet, Harness};

fn code(e: &ClientError) -> (u16, String) {
    (
        e.status().unwrap_or(0),
        e.api().map(|a| a.error.clone()).unwrap_or_default(),
    )
}

fn registration(node: &str, contract: ContractSpec) -> Registration {
    Registration {
        node: node.into(),
        labels: Labels {
            pop: "fra".into(),
            region: "eu".into(),
            canary: false,
        },
        contract,
        software_version: "test".into(),
    }
}

fn tiny(consumer: &str) -> ContractSpec {
    ContractSpec {
        consumer: consumer.into(),
        max_features: 1,
        ..ContractSpec::default()
    }
}

async fn actions(h: &Harness) -> Vec<(String, String, String)> {
    h.anon
        .audit(0, 1000)
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| (e.action, e.who, e.subject))
        .collect()
}

async fn health(h: &Harness) -> serde_json::Value {
    reqwest::get(format!("{}/v1/health", h.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_registers_only_with_its_own_enrolled_credential() {
    let h = Harness::start().await;
    let reg = registration("evil-1", tiny("default"));
    // No token, an unknown one: 401. The old shared edge token: 403, and it says to enroll.
    for client in [
        h.anon.clone(),
        h.anon
            .with_token(Some("made-up-0123456789abcdef0123456789abcdef".into())),
    ] {
        let e = client.register(&reg).await.unwrap_err();
        assert_eq!(code(&e), (401, "unauthorized".into()));
    }
    let e = h.edge.register(&reg).await.unwrap_err();
    assert_eq!(code(&e), (403, "forbidden".into()));
    assert!(e.to_string().contains("enroll"), "{e}");
    let e = h
        .edge
        .heartbeat("fra-1", &Heartbeat::empty(0))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (403, "forbidden".into()));
    // An admin is not a node either.
    let e = h.admin.register(&reg).await.unwrap_err();
    assert_eq!(code(&e), (403, "forbidden".into()));
    // Nothing registered, so the tiny contract does not count: publishing works.
    assert!(h.anon.nodes().await.unwrap().nodes.is_empty());
    h.publisher
        .publish(h.sign(&doc_weighted(1, 10, 0.5)))
        .await
        .unwrap();
    assert!(
        health(&h).await["refused"]["unauthenticated"]
            .as_u64()
            .unwrap()
            >= 2
    );

    // fra-1's credential registers fra-1, and nothing else.
    let fra = h.node("fra-1").await;
    fra.register(&registration("fra-1", ContractSpec::default()))
        .await
        .unwrap();
    let e = fra.register(&reg).await.unwrap_err();
    assert_eq!(code(&e), (403, "forbidden".into()));
    assert!(e.to_string().contains("may not speak for node"), "{e}");
    assert!(h.anon.node("evil-1").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_heartbeat_with_another_nodes_credential_is_refused_and_changes_nothing() {
    let h = Harness::start().await;
    for (id, canary) in [("fra-1", true), ("fra-2", false), ("ams-1", false)] {
        h.register(id, "fra", "eu", canary).await;
    }
    let fleet = Fleet::start(
        h.anon.clone(),
        &h.enrolled(&["fra-1", "fra-2", "ams-1"]).await,
    );
    for _ in 0..100 {
        let nodes = h.anon.nodes().await.unwrap().nodes;
        if nodes.iter().all(|n| n.last_beat_ms.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let good = h
        .publisher
        .publish(h.sign(&doc_weighted(1, 10, 0.5)))
        .await
        .unwrap();
    let digest = good.artifact.digest;
    let rollout = h.start_rollout(digest, 60_000).await;
    assert_eq!(rollout.waves[0].nodes, vec!["fra-1"]);

    // fra-2's credential NACKs the good file in fra-1's name, again and again.
    let mut forged = Heartbeat::empty(99);
    forged.verdict = Some(ApplyReport::nack(
        digest,
        Some(1),
        &[Issue::TooManyFeatures {
            count: 400,
            limit: 200,
        }],
        0,
    ));
    let fra2 = h.node("fra-2").await;
    for _ in 0..5 {
        let e = fra2.heartbeat("fra-1", &forged).await.unwrap_err();
        assert_eq!(code(&e), (403, "forbidden".into()));
        assert!(
            e.to_string()
                .contains("credential of node \"fra-2\" may not speak for node \"fra-1\""),
            "{e}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The rollout did not roll back, the file is not marked bad, fra-1 is not degraded.
    let now = h.anon.rollout_status(rollout.id).await.unwrap();
    assert!(!now.done, "{now:?}");
    assert_eq!(now.waves[0].nacked, 0);
    assert!(h.anon.artifact_meta(&digest).await.unwrap().bad.is_none());
    let fra1 = h.anon.node("fra-1").await.unwrap();
    assert!(
        fra1.verdict
            .is_none_or(|v| v.verdict == rampart_api::AckNack::Ack)
    );
    // Counted and audited, with whose credential it was.
    assert_eq!(health(&h).await["refused"]["other_node"], 5);
    let refused: Vec<_> = actions(&h)
        .await
        .into_iter()
        .filter(|(a, _, _)| a == "node.refused")
        .collect();
    assert_eq!(refused.len(), 5);
    assert_eq!(refused[0].1, "fra-2");
    assert_eq!(refused[0].2, "fra-1");
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_token_works_once_for_its_node_before_it_expires() {
    let h = Harness::start().await;
    let issue = |node: &str, ttl_ms: Option<u64>| IssueEnrollment {
        node: node.into(),
        reason: "new box".into(),
        ttl_ms,
    };
    // Only an admin issues, with a reason.
    let e = h
        .publisher
        .enrollment_issue(&issue("fra-1", None))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (403, "forbidden".into()));
    let mut no_reason = issue("fra-1", None);
    no_reason.reason = String::new();
    let e = h.admin.enrollment_issue(&no_reason).await.unwrap_err();
    assert_eq!(code(&e), (400, "bad_request".into()));

    let issued = h
        .admin
        .enrollment_issue(&issue("fra-1", None))
        .await
        .unwrap();
    let boot = h.anon.with_token(Some(issued.token.clone()));
    // For its own node only: used for another, it is refused (403) and burned.
    let other = h
        .admin
        .enrollment_issue(&issue("fra-2", None))
        .await
        .unwrap();
    let e = h
        .anon
        .with_token(Some(other.token.clone()))
        .enroll("fra-1")
        .await
        .unwrap_err();
    assert_eq!(code(&e), (403, "forbidden".into()));
    let e = h
        .anon
        .with_token(Some(other.token))
        .enroll("fra-2")
        .await
        .unwrap_err();
    assert_eq!(code(&e), (401, "unauthorized".into()));

    let enrolled = boot.enroll("fra-1").await.unwrap();
    assert_eq!(enrolled.node, "fra-1");
    assert_ne!(enrolled.credential, issued.token);
    // A second use: refused and audited.
    let e = boot.enroll("fra-1").await.unwrap_err();
    assert_eq!(code(&e), (401, "unauthorized".into()));
    // Expired: refused.
    let short = h
        .admin
        .enrollment_issue(&issue("fra-3", Some(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let e = h
        .anon
        .with_token(Some(short.token))
        .enroll("fra-3")
        .await
        .unwrap_err();
    assert_eq!(code(&e), (401, "unauthorized".into()));
    assert!(e.to_string().contains("expired"), "{e}");

    let audit = actions(&h).await;
    let count = |a: &str| audit.iter().filter(|(x, _, _)| x == a).count();
    assert_eq!(count("enrollment.issue"), 3);
    assert_eq!(count("node.enroll"), 1);
    // Wrong node, the token burned by that, a second use, expired.
    assert_eq!(count("node.enroll_refused"), 4);
    assert_eq!(health(&h).await["refused"]["enrollment"], 4);
    // The secrets never reach the audit log.
    let page = serde_json::to_string(&h.anon.audit(0, 1000).await.unwrap()).unwrap();
    assert!(!page.contains(&issued.token) && !page.contains(&enrolled.credential));

    // The credential works, and still works after a restart (stored hashed).
    let node = h.anon.with_token(Some(enrolled.credential.clone()));
    node.register(&registration("fra-1", ContractSpec::default()))
        .await
        .unwrap();
    let mut h = h;
    h.server.take().unwrap().shutdown().await;
    let server = Server::start(config(h.dir.path())).await.unwrap();
    let node = rampart_api::Client::new(
        &format!("http://{}", server.addr()),
        Some(enrolled.credential),
    )
    .unwrap();
    node.heartbeat("fra-1", &Heartbeat::empty(1)).await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_cannot_block_publishes_quorum_ageing_and_removal() {
    let h = Harness::start_with(|c| {
        c.node_policy.contract_quorum = 2;
        c.node_policy.contract_max_age_ms = 1_500;
    })
    .await;
    // Two honest nodes and an enrolled evil one in the same consumer group: evil's
    // max_features = 1 is shared by 1 of 3 < quorum 2, so it does not count.
    h.register("fra-1", "fra", "eu", false).await;
    h.register("fra-2", "fra", "eu", false).await;
    h.register_with("evil-1", "fra", "eu", false, tiny("default"))
        .await;
    let contracts = h.anon.contracts().await.unwrap().contracts;
    assert!(
        contracts.iter().all(|c| c.max_features != 1),
        "{contracts:?}"
    );
    h.publisher
        .publish(h.sign(&doc_weighted(1, 10, 0.5)))
        .await
        .unwrap();

    // A consumer group of one node: all of it (one node) shares its contract, so it counts.
    h.register_with("solo-1", "ams", "eu", false, tiny("solo"))
        .await;
    let e = h
        .publisher
        .publish(h.sign(&doc_weighted(2, 10, 0.5)))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (422, "invalid".into()));
    assert!(e.to_string().contains("solo"), "{e}");

    // solo-1 goes quiet (the others keep beating): its contract ages out, audited once.
    let mut aged = false;
    for seq in 0..100 {
        for n in ["fra-1", "fra-2", "evil-1"] {
            h.node(n)
                .await
                .heartbeat(n, &Heartbeat::empty(seq))
                .await
                .unwrap();
        }
        if actions(&h)
            .await
            .iter()
            .any(|(a, _, s)| a == "node.contract_aged_out" && s == "solo-1")
        {
            aged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(aged, "solo-1's contract never aged out");
    h.publisher
        .publish(h.sign(&doc_weighted(2, 10, 0.5)))
        .await
        .unwrap();
    let audit = actions(&h).await;
    assert_eq!(
        audit
            .iter()
            .filter(|(a, _, s)| a == "node.contract_aged_out" && s == "solo-1")
            .count(),
        1
    );
    assert!(
        !audit
            .iter()
            .any(|(a, _, s)| a == "node.contract_aged_out" && s == "fra-1")
    );

    // Removal: an admin with a reason; the node, its contract and its credential go.
    let evil = h.node("evil-1").await;
    let e = h.publisher.node_remove("evil-1", "x").await.unwrap_err();
    assert_eq!(code(&e), (403, "forbidden".into()));
    let e = h.admin.node_remove("evil-1", " ").await.unwrap_err();
    assert_eq!(code(&e), (400, "bad_request".into()));
    let e = h.admin.node_remove("ghost", "gone").await.unwrap_err();
    assert_eq!(code(&e), (404, "not_found".into()));
    h.admin
        .node_remove("evil-1", "compromised box")
        .await
        .unwrap();
    assert_eq!(
        code(&h.anon.node("evil-1").await.unwrap_err()),
        (404, "not_found".into())
    );
    let e = evil
        .heartbeat("evil-1", &Heartbeat::empty(0))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (401, "unauthorized".into()));
    let e = evil
        .register(&registration("evil-1", tiny("default")))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (401, "unauthorized".into()));
    let removed = h
        .anon
        .audit(0, 1000)
        .await
        .unwrap()
        .entries
        .into_iter()
        .find(|e| e.action == "node.remove")
        .unwrap();
    assert_eq!(
        (removed.who.as_str(), removed.subject.as_str()),
        ("alice", "evil-1")
    );
    assert_eq!(removed.reason.as_deref(), Some("compromised box"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_kill_switch_needs_two_different_admins_a_node_one_needs_one() {
    let h = Harness::start().await;
    h.register("fra-1", "fra", "eu", false).await;
    let fleet_off = KillSwitchSet {
        module: Module::Bot,
        enabled: false,
        node: None,
        clear: false,
        reason: "scores drift everywhere".into(),
    };
    // Bad input is refused before anything waits.
    let mut bad = fleet_off.clone();
    bad.reason = "a\nforged line".into();
    let e = h.admin.killswitch_set(&bad).await.unwrap_err();
    assert_eq!(code(&e), (400, "bad_request".into()));
    assert!(h.anon.approvals().await.unwrap().approvals.is_empty());

    let pending = h
        .admin
        .killswitch_set(&fleet_off)
        .await
        .unwrap()
        .pending()
        .expect("202 with an approval");
    assert_eq!(pending.requested_by, "alice");
    assert_eq!(pending.action, "killswitch.set");
    // Nothing changed yet.
    assert!(h.anon.killswitches().await.unwrap().switches.is_empty());
    let listed = h.anon.approvals().await.unwrap().approvals;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, pending.id);
    // The same admin cannot approve; a publisher cannot either.
    let e = h.admin.approve(pending.id).await.unwrap_err();
    assert_eq!(code(&e), (403, "forbidden".into()));
    let e = h.publisher.approve(pending.id).await.unwrap_err();
    assert_eq!(code(&e), (403, "forbidden".into()));
    assert!(h.anon.killswitches().await.unwrap().switches.is_empty());
    // Another admin approves: it takes effect, named for both.
    let approved = h.admin2.approve(pending.id).await.unwrap();
    assert_eq!(approved.approved_by, "bob");
    let switches = h.anon.killswitches().await.unwrap().switches;
    assert_eq!(switches.len(), 1);
    assert!(!switches[0].enabled);
    assert_eq!(switches[0].set_by, "alice+bob");
    let beat = h
        .node("fra-1")
        .await
        .heartbeat("fra-1", &Heartbeat::empty(0))
        .await
        .unwrap();
    assert!(!beat.kill_switches.bot.enabled);
    // Done: it cannot be approved again.
    let e = h.admin2.approve(pending.id).await.unwrap_err();
    assert_eq!(code(&e), (404, "not_found".into()));
    assert!(h.anon.approvals().await.unwrap().approvals.is_empty());

    // One node: one admin, at once.
    let node_on = KillSwitchSet {
        node: Some("fra-1".into()),
        enabled: true,
        reason: "fra-1 verified".into(),
        ..fleet_off
    };
    let list = h
        .admin
        .killswitch_set(&node_on)
        .await
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(list.switches.len(), 2);

    let audit = actions(&h).await;
    let find = |a: &str| {
        audit
            .iter()
            .find(|(x, _, _)| x == a)
            .unwrap_or_else(|| panic!("{a} not audited: {audit:?}"))
            .clone()
    };
    assert_eq!(find("approval.request").1, "alice");
    assert_eq!(find("approval.refused").1, "alice");
    assert_eq!(find("approval.grant").1, "bob");
    assert_eq!(find("killswitch.set").1, "alice+bob");
    let _ = EDGE;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_approval_lapses_after_its_time_and_says_so() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use rampart_control::approvals::{APPROVAL_TTL_MS, Request};
    use rampart_control::auth::{Caller, Role};
    use rampart_control::{Clock, Service, SqliteStore};

    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU64::new(1_000_000));
    let clock = {
        let now = Arc::clone(&now);
        Clock::from_fn(move || now.load(Ordering::SeqCst))
    };
    let store = SqliteStore::open(dir.path()).unwrap();
    let svc = Service::open_with_clock(config(dir.path()), store, clock)
        .await
        .unwrap();
    let admin = |name: &str| Caller {
        name: name.into(),
        role: Role::Admin,
    };
    let pending = svc
        .request_approval(
            &admin("alice"),
            Request::KillSwitch(KillSwitchSet {
                module: Module::Bot,
                enabled: false,
                node: None,
                clear: false,
                reason: "drift".into(),
            }),
        )
        .await
        .unwrap();
    assert_eq!(pending.expires_at_ms, 1_000_000 + APPROVAL_TTL_MS);
    // Just before: still waiting. Past it: gone, audited, and approving finds nothing.
    now.store(1_000_000 + APPROVAL_TTL_MS - 1, Ordering::SeqCst);
    assert_eq!(svc.pending_approvals().approvals.len(), 1);
    now.store(1_000_000 + APPROVAL_TTL_MS, Ordering::SeqCst);
    assert!(svc.pending_approvals().approvals.is_empty());
    let e = svc.approve(&admin("bob"), pending.id).await.unwrap_err();
    assert_eq!(e.code, rampart_api::ErrorCode::NotFound);
    let audit = svc.audit(0, 100).await.unwrap().entries;
    assert!(
        audit
            .iter()
            .any(|e| e.action == "approval.expired"
                && e.subject == format!("approval/{}", pending.id))
    );
    assert!(svc.kill_switches().switches.is_empty());
}
