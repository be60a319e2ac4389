//! A whole edge over real sockets: the real store and bot module, signed files dropped in
//! the watch dir, the admin API. Includes issue 3's "bad input the edge must survive with
//! zero failed requests".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/origin.rs"]
mod origin;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use origin::{Origin, client, get, raw, send};
use rampart_artifact::testing::{key, other_key, signed};
use rampart_artifact::{Document, Envelope, Feature, Keyring, PAYLOAD_TYPE};
use rampart_edge::module::{FailPolicy, TEST_PANIC_HEADER};
use rampart_edge::proxy::Upstream;
use rampart_edge::server::Drained;
use rampart_edge::{Config, Node};
use rampart_score::{edge_contract, example_document};
use serde_json::Value;

/// The example model with another bias: -40 makes every request score 1, +40 makes it 99.
fn with_bias(version: u64, bias: f64) -> Document {
    let mut d = example_document(version);
    d.model.bias = bias;
    for f in &mut d.features {
        f.weight = 0.0;
    }
    d
}

struct Edge {
    node: Node,
    watch: PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn config(origin: SocketAddr, data: &Path, watch: &Path) -> Config {
    let upstream: Upstream = format!("http://{origin}").parse().unwrap();
    let mut c = Config::new(
        upstream,
        data.to_owned(),
        Keyring::new([key().public()]),
        edge_contract(),
    );
    c.watch_dir = Some(watch.to_owned());
    c.watch_poll = Duration::from_millis(20);
    c
}

async fn start(origin: SocketAddr, tweak: impl FnOnce(&mut Config)) -> Edge {
    let data = tempfile::tempdir().unwrap();
    let watch = tempfile::tempdir().unwrap();
    let mut c = config(origin, data.path(), watch.path());
    tweak(&mut c);
    let node = Node::start(c).await.unwrap();
    Edge {
        node,
        watch: watch.path().to_owned(),
        _dirs: (data, watch),
    }
}

impl Edge {
    fn proxy(&self) -> SocketAddr {
        self.node.listen_addr()
    }

    /// The admin token the edge made in its data dir at the first start.
    fn token(&self) -> String {
        let path = self
            ._dirs
            .0
            .path()
            .join(rampart_edge::admin::ADMIN_TOKEN_FILE);
        std::fs::read_to_string(path).unwrap().trim().to_owned()
    }

    /// Drops a file into the watch dir the way a publisher should: write aside, rename in.
    fn drop_file(&self, name: &str, bytes: &[u8]) {
        let tmp = self.watch.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.watch.join(name)).unwrap();
    }

    async fn status(&self) -> Value {
        let (status, _, body) = get(self.node.admin_addr(), "/status").await;
        assert_eq!(status, StatusCode::OK);
        serde_json::from_slice(&body).unwrap()
    }

    async fn metrics(&self) -> String {
        let (status, _, body) = get(self.node.admin_addr(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        String::from_utf8(body.to_vec()).unwrap()
    }

    async fn post(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let req = Request::post(format!("http://{}{path}", self.node.admin_addr()))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.token()))
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let (status, _, body) = send(&client(), req).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Waits (bounded) until the watch dir's outcome for `file` shows on `/status`.
    async fn outcome_of(&self, file: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.status().await;
            if let Some(e) = status["watch"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .find(|e| e["file"] == file)
            {
                return e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{file} never applied: {status:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn active_version(&self) -> Option<u64> {
        self.status().await["active"]["version"].as_u64()
    }
}

/// The score header the origin saw on its last request.
fn last_score(origin: &Origin) -> String {
    let seen = origin.requests();
    let last = seen.last().expect("origin saw no request");
    last.headers["x-rampart-bot-score"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_unscored_without_a_model_and_scored_with_the_example_model() {
    let origin = Origin::start().await;
    let edge = start(origin.addr, |_| {}).await;
    assert_eq!(get(edge.proxy(), "/a").await.0, StatusCode::OK);
    assert_eq!(last_score(&origin), "unscored");

    edge.drop_file("v1.json", &signed(&example_document(1)));
    let event = edge.outcome_of("v1.json").await;
    assert_eq!(event["outcome"], "applied", "{event:#}");
    assert_eq!(edge.active_version().await, Some(1));

    assert_eq!(get(edge.proxy(), "/b").await.0, StatusCode::OK);
    let score: u8 = last_score(&origin).parse().expect("a numeric score");
    assert!((1..=99).contains(&score));
    let m = edge.metrics().await;
    assert_eq!(metric(&m, "rampart_edge_active_version"), 1);
    assert_eq!(metric(&m, "rampart_edge_bot_score_count"), 1);
    assert_eq!(
        metric(&m, "rampart_edge_unscored_total{reason=\"no_plan\"}"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_block_rule_blocks_real_low_scores_and_never_unscored_requests() {
    let origin = Origin::start().await;
    let edge = start(origin.addr, |c| c.rules.block_below = Some(30)).await;
    // No model: unscored, and the rule does not block it.
    assert_eq!(get(edge.proxy(), "/").await.0, StatusCode::OK);

    edge.drop_file("low.json", &signed(&with_bias(1, -40.0)));
    assert_eq!(edge.outcome_of("low.json").await["outcome"], "applied");
    let (status, _, body) = get(edge.proxy(), "/").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "blocked by bot rule\n");

    // Kill switch off: unscored again, so not blocked.
    let (s, v) = edge
        .post("/killswitch/bot", r#"{"enabled": false, "reason": "test"}"#)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["module_enabled"], false);
    assert_eq!(get(edge.proxy(), "/").await.0, StatusCode::OK);
    assert_eq!(last_score(&origin), "unscored");

    edge.post("/killswitch/bot", r#"{"enabled": true}"#).await;
    edge.drop_file("high.json", &signed(&with_bias(2, 40.0)));
    assert_eq!(edge.outcome_of("high.json").await["outcome"], "applied");
    assert_eq!(get(edge.proxy(), "/").await.0, StatusCode::OK);
    assert_eq!(last_score(&origin), "99");
    let m = edge.metrics().await;
    assert_eq!(metric(&m, "rampart_edge_blocked_total"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_works_both_ways_on_every_surface() {
    let origin = Origin::start().await;
    let edge = start(origin.addr, |_| {}).await;
    edge.drop_file("v1.json", &signed(&with_bias(1, 40.0)));
    edge.outcome_of("v1.json").await;
    get(edge.proxy(), "/").await;
    assert_eq!(last_score(&origin), "99");

    for (enabled, expected_header, gauge) in [(false, "unscored", 0), (true, "99", 1)] {
        let (s, v) = edge
            .post(
                "/killswitch/bot",
                &format!(r#"{{"enabled": {enabled}, "reason": "drill"}}"#),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["module_enabled"], enabled);
        assert_eq!(v["scoring"], enabled);
        get(edge.proxy(), "/").await;
        assert_eq!(last_score(&origin), expected_header, "enabled={enabled}");
        let status = edge.status().await;
        assert_eq!(status["module_enabled"], enabled);
        assert_eq!(status["kill_switch_reason"], "drill");
        let m = edge.metrics().await;
        assert_eq!(metric(&m, "rampart_edge_module_enabled"), gauge);
    }
    let m = edge.metrics().await;
    assert_eq!(
        metric(&m, "rampart_edge_unscored_total{reason=\"disabled\"}"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_panic_follows_the_fail_policy_with_the_real_module() {
    let origin = Origin::start().await;
    for (policy, expected) in [
        (FailPolicy::Open, StatusCode::OK),
        (FailPolicy::Closed, StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let edge = start(origin.addr, |c| {
            c.test_hooks = true;
            c.rules.fail_policy = policy;
        })
        .await;
        edge.drop_file("v1.json", &signed(&example_document(1)));
        edge.outcome_of("v1.json").await;
        let req = Request::get(format!("http://{}/p", edge.proxy()))
            .header(TEST_PANIC_HEADER, "1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (status, _, body) = send(&client(), req).await;
        assert_eq!(status, expected, "{policy:?}");
        if policy == FailPolicy::Closed {
            assert_eq!(body, "bot module unavailable\n");
        } else {
            assert_eq!(last_score(&origin), "unscored");
        }
        // The next request is scored: the failure was that request's only.
        assert_eq!(get(edge.proxy(), "/q").await.0, StatusCode::OK);
        assert!(last_score(&origin).parse::<u8>().is_ok());
        let m = edge.metrics().await;
        assert_eq!(metric(&m, "rampart_edge_module_panics_caught_total"), 1);
        assert_eq!(
            metric(&m, "rampart_edge_module_errors_total{kind=\"panic\"}"),
            1
        );
    }
}

/// A bounded client loop: sequential keep-alive requests until told to stop (or a hard
/// cap), counting anything but a 200 with a score header.
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

/// Most requests one traffic loop sends, whatever happens.
const TRAFFIC_MAX_REQUESTS: u64 = 200_000;
/// Longest a traffic loop runs, whatever happens.
const TRAFFIC_MAX_TIME: Duration = Duration::from_secs(60);

fn traffic(addr: SocketAddr) -> Traffic {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
    let task = tokio::spawn(async move {
        let c = client();
        let started = Instant::now();
        let mut problems = Vec::new();
        for i in 0..TRAFFIC_MAX_REQUESTS {
            if s.load(Ordering::Relaxed) || started.elapsed() > TRAFFIC_MAX_TIME {
                break;
            }
            let req = Request::get(format!("http://{addr}/t/{i}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            match tokio::time::timeout(Duration::from_secs(5), c.request(req)).await {
                Ok(Ok(resp)) if resp.status() == StatusCode::OK => {
                    o.fetch_add(1, Ordering::Relaxed);
                }
                other => {
                    f.fetch_add(1, Ordering::Relaxed);
                    if problems.len() < 10 {
                        problems.push(format!("{other:?}"));
                    }
                }
            }
        }
        problems
    });
    Traffic {
        stop,
        ok,
        failed,
        task,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_refused_with_their_codes_and_not_one_request_fails() {
    let origin = Origin::start().await;
    let edge = start(origin.addr, |_| {}).await;
    edge.drop_file("v2.json", &signed(&example_document(2)));
    assert_eq!(edge.outcome_of("v2.json").await["outcome"], "applied");
    let good_digest = edge.status().await["active"]["digest"].clone();

    let traffic = traffic(edge.proxy());

    // Every feature twice, then more copies past 200: the 18 November file.
    let mut nov18 = example_document(3);
    let base = nov18.features.clone();
    while nov18.features.len() <= 200 {
        nov18.features.extend(base.iter().cloned());
    }
    // 201 distinct-looking features.
    let mut f201 = example_document(4);
    let base = f201.features.clone();
    f201.features = (0..201)
        .map(|i| {
            let mut f = base[i % base.len()].clone();
            if i >= base.len() {
                f.name = format!("{}_{i}", f.name);
            }
            f
        })
        .collect();
    let whole = signed(&example_document(5));
    let truncated = whole[..whole.len() / 2].to_vec();
    let mut tampered = Envelope::sign(&example_document(6), &key());
    tampered.set_payload(example_document(7).canonical_bytes());
    let other_key = Envelope::sign(&example_document(8), &other_key()).to_json();
    let older = signed(&example_document(1));
    let mut unknown = example_document(9);
    unknown.features.push(Feature {
        name: "no_such_feature".into(),
        ty: "Float64".into(),
        weight: 0.5,
    });
    let mut huge = example_document(10);
    huge.features[0].weight = 1e12;
    // A payload signed correctly that is not a document at all.
    let signed_junk = Envelope::sign_payload(
        PAYLOAD_TYPE,
        b"{\"not\":\"a feature file\"}".to_vec(),
        &key(),
    )
    .to_json();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("nov18.json", signed(&nov18), "duplicate_name"),
        ("201.json", signed(&f201), "too_many_features"),
        ("truncated.json", truncated, "invalid_json"),
        (
            "not-json.json",
            b"this is not JSON\n".to_vec(),
            "invalid_json",
        ),
        ("empty.json", Vec::new(), "empty"),
        ("bad-signature.json", tampered.to_json(), "bad_signature"),
        ("other-key.json", other_key, "unknown_key"),
        ("older.json", older, "version_not_above"),
        ("unknown-name.json", signed(&unknown), "unknown_name"),
        ("huge-weight.json", signed(&huge), "weight_out_of_range"),
        ("signed-junk.json", signed_junk, "missing_field"),
    ];
    for (name, bytes, issue) in &cases {
        edge.drop_file(name, bytes);
        let event = edge.outcome_of(name).await;
        assert_eq!(event["outcome"], "rejected", "{name}: {event:#}");
        assert_eq!(event["code"], "invalid", "{name}: {event:#}");
        assert_eq!(event["serving"], 2, "{name}: {event:#}");
        let issues: Vec<&str> = event["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap())
            .collect();
        assert!(
            issues.contains(issue),
            "{name}: expected {issue} in {issues:?}"
        );
        if *name == "nov18.json" {
            assert!(issues.contains(&"too_many_features"), "{issues:?}");
        }
        // The store's own last rejection names the same issue.
        let status = edge.status().await;
        let last = &status["last_rejection"];
        assert_eq!(last["code"], "invalid", "{name}");
        assert!(
            last["issues"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["code"] == *issue),
            "{name}: {last:#}"
        );
        assert_eq!(status["active"]["digest"], good_digest, "{name}");
    }

    // 100 MB, refused by its length before a byte is read (a sparse file: no disk used).
    let big_tmp = edge.watch.join(".big.tmp");
    std::fs::File::create(&big_tmp)
        .unwrap()
        .set_len(100 * 1024 * 1024)
        .unwrap();
    std::fs::rename(&big_tmp, edge.watch.join("big.json")).unwrap();
    let event = edge.outcome_of("big.json").await;
    assert_eq!(event["outcome"], "rejected", "{event:#}");
    assert_eq!(event["issues"][0], "too_large", "{event:#}");

    // Requests kept flowing the whole time, and every one succeeded.
    let before_stop = traffic.ok.load(Ordering::Relaxed);
    get(edge.proxy(), "/final").await;
    traffic.stop.store(true, Ordering::Relaxed);
    let problems = traffic.task.await.unwrap();
    assert_eq!(traffic.failed.load(Ordering::Relaxed), 0, "{problems:?}");
    assert!(before_stop > 0, "no traffic flowed during the drops");
    assert!(last_score(&origin).parse::<u8>().is_ok(), "still scoring");
    // Succeeded means scored: every request of the traffic reached the origin with a real
    // score from the good file, not merely a 200.
    let seen = origin.requests();
    let traffic_seen: Vec<_> = seen
        .iter()
        .filter(|r| r.uri.path().starts_with("/t/"))
        .collect();
    assert!(!traffic_seen.is_empty());
    let unscored = traffic_seen
        .iter()
        .filter(|r| {
            r.headers
                .get("x-rampart-bot-score")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u8>().ok())
                .is_none()
        })
        .count();
    assert_eq!(unscored, 0, "of {} traffic requests", traffic_seen.len());

    let status = edge.status().await;
    assert_eq!(status["active"]["version"], 2);
    assert_eq!(status["active"]["digest"], good_digest);
    let m = edge.metrics().await;
    let rejected = u64::try_from(cases.len() + 1).unwrap();
    assert_eq!(
        metric(&m, "rampart_edge_applies_total{outcome=\"rejected\"}"),
        rejected
    );
    assert_eq!(
        metric(&m, "rampart_edge_rejections_total{code=\"invalid\"}"),
        rejected
    );
    assert_eq!(
        metric(&m, "rampart_edge_applies_total{outcome=\"applied\"}"),
        1
    );
    for code in [
        "duplicate_name",
        "too_many_features",
        "invalid_json",
        "empty",
        "too_large",
        "bad_signature",
        "unknown_key",
        "version_not_above",
        "unknown_name",
        "weight_out_of_range",
    ] {
        let series = format!("rampart_edge_rejected_issues_total{{code=\"{code}\"}}");
        assert!(metric(&m, &series) >= 1, "{code} not counted");
    }
    assert_eq!(metric(&m, "rampart_edge_requests_total{class=\"5xx\"}"), 0);
    assert_eq!(
        metric(&m, "rampart_edge_module_errors_total{kind=\"panic\"}"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_forces_last_known_good_and_pins_a_version() {
    let origin = Origin::start().await;
    let edge = start(origin.addr, |c| {
        c.soak.secs = 0;
        c.soak.requests = 1;
    })
    .await;
    edge.drop_file("v1.json", &signed(&example_document(1)));
    edge.outcome_of("v1.json").await;
    get(edge.proxy(), "/").await;
    // The ticker promotes v1 to last-known-good once it has served its (tiny) soak.
    let deadline = Instant::now() + Duration::from_secs(10);
    while edge.status().await["lkg"]["current"]["version"] != 1 {
        assert!(Instant::now() < deadline, "v1 never became last-known-good");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    edge.drop_file("v2.json", &signed(&example_document(2)));
    edge.outcome_of("v2.json").await;
    assert_eq!(edge.active_version().await, Some(2));

    let (s, v) = edge.post("/break-glass/lkg", "").await;
    assert_eq!(s, StatusCode::OK, "{v:#}");
    assert_eq!(edge.active_version().await, Some(1));
    assert_eq!(edge.status().await["break_glass"], true);

    let (s, v) = edge.post("/break-glass/pin", r#"{"version": 2}"#).await;
    assert_eq!(s, StatusCode::OK, "{v:#}");
    let status = edge.status().await;
    assert_eq!(status["active"]["version"], 2);
    assert_eq!(status["pinned"], 2);
    // Pinned: a newer file is refused until unpinned.
    edge.drop_file("v3.json", &signed(&example_document(3)));
    let event = edge.outcome_of("v3.json").await;
    assert_eq!(event["code"], "pinned", "{event:#}");
    let (s, missing) = edge.post("/break-glass/pin", r#"{"version": 77}"#).await;
    assert_eq!(s, StatusCode::CONFLICT, "{missing:#}");

    let (s, v) = edge.post("/break-glass/unpin", "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["unpinned"], 2);
    edge.drop_file("v4.json", &signed(&example_document(4)));
    assert_eq!(edge.outcome_of("v4.json").await["outcome"], "applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_what_it_does_not_understand() {
    let origin = Origin::start().await;
    let edge = start(origin.addr, |_| {}).await;
    let admin = edge.node.admin_addr();
    assert_eq!(get(admin, "/healthz").await.2, "ok\n");
    assert_eq!(get(admin, "/nope").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(admin, "/killswitch/bot").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        edge.post("/metrics", "").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    for bad in [
        "",
        "{",
        r#"{"enabled": "no"}"#,
        r#"{"enabled": false, "extra": 1}"#,
    ] {
        assert_eq!(
            edge.post("/killswitch/bot", bad).await.0,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    let huge = format!(
        r#"{{"enabled": false, "reason": "{}"}}"#,
        "x".repeat(10_000)
    );
    assert_eq!(
        edge.post("/killswitch/bot", &huge).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Nothing above changed the switch.
    assert_eq!(edge.status().await["module_enabled"], true);
    let status = edge.status().await;
    assert_eq!(status["edge"]["fail_policy"], "open");
    assert_eq!(status["edge"]["test_hooks"], false);
}

/// A write to the admin API as a browser sends it for `page`: a simple cross-site POST, or a
/// fetch with the headers given. Returns the status line's code.
async fn write_as(admin: SocketAddr, host: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut request =
        format!("POST /killswitch/bot HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let answer = raw(admin, &request).await;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_page_cannot_drive_the_admin_api() {
    let origin = Origin::start().await;
    let edge = start(origin.addr, |_| {}).await;
    let admin = edge.node.admin_addr();
    let own = admin.to_string();
    let off = r#"{"enabled": false, "reason": "by attacker"}"#;
    // The attack as it was run: a form post from a page, after DNS rebinding.
    let csrf = [
        ("Origin", "http://attacker.example"),
        ("Content-Type", "text/plain"),
    ];
    assert_eq!(write_as(admin, "attacker.example", &csrf, off).await, 403);
    assert_eq!(
        write_as(
            admin,
            "attacker.example:80",
            &[("Content-Type", "application/json")],
            off
        )
        .await,
        403
    );
    // Our own Host, but a page on another origin or site, or a type a page may send.
    assert_eq!(write_as(admin, &own, &csrf, off).await, 403);
    let json = ("Content-Type", "application/json");
    assert_eq!(
        write_as(admin, &own, &[json, ("Sec-Fetch-Site", "cross-site")], off).await,
        403
    );
    assert_eq!(
        write_as(admin, &own, &[("Content-Type", "text/plain")], off).await,
        415
    );
    assert_eq!(
        write_as(
            admin,
            &own,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            off
        )
        .await,
        415
    );
    assert_eq!(write_as(admin, &own, &[], off).await, 415);
    // Reasons that would forge a log line or paint a terminal.
    let token = format!("Bearer {}", edge.token());
    for reason in ["ok\\nFAKE log line", "\\u001b[31mred", "tab\\there"] {
        let body = format!(r#"{{"enabled": false, "reason": "{reason}"}}"#);
        let auth = ("Authorization", token.as_str());
        assert_eq!(
            write_as(admin, &own, &[json, auth], &body).await,
            400,
            "{reason}"
        );
    }
    // Without the token, or with another: 401, whatever else is right.
    assert_eq!(write_as(admin, &own, &[json], off).await, 401);
    let wrong = format!("Bearer {}", "0".repeat(64));
    assert_eq!(
        write_as(admin, &own, &[json, ("Authorization", &wrong)], off).await,
        401
    );
    // Nothing above changed the switch.
    let status = edge.status().await;
    assert_eq!(status["module_enabled"], true, "{status:#}");
    let auth = ("Authorization", token.as_str());
    let path = status["edge"]["admin_token_file"].as_str().unwrap();
    assert!(path.ends_with("admin.token"), "{path}");
    assert!(
        !status.to_string().contains(&edge.token()),
        "no secret on /status"
    );
    // What an operator sends passes: curl (no Origin), or the page of this API itself.
    assert_eq!(
        write_as(
            admin,
            &format!("localhost:{}", admin.port()),
            &[json, auth],
            off
        )
        .await,
        200
    );
    let on = r#"{"enabled": true, "reason": "drill over"}"#;
    let same_origin = format!("http://{own}");
    assert_eq!(
        write_as(
            admin,
            &own,
            &[
                json,
                auth,
                ("Origin", &same_origin),
                ("Sec-Fetch-Site", "same-origin")
            ],
            on
        )
        .await,
        200
    );
    assert_eq!(edge.status().await["module_enabled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_and_records_a_clean_exit() {
    let origin = Origin::start().await;
    let data = tempfile::tempdir().unwrap();
    let watch = tempfile::tempdir().unwrap();
    let node = Node::start(config(origin.addr, data.path(), watch.path()))
        .await
        .unwrap();
    let addr = node.listen_addr();
    let slow = tokio::spawn(async move { get(addr, "/slow/500").await });
    let deadline = Instant::now() + Duration::from_secs(10);
    // In flight, not merely connected: a connection whose request head has not arrived
    // yet is idle, and a graceful shutdown closes idle connections.
    while node.metrics().requests_in_flight() == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.shutdown();
    assert_eq!(node.wait().await, Drained::Clean);
    assert_eq!(slow.await.unwrap().0, StatusCode::OK);
    let journal = std::fs::read_to_string(data.path().join("sentinel/journal")).unwrap();
    assert!(
        journal.lines().last().unwrap().contains("clean_exit"),
        "{journal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_watch_dir_is_created_and_watched() {
    let origin = Origin::start().await;
    let data = tempfile::tempdir().unwrap();
    let parent = tempfile::tempdir().unwrap();
    let watch = parent.path().join("not/yet/there");
    let node = Node::start(config(origin.addr, data.path(), &watch))
        .await
        .unwrap();
    assert!(watch.is_dir());
    std::fs::write(watch.join("v1.json"), signed(&example_document(1))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.store().snapshot().version() != Some(1) {
        assert!(Instant::now() < deadline, "the file was never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_clears_safe_mode_through_the_admin_api() {
    let origin = Origin::start().await;
    // A boot journal of six deaths right after activating v1: the next boot is safe mode.
    let now = rampart_host::clock::now_ms();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let edge = start(origin.addr, |c| {
        let dir = c.data_dir.join("sentinel");
        std::fs::create_dir_all(&dir).unwrap();
        let mut journal = String::new();
        for death in 0..6u64 {
            let at = now - 30_000 + death * 1_000;
            journal.push_str(&format!("{{\"event\":\"boot\",\"at_ms\":{at}}}\n"));
            journal.push_str(&format!(
                "{{\"event\":\"activated\",\"at_ms\":{},\"version\":1,\"digest\":\"{digest}\"}}\n",
                at + 100
            ));
        }
        std::fs::write(dir.join("journal"), journal).unwrap();
    })
    .await;
    let status = edge.status().await;
    assert_eq!(status["mode"]["mode"], "safe_mode", "{status}");

    // A good file is taken, but the module stays off (fail open) until an operator acts.
    edge.drop_file("v2.json", &signed(&with_bias(2, 40.0)));
    assert_eq!(edge.outcome_of("v2.json").await["outcome"], "applied");
    assert_eq!(get(edge.proxy(), "/").await.0, StatusCode::OK);
    assert_eq!(last_score(&origin), "unscored");

    assert_eq!(
        get(edge.node.admin_addr(), "/safe-mode/clear").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        edge.post("/safe-mode/clear", r#"{"why": 1}"#).await.0,
        StatusCode::BAD_REQUEST
    );
    let (s, v) = edge
        .post(
            "/safe-mode/clear",
            r#"{"reason": "looked at the crash loop"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["was_safe_mode"], true);
    assert_eq!(v["mode"]["mode"], "normal");
    assert_eq!(v["scoring"], true);
    assert_eq!(edge.status().await["mode"]["mode"], "normal");
    assert_eq!(get(edge.proxy(), "/").await.0, StatusCode::OK);
    assert_eq!(last_score(&origin), "99");

    // Clearing again is harmless and says it was not in safe mode.
    let (s, v) = edge.post("/safe-mode/clear", "{}").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["was_safe_mode"], false);
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Issue 13: a FIFO at `lkg/current.rfeat` hung boot, and a FIFO (or a symlink to one) in
/// the watch dir blocked a thread in `open` so later files were never applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_files_never_hang_the_edge() {
    let origin = Origin::start().await;
    let data = tempfile::tempdir().unwrap();
    let watch = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("lkg")).unwrap();
    mkfifo(&data.path().join("lkg/current.rfeat"));
    let node = tokio::time::timeout(
        Duration::from_secs(20),
        Node::start(config(origin.addr, data.path(), watch.path())),
    )
    .await
    .expect("boot blocked on a FIFO at lkg/current.rfeat")
    .unwrap();
    let edge = Edge {
        node,
        watch: watch.path().to_owned(),
        _dirs: (data, watch),
    };
    let status = edge.status().await;
    let problems = status["lkg"]["boot_problems"].to_string();
    assert!(
        problems.contains("not a regular file (it is a FIFO)"),
        "{status:#}"
    );
    assert_eq!(get(edge.proxy(), "/").await.0, StatusCode::OK);

    // A FIFO and a symlink to it in the watch dir, then a valid file: it is applied.
    mkfifo(&edge.watch.join("a.json"));
    std::os::unix::fs::symlink(edge.watch.join("a.json"), edge.watch.join("b.json")).unwrap();
    edge.drop_file("v1.json", &signed(&example_document(1)));
    assert_eq!(edge.outcome_of("v1.json").await["outcome"], "applied");
    assert_eq!(edge.active_version().await, Some(1));
    // The link flipped to a regular file is a file like any other.
    std::fs::remove_file(edge.watch.join("b.json")).unwrap();
    let real = edge.watch.join(".v2.real");
    std::fs::write(&real, signed(&example_document(2))).unwrap();
    std::os::unix::fs::symlink(&real, edge.watch.join("b.json")).unwrap();
    assert_eq!(edge.outcome_of("b.json").await["outcome"], "applied");
    assert_eq!(edge.active_version().await, Some(2));
}
