//! The OpenAPI 3.0 description served at `/openapi.json`, written by hand next to the
//! routes it describes; a test checks that it lists exactly [`rampart_api::routes::ALL`].

use rampart_api::routes;
use serde_json::{Value, json};

/// The document.
pub fn document() -> Value {
    let digest = param(
        "digest",
        "path",
        "An artifact digest, `sha256:<64 hex digits>`.",
    );
    let node = param(
        "node",
        "path",
        "A node id (`[A-Za-z0-9._-]`, at most 64 bytes).",
    );
    let id = json!({ "name": "id", "in": "path", "required": true,
        "description": "A rollout id.", "schema": { "type": "integer", "minimum": 1 } });
    let limit = json!({ "name": "limit", "in": "query", "required": false,
        "description": "Page size (default 100, at most 1000).",
        "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } });
    let write = json!([{ "bearer": [] }]);
    let mut paths = serde_json::Map::new();
    let mut add = |path: &str, method: &str, op: Value| {
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        if let Some(obj) = entry.as_object_mut() {
            obj.insert(method.to_owned(), op);
        }
    };
    add(
        routes::OPENAPI,
        "get",
        json!({
            "summary": "This description.", "operationId": "openapi",
            "responses": { "200": { "description": "OpenAPI 3.0 JSON." } }
        }),
    );
    add(
        routes::HEALTH,
        "get",
        json!({
            "summary": "Liveness, node and rollout counts.", "operationId": "health",
            "responses": { "200": { "description": "Up." } }
        }),
    );
    add(
        routes::ARTIFACTS,
        "post",
        json!({
            "summary": "Publish a signed feature file.",
            "description": "The body is the DSSE envelope written by `rampart artifact sign`. It is verified against the trusted keys and validated against every registered consumer contract with the same code the edges run; a digest marked bad by a failed rollout is refused. Roles: admin, publisher.",
            "operationId": "publish", "security": write,
            "requestBody": { "required": true, "content": {
                "application/octet-stream": { "schema": { "type": "string", "format": "binary" } },
                "application/json": { "schema": { "type": "object" } } } },
            "responses": {
                "201": ok_ref("Stored.", "PublishResult"),
                "200": ok_ref("Already stored (same digest).", "PublishResult"),
                "401": err("No or unknown token."), "403": err("Token may not publish."),
                "409": err("`marked_bad`: the digest failed a rollout."),
                "413": err("Body over the cap."),
                "422": err("`invalid`: does not verify or breaks a contract; `issues` lists every issue.")
            }
        }),
    );
    add(
        routes::ARTIFACTS,
        "get",
        json!({
            "summary": "Stored artifacts, newest first.", "operationId": "listArtifacts",
            "parameters": [limit],
            "responses": { "200": ok_ref("A page.", "ArtifactList"), "400": err("Bad query.") }
        }),
    );
    add(
        routes::ARTIFACT,
        "get",
        json!({
            "summary": "The exact signed bytes of an artifact (edges verify them).",
            "operationId": "fetchArtifact", "parameters": [digest],
            "responses": {
                "200": { "description": "The bytes.", "content": { "application/octet-stream": {
                    "schema": { "type": "string", "format": "binary" } } } },
                "400": err("Not a digest."), "404": err("Not stored.")
            }
        }),
    );
    add(
        routes::ARTIFACT_META,
        "get",
        json!({
            "summary": "What is known of an artifact (version, signer, bad mark).",
            "operationId": "artifactMeta", "parameters": [digest],
            "responses": { "200": ok_ref("Metadata.", "ArtifactMeta"), "404": err("Not stored.") }
        }),
    );
    add(
        routes::ARTIFACT_DIFF,
        "get",
        json!({
            "summary": "Features added, removed and changed against another artifact.",
            "operationId": "diffArtifact",
            "parameters": [digest, { "name": "against", "in": "query", "required": false,
                "description": "The other digest (default: the stored version just below).",
                "schema": { "type": "string" } }],
            "responses": { "200": ok_ref("The diff.", "DiffView"), "404": err("Not stored.") }
        }),
    );
    add(
        routes::CONTRACTS,
        "get",
        json!({
            "summary": "The consumer contracts every publish is checked against.",
            "operationId": "contracts",
            "responses": { "200": ok_ref("Distinct contracts.", "ContractList") }
        }),
    );
    add(
        routes::NODES,
        "post",
        json!({
            "summary": "Register (or re-register) a node with its labels and contract. Roles: admin, edge.",
            "operationId": "register", "security": write,
            "requestBody": body_ref("Registration"),
            "responses": {
                "201": ok_ref("New node.", "RegisterAnswer"), "200": ok_ref("Known node.", "RegisterAnswer"),
                "400": err("Bad field or contract."), "401": err("No or unknown token."),
                "403": err("Token may not register.")
            }
        }),
    );
    add(
        routes::NODES,
        "get",
        json!({
            "summary": "The fleet: labels, versions, health, last heartbeat, last rejection.",
            "operationId": "nodes",
            "responses": { "200": ok_ref("Every node.", "NodeList") }
        }),
    );
    add(
        routes::NODE,
        "get",
        json!({
            "summary": "One node.", "operationId": "node", "parameters": [node.clone()],
            "responses": { "200": ok_ref("The node.", "NodeView"), "404": err("Unknown node.") }
        }),
    );
    add(
        routes::HEARTBEAT,
        "post",
        json!({
            "summary": "Heartbeat and long-poll.",
            "description": "The edge reports its state and echoes the etag of the last answer it acted on (`seen`). The answer comes at once when the node's desired state (version, kill switches) has another etag, else when it changes or after `wait_ms` (at most 30000). Roles: admin, edge.",
            "operationId": "heartbeat", "security": write, "parameters": [node],
            "requestBody": body_ref("Heartbeat"),
            "responses": {
                "200": ok_ref("The desired state.", "HeartbeatAnswer"),
                "400": err("Bad field (e.g. a histogram that is not 99 buckets)."),
                "401": err("No or unknown token."),
                "404": err("`unknown_node`: register first.")
            }
        }),
    );
    add(
        routes::ROLLOUTS,
        "post",
        json!({
            "summary": "Start a rollout of a published artifact.",
            "description": "Waves by fault domain (canary, then about 10%, 50%, 100%), each baked and gated. `break_glass` pushes to every live node at once and needs a reason; it is audited, and the artifact is still verified and validated. One rollout at a time per artifact kind. Role: admin.",
            "operationId": "startRollout", "security": write,
            "requestBody": body_ref("StartRollout"),
            "responses": {
                "201": ok_ref("Started (the canary wave is already told).", "RolloutView"),
                "400": err("Bad field (break glass without a reason)."),
                "401": err("No or unknown token."), "403": err("Token may not drive rollouts."),
                "404": err("Artifact not stored."),
                "409": err("A rollout of the kind is running, the digest is marked bad, the fleet already serves it, or no live node."),
                "422": err("The artifact breaks a contract registered since it was published.")
            }
        }),
    );
    add(
        routes::ROLLOUTS,
        "get",
        json!({
            "summary": "Rollouts, newest first.", "operationId": "listRollouts",
            "parameters": [limit],
            "responses": { "200": ok_ref("A page.", "RolloutList") }
        }),
    );
    add(
        routes::ROLLOUT,
        "get",
        json!({
            "summary": "A rollout: phase, waves, gates with their numbers, outcome.",
            "operationId": "rollout", "parameters": [id.clone()],
            "responses": { "200": ok_ref("Status.", "RolloutView"), "404": err("Unknown rollout.") }
        }),
    );
    add(
        routes::ROLLOUT_COMMAND,
        "post",
        json!({
            "summary": "An operator command: promote, pause, resume, abort, rollback. Role: admin.",
            "operationId": "rolloutCommand", "security": write,
            "parameters": [id, { "name": "command", "in": "path", "required": true,
                "schema": { "type": "string",
                    "enum": ["promote", "pause", "resume", "abort", "rollback"] } }],
            "requestBody": { "required": false, "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/RolloutAction" } } } },
            "responses": {
                "200": ok_ref("Status after the command.", "RolloutView"),
                "401": err("No or unknown token."), "403": err("Token may not drive rollouts."),
                "404": err("Unknown rollout or command."),
                "409": err("The command does not apply in this phase.")
            }
        }),
    );
    add(
        routes::KILLSWITCHES,
        "get",
        json!({
            "summary": "Every kill-switch setting (fleet and per node).", "operationId": "killSwitches",
            "responses": { "200": ok_ref("Settings.", "KillSwitchList") }
        }),
    );
    add(
        routes::KILLSWITCHES,
        "put",
        json!({
            "summary": "Turn a module off or on, fleet-wide or on one node; delivered in heartbeat answers at once. Role: admin.",
            "operationId": "setKillSwitch", "security": write,
            "requestBody": body_ref("KillSwitchSet"),
            "responses": {
                "200": ok_ref("Every setting after the change.", "KillSwitchList"),
                "400": err("No reason, or `clear` without a node."),
                "401": err("No or unknown token."), "403": err("Token may not set kill switches."),
                "404": err("Unknown node.")
            }
        }),
    );
    add(
        routes::AUDIT,
        "get",
        json!({
            "summary": "The append-only audit log, oldest first.", "operationId": "audit",
            "parameters": [{ "name": "after", "in": "query", "required": false,
                "description": "Entries with a greater sequence number.",
                "schema": { "type": "integer", "minimum": 0 } }, limit],
            "responses": { "200": ok_ref("A page.", "AuditPage") }
        }),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "rampart control plane",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Feature files published, validated against every consumer contract, rolled out in gated waves with automatic rollback; edges heartbeat and long-poll their desired state. Reads are open; writes need `Authorization: Bearer <token>`. Every error is `{ \"error\": code, \"message\", \"issues\"? }`."
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas()
        }
    })
}

fn param(name: &str, place: &str, description: &str) -> Value {
    json!({ "name": name, "in": place, "required": true, "description": description,
        "schema": { "type": "string" } })
}

fn ok_ref(description: &str, schema: &str) -> Value {
    json!({ "description": description, "content": { "application/json": {
        "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn body_ref(schema: &str) -> Value {
    json!({ "required": true, "content": { "application/json": {
        "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn err(description: &str) -> Value {
    ok_ref(description, "ApiError")
}

/// Every schema named above: an object with its main fields (the Rust types in
/// `rampart-api` are the full definition).
fn schemas() -> Value {
    let obj = |required: &[&str], props: Value| json!({ "type": "object", "required": required, "properties": props });
    let s = json!({ "type": "string" });
    let i = json!({ "type": "integer", "minimum": 0 });
    let b = json!({ "type": "boolean" });
    let any = json!({ "type": "object" });
    json!({
        "ApiError": obj(&["error", "message"], json!({ "error": s, "message": s,
            "issues": { "type": "array", "items": obj(&["code", "message"],
                json!({ "code": s, "message": s, "detail": any })) } })),
        "ArtifactMeta": obj(&["digest", "kind", "version"], json!({ "digest": s, "kind": s,
            "version": i, "features": i, "size": i, "signer": s, "created_at": s, "source": s,
            "published_at_ms": i, "published_by": s, "bad": any })),
        "PublishResult": obj(&["artifact", "created"], json!({
            "artifact": { "$ref": "#/components/schemas/ArtifactMeta" }, "created": b,
            "checked_against": { "type": "array", "items": s } })),
        "ArtifactList": obj(&["artifacts"], json!({ "artifacts": { "type": "array",
            "items": { "$ref": "#/components/schemas/ArtifactMeta" } } })),
        "DiffView": obj(&["old", "new"], json!({ "old": s, "new": s, "old_count": i,
            "new_count": i, "added": { "type": "array", "items": any },
            "removed": { "type": "array", "items": any },
            "changed": { "type": "array", "items": any }, "count_ratio": { "type": "number" } })),
        "ContractList": obj(&["contracts"], json!({ "contracts": { "type": "array", "items": any } })),
        "Registration": obj(&["node", "labels", "contract", "software_version"], json!({
            "node": s, "labels": obj(&["pop", "region"], json!({ "pop": s, "region": s, "canary": b })),
            "contract": any, "software_version": s })),
        "RegisterAnswer": obj(&["node", "created", "beat_interval_ms"], json!({ "node": s,
            "created": b, "beat_interval_ms": i })),
        "NodeView": obj(&["node", "labels", "health"], json!({ "node": s, "labels": any,
            "software_version": s, "last_beat_ms": i, "active": any, "desired": any,
            "verdict": any, "last_rejection": any, "kill_switches": any,
            "health": { "type": "string", "enum": ["new", "healthy", "degraded", "stale"] } })),
        "NodeList": obj(&["nodes"], json!({ "nodes": { "type": "array",
            "items": { "$ref": "#/components/schemas/NodeView" } } })),
        "Heartbeat": obj(&["seq", "module_enabled", "counters", "scores"], json!({
            "seq": i, "active": any, "module_enabled": b, "verdict": any,
            "last_rejection": any,
            "counters": obj(&["requests", "errors_5xx", "module_errors", "restarts"],
                json!({ "requests": i, "errors_5xx": i, "module_errors": i, "restarts": i })),
            "scores": obj(&["buckets", "unscored"], json!({ "buckets": { "type": "array",
                "items": i, "minItems": 99, "maxItems": 99 }, "unscored": i })),
            "seen": s, "wait_ms": i })),
        "HeartbeatAnswer": obj(&["kill_switches", "etag", "beat_interval_ms", "changed"], json!({
            "desired": obj(&["version", "digest", "fetch"], json!({ "version": i, "digest": s, "fetch": s })),
            "kill_switches": any, "etag": s, "beat_interval_ms": i, "changed": b })),
        "StartRollout": obj(&["digest"], json!({ "digest": s, "reason": s, "break_glass": b,
            "bake_ms": i })),
        "RolloutAction": obj(&[], json!({ "reason": s, "mark_bad": b })),
        "RolloutView": obj(&["id", "phase", "waves"], json!({ "id": i, "kind": s,
            "target": any, "previous": any, "phase": s, "done": b, "break_glass": b,
            "reason": s, "started_by": s, "current_wave": i,
            "waves": { "type": "array", "items": any },
            "gates": { "type": "array", "items": any }, "outcome": s, "state": any })),
        "RolloutList": obj(&["rollouts"], json!({ "rollouts": { "type": "array",
            "items": { "$ref": "#/components/schemas/RolloutView" } } })),
        "KillSwitchSet": obj(&["module", "enabled", "reason"], json!({
            "module": { "type": "string", "enum": ["bot"] }, "enabled": b, "node": s,
            "clear": b, "reason": s })),
        "KillSwitchList": obj(&["switches"], json!({ "switches": { "type": "array", "items": any } })),
        "AuditPage": obj(&["entries"], json!({ "entries": { "type": "array", "items":
            obj(&["seq", "at_ms", "who", "action", "subject"], json!({ "seq": i, "at_ms": i,
                "who": s, "action": s, "subject": s, "reason": s, "detail": any })) },
            "next_after": i }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let mut described = Vec::new();
        for (path, ops) in paths {
            for method in ops.as_object().unwrap().keys() {
                described.push((method.clone(), path.clone()));
            }
        }
        let mut expected: Vec<(String, String)> = routes::ALL
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        described.sort();
        expected.sort();
        assert_eq!(described, expected);
    }

    #[test]
    fn every_schema_referenced_is_defined() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                schemas.contains_key(&name),
                "{name} is referenced, not defined"
            );
        }
    }

    #[test]
    fn every_path_parameter_is_declared() {
        let doc = document();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            let wanted: Vec<&str> = path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            for (method, op) in ops.as_object().unwrap() {
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "path")
                            .filter_map(|p| p["name"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(declared, wanted, "{method} {path}");
            }
        }
    }
}
