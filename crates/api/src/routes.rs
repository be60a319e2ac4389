//! Every path of the API. The server registers the templates (axum's `{param}` syntax), the
//! client builds paths with the functions, and the OpenAPI test walks [`ALL`].

use rampart_artifact::Digest;

/// The OpenAPI 3 description of everything below (not versioned: it describes `/v1`).
pub const OPENAPI: &str = "/openapi.json";
/// Liveness and the store's state.
pub const HEALTH: &str = "/v1/health";
/// `POST` publish a signed feature file, `GET` list artifacts.
pub const ARTIFACTS: &str = "/v1/artifacts";
/// `GET` the exact signed bytes of one artifact.
pub const ARTIFACT: &str = "/v1/artifacts/{digest}";
/// `GET` what the control plane knows about one artifact.
pub const ARTIFACT_META: &str = "/v1/artifacts/{digest}/meta";
/// `GET` the difference from another artifact (`?against=`, default the previous version).
pub const ARTIFACT_DIFF: &str = "/v1/artifacts/{digest}/diff";
/// `GET` the consumer contracts that publishing checks.
pub const CONTRACTS: &str = "/v1/contracts";
/// `POST` register a node, `GET` the fleet.
pub const NODES: &str = "/v1/nodes";
/// `GET` one node, `DELETE` remove it (admin; its contract and credential go too).
pub const NODE: &str = "/v1/nodes/{node}";
/// `POST` trade a one-time bootstrap token for the node's own credential.
pub const NODE_ENROLL: &str = "/v1/nodes/{node}/enroll";
/// `POST` issue a one-time bootstrap token for a node (admin).
pub const ENROLLMENTS: &str = "/v1/enrollments";
/// `GET` the requests waiting for a second admin.
pub const APPROVALS: &str = "/v1/approvals";
/// `POST` approve one (an admin other than the one who asked).
pub const APPROVAL: &str = "/v1/approvals/{id}";
/// `POST` a heartbeat (long-poll).
pub const HEARTBEAT: &str = "/v1/nodes/{node}/heartbeat";
/// `POST` start a rollout, `GET` list rollouts.
pub const ROLLOUTS: &str = "/v1/rollouts";
/// `GET` one rollout.
pub const ROLLOUT: &str = "/v1/rollouts/{id}";
/// `POST` an operator command on a rollout (`promote`, `pause`, `resume`, `abort`,
/// `rollback`).
pub const ROLLOUT_COMMAND: &str = "/v1/rollouts/{id}/{command}";
/// `GET` the kill switches, `PUT` set one.
pub const KILLSWITCHES: &str = "/v1/killswitches";
/// `GET` the audit log, oldest first, paged by sequence number.
pub const AUDIT: &str = "/v1/audit";

/// Every route: method and template. The server serves exactly these; the OpenAPI
/// description must describe exactly these.
pub const ALL: &[(&str, &str)] = &[
    ("get", OPENAPI),
    ("get", HEALTH),
    ("post", ARTIFACTS),
    ("get", ARTIFACTS),
    ("get", ARTIFACT),
    ("get", ARTIFACT_META),
    ("get", ARTIFACT_DIFF),
    ("get", CONTRACTS),
    ("post", NODES),
    ("get", NODES),
    ("get", NODE),
    ("delete", NODE),
    ("post", NODE_ENROLL),
    ("post", ENROLLMENTS),
    ("get", APPROVALS),
    ("post", APPROVAL),
    ("post", HEARTBEAT),
    ("post", ROLLOUTS),
    ("get", ROLLOUTS),
    ("get", ROLLOUT),
    ("post", ROLLOUT_COMMAND),
    ("get", KILLSWITCHES),
    ("put", KILLSWITCHES),
    ("get", AUDIT),
];

/// `/v1/artifacts/{digest}`.
pub fn artifact(digest: &Digest) -> String {
    format!("{ARTIFACTS}/{digest}")
}

/// `/v1/artifacts/{digest}/meta`.
pub fn artifact_meta(digest: &Digest) -> String {
    format!("{ARTIFACTS}/{digest}/meta")
}

/// `/v1/artifacts/{digest}/diff`.
pub fn artifact_diff(digest: &Digest) -> String {
    format!("{ARTIFACTS}/{digest}/diff")
}

/// `/v1/nodes/{node}`.
pub fn node(node: &str) -> String {
    format!("{NODES}/{node}")
}

/// `/v1/nodes/{node}/enroll`.
pub fn node_enroll(node: &str) -> String {
    format!("{NODES}/{node}/enroll")
}

/// `/v1/approvals/{id}`.
pub fn approval(id: u64) -> String {
    format!("{APPROVALS}/{id}")
}

/// `/v1/nodes/{node}/heartbeat`.
pub fn heartbeat(node: &str) -> String {
    format!("{NODES}/{node}/heartbeat")
}

/// `/v1/rollouts/{id}`.
pub fn rollout(id: u64) -> String {
    format!("{ROLLOUTS}/{id}")
}

/// `/v1/rollouts/{id}/{command}`.
pub fn rollout_command(id: u64, command: crate::RolloutCommand) -> String {
    format!("{ROLLOUTS}/{id}/{}", command.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_fill_the_templates() {
        let d = Digest::of(b"x");
        assert_eq!(artifact(&d), ARTIFACT.replace("{digest}", &d.to_string()));
        assert_eq!(
            artifact_diff(&d),
            ARTIFACT_DIFF.replace("{digest}", &d.to_string())
        );
        assert_eq!(heartbeat("e1"), HEARTBEAT.replace("{node}", "e1"));
        assert_eq!(node_enroll("e1"), NODE_ENROLL.replace("{node}", "e1"));
        assert_eq!(approval(3), APPROVAL.replace("{id}", "3"));
        assert_eq!(
            rollout_command(7, crate::RolloutCommand::Abort),
            "/v1/rollouts/7/abort"
        );
    }

    #[test]
    fn every_route_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for r in ALL {
            assert!(seen.insert(r), "{r:?} twice");
            assert!(r.1 == OPENAPI || r.1.starts_with("/v1/"), "{r:?}");
        }
    }
}
