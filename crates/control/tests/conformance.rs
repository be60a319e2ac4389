//! The API does what `/openapi.json` says (issue 13): ids that do not fit are a 400 naming the
//! parameter (not a 500 and an ERROR line), page sizes out of bounds are refused, the
//! Content-Type is parsed as a media type, a second file with a stored version is a 409, and
//! the document carries the bounds the server enforces.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rampart_artifact::testing::doc_weighted;
use rampart_e2e::Harness;
use rampart_e2e::control_plane::{ADMIN, PUBLISHER};

/// Sends a request and returns its status and JSON body.
async fn send(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_do_not_fit_are_a_400_naming_the_parameter() {
    let h = Harness::start().await;
    let raw = reqwest::Client::new();
    let cases = [
        (
            raw.get(format!("{}/v1/rollouts/9223372036854775808", h.url)),
            "path parameter id",
        ),
        (
            raw.get(format!("{}/v1/rollouts/18446744073709551616", h.url)),
            "path parameter id",
        ),
        (
            raw.get(format!("{}/v1/rollouts/0", h.url)),
            "path parameter id",
        ),
        (
            raw.get(format!("{}/v1/audit?after=18446744073709551615", h.url)),
            "query parameter after",
        ),
        (
            raw.get(format!("{}/v1/audit?after=-1", h.url)),
            "query parameter after",
        ),
        (
            raw.post(format!(
                "{}/v1/rollouts/10000000000000000001/rollback",
                h.url
            ))
            .bearer_auth(ADMIN),
            "path parameter id",
        ),
        (
            raw.post(format!("{}/v1/approvals/9223372036854775808", h.url))
                .bearer_auth(ADMIN),
            "path parameter id",
        ),
    ];
    for (req, param) in cases {
        let (status, body) = send(req).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_request")),
            "{body}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(param), "{message}");
        assert!(message.contains("9223372036854775807"), "{message}");
    }
    // The largest id that fits is simply not there.
    let (status, _) = send(raw.get(format!("{}/v1/rollouts/9223372036854775807", h.url))).await;
    assert_eq!(status, 404);
    let (status, body) =
        send(raw.get(format!("{}/v1/audit?after=9223372036854775807", h.url))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["next_after"].is_null(), "{body}");
    // Nothing of that reached the store: no failure was logged or counted as one.
    let health = h.anon.health().await.unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_size_out_of_bounds_is_refused_not_clamped() {
    let h = Harness::start().await;
    let raw = reqwest::Client::new();
    for route in ["artifacts", "rollouts", "audit"] {
        for bad in ["0", "1001", "-1", "18446744073709551616"] {
            let (status, body) = send(raw.get(format!("{}/v1/{route}?limit={bad}", h.url))).await;
            assert_eq!(status, 400, "{route}?limit={bad}: {body}");
            let message = body["message"].as_str().unwrap();
            assert!(message.contains("limit"), "{message}");
        }
        for good in ["1", "1000"] {
            let (status, body) = send(raw.get(format!("{}/v1/{route}?limit={good}", h.url))).await;
            assert_eq!(status, 200, "{route}?limit={good}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_content_type_is_a_media_type_not_a_prefix() {
    let h = Harness::start().await;
    let raw = reqwest::Client::new();
    let set = serde_json::json!({ "module": "bot", "enabled": true, "reason": "test" });
    let body = serde_json::to_vec(&set).unwrap();
    let put = |ct: Option<&str>| {
        let req = raw
            .put(format!("{}/v1/killswitches", h.url))
            .bearer_auth(ADMIN)
            .body(body.clone());
        match ct {
            Some(ct) => req.header("content-type", ct),
            None => req,
        }
    };
    // Refused: a longer subtype, another type, and no header at all.
    for ct in [
        Some("application/jsonp"),
        Some("text/json"),
        Some("application/json-seq"),
        None,
    ] {
        let (status, body) = send(put(ct)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (415, Some("unsupported_media_type")),
            "{ct:?}: {body}"
        );
    }
    // Accepted: any case, with parameters and spaces. A fleet-wide switch waits for a second
    // admin (202): the body got through.
    for ct in [
        "application/json",
        "APPLICATION/JSON",
        "Application/Json; charset=utf-8",
        "application/json ;charset=UTF-8",
    ] {
        let (status, body) = send(put(Some(ct))).await;
        assert!(status == 200 || status == 202, "{ct}: {status} {body}");
    }

    // A publish is bytes or JSON, declared.
    let bytes = h.sign(&doc_weighted(1, 10, 0.5));
    let publish = |ct: Option<&str>| {
        let req = raw
            .post(format!("{}/v1/artifacts", h.url))
            .bearer_auth(PUBLISHER)
            .body(bytes.clone());
        match ct {
            Some(ct) => req.header("content-type", ct),
            None => req,
        }
    };
    for ct in [None, Some("text/plain"), Some("application/octet-streamx")] {
        let (status, body) = send(publish(ct)).await;
        assert_eq!(status, 415, "{ct:?}: {body}");
    }
    let (status, body) = send(publish(Some("Application/Octet-Stream"))).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(publish(Some("application/json"))).await;
    assert_eq!(status, 200, "{body}");

    // A rollout command's body is optional; when there is one it must be JSON.
    let (status, body) = send(
        raw.post(format!("{}/v1/rollouts/1/pause", h.url))
            .bearer_auth(ADMIN)
            .header("content-type", "text/plain")
            .body(r#"{"reason":"x"}"#),
    )
    .await;
    assert_eq!(status, 415, "{body}");
    let (status, body) = send(
        raw.post(format!("{}/v1/rollouts/1/pause", h.url))
            .bearer_auth(ADMIN),
    )
    .await;
    assert_eq!(status, 404, "no body, no rollout 1: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_file_with_a_stored_version_is_a_409() {
    let h = Harness::start().await;
    let first = h.sign(&doc_weighted(7, 10, 0.5));
    let created = h.publisher.publish(first.clone()).await.unwrap();
    assert!(created.created);
    // The same file again is fine (200, not created).
    let again = h.publisher.publish(first).await.unwrap();
    assert!(!again.created);
    // Another file that claims version 7: edges would refuse it; the control plane does.
    let other = h.sign(&doc_weighted(7, 12, 0.5));
    let e = h.publisher.publish(other).await.unwrap_err();
    let api = e.api().unwrap();
    assert_eq!(
        (e.status(), api.error.as_str()),
        (Some(409), "conflict"),
        "{e}"
    );
    assert!(api.message.contains("version 7"), "{}", api.message);
    assert!(
        api.message.contains(&created.artifact.digest.to_string()),
        "{}",
        api.message
    );
    assert_eq!(h.anon.artifacts(10).await.unwrap().artifacts.len(), 1);
    // A higher version goes in.
    let next = h
        .publisher
        .publish(h.sign(&doc_weighted(8, 12, 0.5)))
        .await
        .unwrap();
    assert!(next.created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_says_what_the_server_enforces() {
    let h = Harness::start().await;
    let doc: serde_json::Value = reqwest::get(format!("{}/openapi.json", h.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = &doc["paths"];
    let rollout_id = &paths["/v1/rollouts/{id}"]["get"]["parameters"][0]["schema"];
    assert_eq!(rollout_id["maximum"], 9_223_372_036_854_775_807_u64);
    let audit = &paths["/v1/audit"]["get"];
    assert_eq!(
        audit["parameters"][0]["schema"]["maximum"],
        9_223_372_036_854_775_807_u64
    );
    assert_eq!(audit["parameters"][1]["schema"]["minimum"], 1);
    let next = &doc["components"]["schemas"]["AuditPage"]["properties"]["next_after"];
    assert_eq!(next["nullable"], true);
    let digest = &paths["/v1/artifacts/{digest}"]["get"]["parameters"][0]["schema"];
    assert!(digest["pattern"].as_str().unwrap().contains("sha256"));
    // Every write documents the answers every write can give.
    for (path, ops) in paths.as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            if op.get("security").is_some() {
                for status in ["401", "403"] {
                    assert!(responses.contains_key(status), "{method} {path}: {status}");
                }
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415"] {
                    assert!(responses.contains_key(status), "{method} {path}: {status}");
                }
            }
        }
    }
}
