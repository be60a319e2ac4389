//! The dashboard over a real socket: the page and its assets with their content types and
//! security headers, `/` sending browsers to it, the contract checks it reads, and the API
//! left as it was.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rampart_artifact::ContractSpec;
use rampart_artifact::testing::doc_weighted;
use rampart_control::dashboard::check::ContractChecks;
use rampart_e2e::Harness;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_with_their_types_and_a_strict_policy() {
    let h = Harness::start().await;
    let raw = client();
    for (path, content_type, needle) in [
        (
            "/ui/",
            "text/html; charset=utf-8",
            "<title>rampart control plane</title>",
        ),
        (
            "/ui/dashboard.js",
            "text/javascript; charset=utf-8",
            "textContent",
        ),
        ("/ui/dashboard.css", "text/css; charset=utf-8", "@media"),
    ] {
        let resp = raw.get(format!("{}{path}", h.url)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let headers = resp.headers().clone();
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(
            headers["content-security-policy"],
            rampart_control::dashboard::CSP,
            "{path}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["cache-control"], "no-cache");
        assert!(resp.text().await.unwrap().contains(needle), "{path}");
    }
    for path in ["/", "/ui"] {
        let resp = raw.get(format!("{}{path}", h.url)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{path}");
        assert_eq!(resp.headers()["location"], "/ui/");
    }
    // Only GET; other paths under /ui/ are the API's JSON 404.
    let resp = raw.post(format!("{}/ui/", h.url)).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let resp = raw
        .get(format!("{}/ui/nope.js", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    // The API is untouched: no security header there, JSON as before.
    let resp = raw
        .get(format!("{}/v1/health", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-security-policy").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_say_which_consumers_contracts_an_artifact_passes_today() {
    let h = Harness::start().await;
    h.register("edge-1", "fra", "eu", true).await;
    let thirty = h
        .publisher
        .publish(h.sign(&doc_weighted(1, 30, 0.5)))
        .await
        .unwrap();
    let digest = thirty.artifact.digest;
    let url = format!("{}/ui/checks/{digest}", h.url);
    let raw = client();

    let checks: ContractChecks = raw.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(checks.digest, digest);
    assert_eq!(checks.checks.len(), 1);
    assert!(checks.checks[0].passes, "{checks:?}");
    assert!(checks.checks[0].issues.is_empty());

    // A consumer registers a tighter contract afterwards: the stored file now breaks it.
    h.register_with(
        "edge-2",
        "ams",
        "eu",
        false,
        ContractSpec {
            consumer: "edge/small".into(),
            max_features: 20,
            ..ContractSpec::default()
        },
    )
    .await;
    let checks: ContractChecks = raw.get(&url).send().await.unwrap().json().await.unwrap();
    let small = checks
        .checks
        .iter()
        .find(|c| c.consumer == "edge/small")
        .expect("the new contract is checked");
    assert!(!small.passes);
    assert_eq!(small.issues[0].code, "too_many_features");
    assert_eq!(small.more, 0);
    assert!(
        checks
            .checks
            .iter()
            .any(|c| c.consumer != "edge/small" && c.passes)
    );

    // Bad digests are 400, unknown ones 404, both as JSON.
    let resp = raw
        .get(format!("{}/ui/checks/sha256:zz", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let unknown = h.sign_digest(&doc_weighted(9, 1, 0.0));
    let resp = raw
        .get(format!("{}/ui/checks/{unknown}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}
