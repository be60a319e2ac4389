//! The OpenAPI 3.0 description served at `/openapi.json`, written by hand next to the
//! routes it describes; a test checks that it lists exactly [`rampart_api::routes::ALL`].

use rampart_api::identity::MAX_ENROLLMENT_TTL_MS;
use rampart_api::limits::{
    MAX_BAKE_MS, MAX_BLESSED, MAX_DEATHS_PER_BEAT, MAX_ID, MAX_IDENT_LEN, MAX_PAGE, MAX_REASON_LEN,
    MAX_SOFTWARE_VERSION_LEN, MAX_WATCH_MS,
};
use rampart_api::routes;
use rampart_artifact::limits::{HARD_MAX_BYTES, HARD_MAX_FEATURES, HARD_MAX_NAME_LEN};
use serde_json::{Value, json};

/// What a digest looks like on the wire (the parser takes either case of hex).
pub const DIGEST_PATTERN: &str = "^sha256:[0-9a-fA-F]{64}$";

/// The document.
pub fn document() -> Value {
    let digest = param(
        "digest",
        "path",
        "An artifact digest, `sha256:<64 hex digits>`.",
        json!({ "type": "string", "pattern": DIGEST_PATTERN }),
    );
    let node = param(
        "node",
        "path",
        "A node id (`[A-Za-z0-9._-]`, at most 64 bytes).",
        json!({ "type": "string", "pattern": format!("^[A-Za-z0-9._-]{{1,{MAX_IDENT_LEN}}}$") }),
    );
    let id = json!({ "name": "id", "in": "path", "required": true,
        "description": "A rollout id.",
        "schema": { "type": "integer", "minimum": 1, "maximum": MAX_ID } });
    let limit = json!({ "name": "limit", "in": "query", "required": false,
        "description": "Page size (default 100, at most 1000); out of bounds is a 400.",
        "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PAGE } });
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
            "summary": "Liveness, node and rollout counts, the TLS certificate serving (fingerprint, reloads, refused pairs, failed handshakes; null in plain HTTP), and the API's connections (caps, timeouts, refusals and closes).", "operationId": "health",
            "responses": { "200": ok_ref("Up.", "Health") }
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
                "schema": { "type": "string", "pattern": DIGEST_PATTERN } }],
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
            "summary": "Register (or re-register) a node with its labels and contract. Only the node's own credential (from enrollment) may; another node's gets 403 (counted and audited).",
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
            "description": "The edge reports its state and echoes the etag of the last answer it acted on (`seen`). The answer comes at once when the node's desired state (version, kill switches) has another etag, else when it changes or after `wait_ms` (at most 30000). Only the node's own credential (from enrollment) may send it.",
            "operationId": "heartbeat", "security": write, "parameters": [node],
            "requestBody": body_ref("Heartbeat"),
            "responses": {
                "200": ok_ref("The desired state.", "HeartbeatAnswer"),
                "400": err("Bad field (e.g. a histogram that is not 99 buckets)."),
                "401": err("No or unknown credential."),
                "403": err("Another node's credential, or not a node's (counted and audited)."),
                "404": err("`unknown_node`: register first.")
            }
        }),
    );
    add(
        routes::ROLLOUTS,
        "post",
        json!({
            "summary": "Start a rollout of a published artifact.",
            "description": "Waves by fault domain (canary, then about 10%, 50%, 100%), each baked and gated. `break_glass` pushes to every live node at once and needs a reason and a second admin: it answers 202 with an approval that another admin grants at `POST /v1/approvals/{id}`; the artifact is still verified and validated. One rollout at a time per artifact kind. Role: admin.",
            "operationId": "startRollout", "security": write,
            "requestBody": body_ref("StartRollout"),
            "responses": {
                "201": ok_ref("Started (the canary wave is already told).", "RolloutView"),
                "202": ok_ref("Break glass: waits for a second admin.", "ApprovalView"),
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
            "summary": "Turn a module off or on, fleet-wide or on one node; delivered in heartbeat answers at once. A fleet-wide change waits for a second admin (202). Role: admin.",
            "operationId": "setKillSwitch", "security": write,
            "requestBody": body_ref("KillSwitchSet"),
            "responses": {
                "200": ok_ref("Every setting after the change.", "KillSwitchList"),
                "202": ok_ref("Fleet-wide: waits for a second admin.", "ApprovalView"),
                "400": err("No reason, or `clear` without a node."),
                "401": err("No or unknown token."), "403": err("Token may not set kill switches."),
                "404": err("Unknown node."),
                "409": err("Fleet-wide: too many requests already wait for a second admin.")
            }
        }),
    );
    add(
        routes::NODE,
        "delete",
        json!({
            "summary": "Remove a node: its registration and contract, heartbeats, own targets and kill switches, and credential. Audited. Role: admin.",
            "operationId": "removeNode", "security": write, "parameters": [node.clone()],
            "requestBody": body_ref("RemoveNode"),
            "responses": {
                "200": ok_ref("Removed.", "NodeRemoved"),
                "400": err("No reason."),
                "401": err("No or unknown token."), "403": err("Token may not remove nodes."),
                "404": err("Unknown node.")
            }
        }),
    );
    add(
        routes::NODE_ENROLL,
        "post",
        json!({
            "summary": "Trade a one-time bootstrap token (the bearer token) for the node's own credential.",
            "description": "The token is burned by its first use, and by a refused one. The credential is shown once and stored hashed; it replaces any earlier credential of the node.",
            "operationId": "enroll", "security": write, "parameters": [node.clone()],
            "responses": {
                "200": ok_ref("The credential.", "Enrolled"),
                "401": err("No, unknown, used or expired bootstrap token (audited)."),
                "403": err("The bootstrap token is for another node (audited).")
            }
        }),
    );
    add(
        routes::ENROLLMENTS,
        "post",
        json!({
            "summary": "Issue a one-time bootstrap token for a node id; shown once, stored hashed, audited. Role: admin.",
            "operationId": "issueEnrollment", "security": write,
            "requestBody": body_ref("IssueEnrollment"),
            "responses": {
                "201": ok_ref("The token.", "EnrollmentIssued"),
                "400": err("Bad node id, no reason, or a ttl out of bounds."),
                "401": err("No or unknown token."), "403": err("Token may not enroll nodes."),
                "409": err("Too many tokens waiting for their edges.")
            }
        }),
    );
    add(
        routes::APPROVALS,
        "get",
        json!({
            "summary": "Requests waiting for a second admin.", "operationId": "approvals",
            "responses": { "200": ok_ref("Pending approvals.", "ApprovalList") }
        }),
    );
    add(
        routes::APPROVAL,
        "post",
        json!({
            "summary": "Approve a pending request; it takes effect as `first+second` and is audited with both names. Role: admin, not the one who asked.",
            "operationId": "approve", "security": write,
            "parameters": [{ "name": "id", "in": "path", "required": true,
                "description": "An approval id.",
                "schema": { "type": "integer", "minimum": 1, "maximum": MAX_ID } }],
            "responses": {
                "200": ok_ref("Approved and applied.", "Approved"),
                "401": err("No or unknown token."),
                "403": err("The admin who asked, or a token that may not approve."),
                "404": err("No such pending approval (expired or done).")
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
                "schema": { "type": "integer", "minimum": 0, "maximum": MAX_ID } }, limit],
            "responses": { "200": ok_ref("A page.", "AuditPage") }
        }),
    );
    common_errors(&mut paths);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "rampart control plane",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Feature files published, validated against every consumer contract, rolled out in gated waves with automatic rollback; edges heartbeat and long-poll their desired state. Reads are open; writes need `Authorization: Bearer <token>`. A body must declare its `Content-Type` (`application/json`, parameters such as `charset` allowed; a publish may also be `application/octet-stream`): none or another is a 415. Ids are at most 9223372036854775807 and page sizes 1 to 1000: beyond is a 400 naming the parameter. Every error is `{ \"error\": code, \"message\", \"issues\"? }`."
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas()
        }
    })
}

fn param(name: &str, place: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": place, "required": true, "description": description,
        "schema": schema })
}

/// The answers every operation of a kind can give, added where an operation does not say
/// more: 400 for a parameter out of bounds, 401/403 for a write, 400/413/415 for a body.
/// One place, so a new route cannot forget them.
fn common_errors(paths: &mut serde_json::Map<String, Value>) {
    for ops in paths.values_mut() {
        let Some(ops) = ops.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let mut add: Vec<(&str, &str)> = Vec::new();
            let has_params = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
            if has_params {
                add.push((
                    "400",
                    "A parameter is malformed or out of bounds (the message names it).",
                ));
            }
            if op.get("security").is_some() {
                add.push(("401", "No or unknown token."));
                add.push(("403", "The token's role may not do this."));
            }
            if op.get("requestBody").is_some() {
                add.push((
                    "400",
                    "The body is not what the schema says (the message says why).",
                ));
                add.push(("413", "Body over the cap."));
                add.push(("415", "No Content-Type, or not one of the types listed."));
            }
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for (status, description) in add {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| err(description));
            }
        }
    }
}

/// The same schema, where null is also accepted (an `Option` the server reads as absent).
fn nullable(mut schema: Value) -> Value {
    if let Some(o) = schema.as_object_mut() {
        o.insert("nullable".to_owned(), Value::Bool(true));
    }
    schema
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

/// A node id, PoP or region: `rampart_api::check_ident`.
fn ident() -> Value {
    json!({ "type": "string", "pattern": format!("^[A-Za-z0-9._-]{{1,{MAX_IDENT_LEN}}}$") })
}

/// Characters `rampart_api::check_text` refuses (Unicode control characters).
const CONTROL: &str = "\\x00-\\x1f\\x7f-\\x9f";

/// Free text of at most `max` bytes without control characters (`rampart_api::check_text`);
/// `maxLength` counts characters, so text with many multi-byte characters may still be
/// refused below it.
fn text(max: usize) -> Value {
    json!({ "type": "string", "maxLength": max, "pattern": format!("^[^{CONTROL}]*$") })
}

/// A required reason: text with at least one character that is not a space.
fn reason() -> Value {
    json!({ "type": "string", "maxLength": MAX_REASON_LEN,
        "pattern": format!("^[^{CONTROL}]*[^\\s{CONTROL}][^{CONTROL}]*$") })
}

/// A body type the server reads strictly (`deny_unknown_fields`): exactly these fields.
fn strict(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props,
        "additionalProperties": false })
}

/// Every schema named above. Request bodies are described exactly as the server checks
/// them (bounds, patterns, no unknown fields); answers list their main fields (the Rust
/// types in `rampart-api` are the full definition).
fn schemas() -> Value {
    let mut all = base_schemas();
    if let (Some(map), Value::Object(more)) = (all.as_object_mut(), death_and_blessing_schemas()) {
        map.extend(more);
    }
    all
}

/// The schemas of deaths, blessings, the rollout and its phase (a second `json!`: one
/// would exceed the macro's recursion limit).
fn death_and_blessing_schemas() -> Value {
    let obj = |required: &[&str], props: Value| json!({ "type": "object", "required": required, "properties": props });
    let s = json!({ "type": "string" });
    let i = json!({ "type": "integer", "minimum": 0 });
    let b = json!({ "type": "boolean" });
    let any = json!({ "type": "object" });
    json!({
        "RolloutView": obj(&["id", "phase", "waves"], json!({ "id": i, "kind": s,
            "target": any, "previous": any,
            "phase": { "type": "string", "enum": ["pending", "baking", "verifying", "watching",
                "paused", "rolling_back", "succeeded", "aborted", "rolled_back", "failed"] },
            "done": b, "break_glass": b,
            "reason": s, "started_by": s, "current_wave": i,
            "waves": { "type": "array", "items": any },
            "gates": { "type": "array", "items": any }, "outcome": s,
            "observed": { "type": "array", "description": "What gates in `observe` mode would have done: the first failure of each.", "items": { "$ref": "#/components/schemas/ObservedView" } }, "state": any })),
        "ObservedView": obj(&["gate", "at_ms", "would", "explanation"], json!({ "gate": s,
            "wave": { "type": "integer", "minimum": 0, "nullable": true }, "at_ms": i,
            "would": s, "explanation": s, "numbers": any })),
        "Active": obj(&["version", "digest"], json!({ "version": i,
            "digest": { "type": "string", "pattern": DIGEST_PATTERN } })),
        "Death": strict(&["detected_at_ms"], json!({ "detected_at_ms": i,
            "active": { "allOf": [{ "$ref": "#/components/schemas/Active" }], "nullable": true },
            "active_for_ms": { "type": "integer", "minimum": 0, "nullable": true },
            "uptime_ms": { "type": "integer", "minimum": 0, "nullable": true },
            "cause": { "oneOf": [
                strict(&["kind", "signal"], json!({ "kind": { "type": "string", "enum": ["signal"] },
                    "signal": { "type": "integer", "minimum": i32::MIN, "maximum": i32::MAX } })),
                strict(&["kind", "code"], json!({ "kind": { "type": "string", "enum": ["exit"] },
                    "code": { "type": "integer", "minimum": i32::MIN, "maximum": i32::MAX } })),
                strict(&["kind"], json!({ "kind": { "type": "string", "enum": ["panic", "unknown"] } }))
            ] } })),
        "Order": obj(&["node", "epoch", "seq", "kind", "kill_switches", "issued_at_ms"], json!({
            "node": s, "epoch": i, "seq": i, "kind": s, "desired": any, "kill_switches": any,
            "issued_at_ms": i,
            "blessed": { "type": "array", "maxItems": MAX_BLESSED,
                "items": { "$ref": "#/components/schemas/Active" },
                "description": "Blessed versions, newest first; a change raises `seq`." } })),
        "RolloutPhase": {
            "type": "object", "required": ["phase"],
            "description": "`state.status.phase` of a rollout. `watching`: every wave passed; the whole fleet is watched until `until_ms`.",
            "properties": { "phase": { "type": "string", "enum": ["pending", "baking",
                "verifying", "watching", "paused", "rolling_back", "succeeded", "aborted",
                "rolled_back", "failed"] }, "since_ms": i, "until_ms": i } }
    })
}

fn base_schemas() -> Value {
    let obj = |required: &[&str], props: Value| json!({ "type": "object", "required": required, "properties": props });
    let s = json!({ "type": "string" });
    let i = json!({ "type": "integer", "minimum": 0 });
    let b = json!({ "type": "boolean" });
    let any = json!({ "type": "object" });
    // Absent parts of the configuration (no TLS, no keyset) are `null`.
    let any_or_null = json!({ "type": "object", "nullable": true });
    json!({
        "Health": obj(&["status", "nodes", "running_rollouts"], json!({ "status": s,
            "nodes": i, "running_rollouts": i, "refused": any, "tls": any_or_null, "epoch": i,
            "seq": i, "trust": any_or_null, "log_suppressed": i,
            "connections": obj(&["open", "cap", "high_water", "per_client_cap",
                "header_timeout_ms", "idle_timeout_ms", "accepted", "refused_over_cap",
                "refused_per_client", "closed_header_timeout", "closed_idle", "shed"], json!({
                "open": i, "cap": i, "high_water": i, "per_client_cap": i,
                "header_timeout_ms": i, "idle_timeout_ms": i, "accepted": i,
                "refused_over_cap": i, "refused_per_client": i,
                "closed_header_timeout": i, "closed_idle": i, "shed": i })) })),
        "ApiError": obj(&["error", "message"], json!({ "error": s, "message": s, "leader": s,
            "issues": { "type": "array", "items": obj(&["code", "message"],
                json!({ "code": s, "message": s, "detail": any })) } })),
        "ArtifactMeta": obj(&["digest", "kind", "version"], json!({ "digest": s, "kind": s,
            "version": i, "features": i, "size": i, "signer": s, "created_at": s, "source": s,
            "published_at_ms": i, "published_by": s, "bad": any, "blessed": b })),
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
        "Registration": strict(&["node", "labels", "contract", "software_version"], json!({
            "node": ident(),
            "labels": strict(&["pop", "region"], json!({ "pop": ident(), "region": ident(), "canary": b })),
            "contract": { "$ref": "#/components/schemas/ContractSpec" },
            "software_version": text(MAX_SOFTWARE_VERSION_LEN) })),
        "ContractSpec": {
            "type": "object", "additionalProperties": false,
            "description": "A consumer contract; every field has a default. `min_features` must not exceed `max_features` (400 otherwise).",
            "properties": {
                "consumer": { "type": "string", "minLength": 1, "maxLength": 128 },
                "max_features": { "type": "integer", "minimum": 1, "maximum": HARD_MAX_FEATURES },
                "min_features": { "type": "integer", "minimum": 0, "maximum": HARD_MAX_FEATURES },
                "max_bytes": { "type": "integer", "minimum": 1, "maximum": HARD_MAX_BYTES },
                "max_name_len": { "type": "integer", "minimum": 1, "maximum": HARD_MAX_NAME_LEN },
                "max_abs_weight": { "type": "number", "exclusiveMinimum": true, "minimum": 0 },
                "allowed_types": { "type": "array", "minItems": 1, "items": s },
                "known_names": { "type": "array", "maxItems": HARD_MAX_FEATURES,
                    "uniqueItems": true, "items": s, "nullable": true } } },
        "RegisterAnswer": obj(&["node", "created", "beat_interval_ms"], json!({ "node": s,
            "created": b, "beat_interval_ms": i })),
        "NodeView": obj(&["node", "labels", "health"], json!({ "node": s, "labels": any,
            "software_version": s, "last_beat_ms": i, "active": any, "desired": any,
            "verdict": any, "last_rejection": any, "kill_switches": any,
            "health": { "type": "string", "enum": ["new", "healthy", "degraded", "stale"] },
            "last_death": { "$ref": "#/components/schemas/Death" } })),
        "NodeList": obj(&["nodes"], json!({ "nodes": { "type": "array",
            "items": { "$ref": "#/components/schemas/NodeView" } } })),
        "Heartbeat": obj(&["seq", "module_enabled", "counters", "scores"], json!({
            "seq": i, "active": any, "module_enabled": b, "verdict": any,
            "last_rejection": any,
            "counters": obj(&["requests", "errors_5xx", "module_errors", "restarts"],
                json!({ "requests": i, "errors_5xx": i, "module_errors": i, "restarts": i })),
            "scores": obj(&["buckets", "unscored"], json!({ "buckets": { "type": "array",
                "items": i, "minItems": 99, "maxItems": 99 }, "unscored": i })),
            "seen": s, "wait_ms": i,
            "deaths": { "type": "array", "maxItems": MAX_DEATHS_PER_BEAT,
                "items": { "$ref": "#/components/schemas/Death" } } })),
        "HeartbeatAnswer": obj(&["kill_switches", "etag", "beat_interval_ms", "changed"], json!({
            "desired": obj(&["version", "digest", "fetch"], json!({ "version": i, "digest": s, "fetch": s })),
            "kill_switches": any, "etag": s, "beat_interval_ms": i, "changed": b,
            "order": obj(&["payloadType", "payload", "signatures"], json!({ "payloadType": s,
                "payload": s, "signatures": { "type": "array", "items": obj(&["keyid", "sig"],
                    json!({ "keyid": s, "sig": s })) } })),
            "blessed": { "type": "array", "maxItems": MAX_BLESSED,
                "items": { "$ref": "#/components/schemas/Active" },
                "description": "Blessed versions, newest first (also in the signed order; payload: `Order`)." } })),
        "StartRollout": {
            "type": "object", "required": ["digest"], "additionalProperties": false,
            "properties": { "digest": { "type": "string", "pattern": DIGEST_PATTERN },
                "reason": nullable(text(MAX_REASON_LEN)), "break_glass": b,
                "bake_ms": { "type": "integer", "minimum": 0, "maximum": MAX_BAKE_MS,
                    "nullable": true },
                "watch_ms": { "type": "integer", "minimum": 0, "maximum": MAX_WATCH_MS,
                    "nullable": true } },
            "description": "`break_glass` needs a `reason` that is not blank.",
            "anyOf": [
                { "properties": { "break_glass": { "enum": [false] } } },
                { "required": ["reason"], "properties": { "reason": reason() } }
            ] },
        "RolloutAction": strict(&[], json!({ "reason": nullable(text(MAX_REASON_LEN)),
            "mark_bad": b })),
        "RolloutList": obj(&["rollouts"], json!({ "rollouts": { "type": "array",
            "items": { "$ref": "#/components/schemas/RolloutView" } } })),
        "KillSwitchSet": {
            "type": "object", "required": ["module", "enabled", "reason"],
            "additionalProperties": false,
            "properties": { "module": { "type": "string", "enum": ["bot"] }, "enabled": b,
                "node": nullable(ident()), "clear": b, "reason": reason() },
            "description": "`clear` needs a `node`.",
            "anyOf": [
                { "properties": { "clear": { "enum": [false] } } },
                { "required": ["node"], "properties": { "node": ident() } }
            ] },
        "KillSwitchList": obj(&["switches"], json!({ "switches": { "type": "array", "items": any } })),
        "IssueEnrollment": strict(&["node", "reason"], json!({ "node": ident(), "reason": reason(),
            "ttl_ms": { "type": "integer", "minimum": 1, "maximum": MAX_ENROLLMENT_TTL_MS,
                "nullable": true } })),
        "EnrollmentIssued": obj(&["node", "token", "expires_at_ms"], json!({ "node": s,
            "token": s, "expires_at_ms": i })),
        "Enrolled": obj(&["node", "credential"], json!({ "node": s, "credential": s })),
        "RemoveNode": strict(&["reason"], json!({ "reason": reason() })),
        "NodeRemoved": obj(&["node"], json!({ "node": s })),
        "ApprovalView": obj(&["id", "action", "request", "requested_by", "requested_at_ms",
            "expires_at_ms"], json!({ "id": i, "action": s, "request": any,
            "requested_by": s, "requested_at_ms": i, "expires_at_ms": i })),
        "ApprovalList": obj(&["approvals"], json!({ "approvals": { "type": "array",
            "items": { "$ref": "#/components/schemas/ApprovalView" } } })),
        "Approved": obj(&["approval", "approved_by", "result"], json!({
            "approval": { "$ref": "#/components/schemas/ApprovalView" }, "approved_by": s,
            "result": any })),
        "AuditPage": obj(&["entries"], json!({ "entries": { "type": "array", "items":
            obj(&["seq", "at_ms", "who", "action", "subject"], json!({ "seq": i, "at_ms": i,
                "who": s, "action": s, "subject": s, "reason": s, "detail": any })) },
            "next_after": { "type": "integer", "minimum": 0, "nullable": true,
                "description": "The `after` for the next page; null when this page is the last." } }))
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
    fn the_health_schema_names_every_connection_counter() {
        let doc = document();
        let props =
            &doc["components"]["schemas"]["Health"]["properties"]["connections"]["properties"];
        let report = serde_json::to_value(crate::connections::ConnectionsReport {
            open: 0,
            cap: 0,
            high_water: 0,
            per_client_cap: 0,
            header_timeout_ms: 0,
            idle_timeout_ms: 0,
            accepted: 0,
            refused_over_cap: 0,
            refused_per_client: 0,
            closed_header_timeout: 0,
            closed_idle: 0,
            shed: 0,
        })
        .unwrap();
        for key in report.as_object().unwrap().keys() {
            assert!(
                props.get(key).is_some(),
                "{key} is not in the Health schema"
            );
        }
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
