//! Untrusted bytes to a [`Document`]: size, then depth, then JSON, then shape.
//!
//! Each step is bounded before the next one allocates: the size is compared with the limit
//! before anything is parsed, the nesting depth is found by a byte scan that stops at
//! [`MAX_DEPTH`], and JSON objects with a repeated key are refused (two parsers could read
//! such a document differently). The walk over the parsed value reports every shape problem
//! at once and keeps what is well formed, so validation can still report the rest.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::document::{Document, Feature, Model, Provenance};
use crate::envelope::{Envelope, PAYLOAD_TYPE, Signature, WireEnvelope};
use crate::issue::{Issue, Issues, quote};
use crate::limits::{MAX_DEPTH, MAX_SIGNATURES, wire_limit};

/// What [`decode`] found in the bytes.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The document (the envelope's payload, when signed).
    pub document: Document,
    /// The envelope, when the input was signed.
    pub envelope: Option<Envelope>,
}

/// Decodes a bare document or a signed envelope, checking size, depth, JSON syntax and
/// shape (not the contract, not the signature). Every shape problem is reported.
pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Decoded, Vec<Issue>> {
    let mut issues = Issues::default();
    match decode_lenient(bytes, max_bytes, &mut issues) {
        Some(partial) if issues.is_empty() => Ok(Decoded {
            document: partial.document,
            envelope: partial.envelope,
        }),
        _ => Err(issues.into_vec()),
    }
}

/// A document as far as it could be read, with what validation must not report twice.
#[derive(Debug)]
pub(crate) struct Partial {
    pub(crate) document: Document,
    pub(crate) envelope: Option<Envelope>,
    /// Entries in `features`, well formed or not (the count the contract bounds).
    pub(crate) feature_count: usize,
    /// Fields that were missing or malformed (already reported; filled with defaults).
    pub(crate) skip: Skip,
}

/// Fields whose content checks are skipped because their shape was already reported.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Skip {
    pub(crate) schema: bool,
    pub(crate) version: bool,
    pub(crate) created_at: bool,
    pub(crate) bias: bool,
    pub(crate) features: bool,
}

/// Reads what can be read; reports every problem into `issues`. `None` when nothing
/// document-shaped was found (too large, too deep, not JSON, not an object).
pub(crate) fn decode_lenient(
    bytes: &[u8],
    max_bytes: usize,
    issues: &mut Issues,
) -> Option<Partial> {
    let wire = wire_limit(max_bytes);
    if bytes.len() > wire {
        issues.push(Issue::TooLarge {
            what: "file",
            size: u64::try_from(bytes.len()).ok(),
            limit: wire,
        });
        return None;
    }
    // Only an envelope may be larger than a document; anything else is refused unparsed.
    if bytes.len() > max_bytes && !bytes.windows(PAYLOAD_KEY.len()).any(|w| w == PAYLOAD_KEY) {
        issues.push(Issue::TooLarge {
            what: "document",
            size: u64::try_from(bytes.len()).ok(),
            limit: max_bytes,
        });
        return None;
    }
    if let Err(issue) = precheck(bytes) {
        issues.push(issue);
        return None;
    }
    // Well-formed input, the common case, goes straight into typed structs; only when that
    // fails does the slower walk run, to report every problem at once.
    if let Some(partial) = fast(bytes, max_bytes) {
        return Some(partial);
    }
    walk(bytes, max_bytes, issues)
}

/// The reporting path: a strict `Value`, then a walk that reports every shape problem.
fn walk(bytes: &[u8], max_bytes: usize, issues: &mut Issues) -> Option<Partial> {
    let root = parse_json(bytes, issues)?;
    let Value::Object(obj) = root else {
        issues.push(wrong_type("(root)", "an object", &root));
        return None;
    };
    if is_envelope(&obj) {
        let (envelope, payload_ok) = walk_envelope(&obj, max_bytes, issues);
        let envelope = envelope?;
        if !payload_ok {
            return None;
        }
        let root = parse_json(envelope.payload(), issues)?;
        let Value::Object(doc) = root else {
            issues.push(wrong_type("payload", "an object", &root));
            return None;
        };
        let mut partial = walk_document(&doc, issues);
        partial.envelope = Some(envelope);
        Some(partial)
    } else {
        if bytes.len() > max_bytes {
            issues.push(Issue::TooLarge {
                what: "document",
                size: u64::try_from(bytes.len()).ok(),
                limit: max_bytes,
            });
            return None;
        }
        Some(walk_document(&obj, issues))
    }
}

/// The key every envelope has and no document does.
const PAYLOAD_KEY: &[u8] = b"\"payload\"";

/// The cheap checks before any parsing: empty input, then depth by a byte scan.
fn precheck(bytes: &[u8]) -> Result<(), Issue> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Issue::Empty);
    }
    scan_depth(bytes, MAX_DEPTH)
}

/// Typed decoding of a well-formed document or envelope; `None` sends the input to the
/// reporting walk. Accepts exactly what the walk accepts without an issue.
fn fast(bytes: &[u8], max_bytes: usize) -> Option<Partial> {
    let partial = |document: Document, envelope| Partial {
        feature_count: document.features.len(),
        document,
        envelope,
        skip: Skip::default(),
    };
    if bytes.len() <= max_bytes
        && let Ok(doc) = serde_json::from_slice::<Document>(bytes)
    {
        return Some(partial(doc, None));
    }
    let wire = serde_json::from_slice::<WireEnvelope>(bytes).ok()?;
    if wire.payload_type != PAYLOAD_TYPE
        || wire.signatures.is_empty()
        || wire.signatures.len() > MAX_SIGNATURES
        || wire.payload.len() / 4 * 3 > max_bytes.saturating_add(2)
    {
        return None;
    }
    let payload = BASE64.decode(&wire.payload).ok()?;
    if payload.len() > max_bytes || precheck(&payload).is_err() {
        return None;
    }
    let mut signatures = Vec::with_capacity(wire.signatures.len());
    for s in wire.signatures {
        signatures.push(Signature {
            keyid: s.keyid,
            sig: BASE64.decode(&s.sig).ok()?,
        });
    }
    let doc = serde_json::from_slice::<Document>(&payload).ok()?;
    Some(partial(
        doc,
        Some(Envelope::from_parts(wire.payload_type, payload, signatures)),
    ))
}

/// Parses JSON after the cheap checks: empty input, then depth by a byte scan.
fn parse_json(bytes: &[u8], issues: &mut Issues) -> Option<Value> {
    if let Err(issue) = precheck(bytes) {
        issues.push(issue);
        return None;
    }
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(v)) => Some(v),
        Err(e) => {
            issues.push(Issue::InvalidJson {
                line: e.line(),
                column: e.column(),
                message: json_message(&e),
            });
            None
        }
    }
}

/// serde_json's message without its trailing " at line L column C" (reported separately).
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(i) => full.get(..i).unwrap_or(&full).to_owned(),
        None => full,
    }
}

/// Finds whether `bytes` nest deeper than `limit` brackets, outside strings, without
/// parsing. Stops at the first byte past the limit.
pub fn scan_depth(bytes: &[u8], limit: usize) -> Result<(), Issue> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(Issue::TooDeep { limit, offset });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn is_envelope(obj: &Map<String, Value>) -> bool {
    obj.contains_key("payload") || obj.contains_key("payloadType") || obj.contains_key("signatures")
}

/// Reads an envelope. The bool says whether the payload is usable (decoded, within size).
fn walk_envelope(
    obj: &Map<String, Value>,
    max_bytes: usize,
    issues: &mut Issues,
) -> (Option<Envelope>, bool) {
    unknown_fields(obj, "", &["payloadType", "payload", "signatures"], issues);
    let payload_type = match req_str(obj, "", "payloadType", issues) {
        Some(t) if t == PAYLOAD_TYPE => t.to_owned(),
        Some(t) => {
            issues.push(Issue::WrongPayloadType {
                found: quote(t),
                expected: PAYLOAD_TYPE,
            });
            t.to_owned()
        }
        None => String::new(),
    };
    let mut payload_ok = false;
    let mut payload = Vec::new();
    if let Some(b64) = req_str(obj, "", "payload", issues) {
        // Bound the decoded size from the encoded length before decoding.
        let decoded_max = b64.len() / 4 * 3;
        if decoded_max > max_bytes.saturating_add(2) {
            issues.push(Issue::TooLarge {
                what: "payload",
                size: u64::try_from(decoded_max).ok(),
                limit: max_bytes,
            });
        } else {
            match BASE64.decode(b64) {
                Ok(bytes) if bytes.len() > max_bytes => issues.push(Issue::TooLarge {
                    what: "payload",
                    size: u64::try_from(bytes.len()).ok(),
                    limit: max_bytes,
                }),
                Ok(bytes) => {
                    payload = bytes;
                    payload_ok = true;
                }
                Err(_) => issues.push(Issue::BadBase64 {
                    path: "payload".into(),
                }),
            }
        }
    }
    let mut signatures = Vec::new();
    match obj.get("signatures") {
        None => issues.push(Issue::MissingField {
            path: "signatures".into(),
        }),
        Some(Value::Array(list)) => {
            if list.is_empty() || list.len() > MAX_SIGNATURES {
                issues.push(Issue::SignatureCount {
                    count: list.len(),
                    limit: MAX_SIGNATURES,
                });
            }
            for (i, entry) in list.iter().take(MAX_SIGNATURES).enumerate() {
                let path = format!("signatures[{i}]");
                let Value::Object(sig) = entry else {
                    issues.push(wrong_type(&path, "an object", entry));
                    continue;
                };
                unknown_fields(sig, &path, &["keyid", "sig"], issues);
                let keyid = opt_str(sig, &path, "keyid", issues)
                    .unwrap_or_default()
                    .to_owned();
                let Some(b64) = req_str(sig, &path, "sig", issues) else {
                    continue;
                };
                match BASE64.decode(b64) {
                    Ok(sig) => signatures.push(Signature { keyid, sig }),
                    Err(_) => issues.push(Issue::BadBase64 {
                        path: format!("{path}.sig"),
                    }),
                }
            }
        }
        Some(other) => issues.push(wrong_type("signatures", "an array", other)),
    }
    (
        Some(Envelope::from_parts(payload_type, payload, signatures)),
        payload_ok,
    )
}

/// Reads a document object; never fails, fills defaults where fields are missing or
/// malformed and records them in [`Skip`].
fn walk_document(obj: &Map<String, Value>, issues: &mut Issues) -> Partial {
    let mut skip = Skip::default();
    unknown_fields(
        obj,
        "",
        &[
            "schema",
            "version",
            "created_at",
            "provenance",
            "model",
            "features",
        ],
        issues,
    );
    let schema = req_str(obj, "", "schema", issues).map(str::to_owned);
    skip.schema = schema.is_none();
    let version = req_u64(obj, "", "version", issues);
    skip.version = version.is_none();
    let created_at = req_str(obj, "", "created_at", issues).map(str::to_owned);
    skip.created_at = created_at.is_none();
    let provenance = walk_provenance(obj, issues);
    let bias = match req_obj(obj, "", "model", issues) {
        Some(model) => {
            unknown_fields(model, "model", &["bias"], issues);
            req_f64(model, "model", "bias", issues)
        }
        None => None,
    };
    skip.bias = bias.is_none();
    let (features, feature_count) = match obj.get("features") {
        None => {
            issues.push(Issue::MissingField {
                path: "features".into(),
            });
            skip.features = true;
            (Vec::new(), 0)
        }
        Some(Value::Array(list)) => (walk_features(list, issues), list.len()),
        Some(other) => {
            issues.push(wrong_type("features", "an array", other));
            skip.features = true;
            (Vec::new(), 0)
        }
    };
    Partial {
        document: Document {
            schema: schema.unwrap_or_default(),
            version: version.unwrap_or_default(),
            created_at: created_at.unwrap_or_default(),
            provenance,
            model: Model {
                bias: bias.unwrap_or_default(),
            },
            features,
        },
        envelope: None,
        feature_count,
        skip,
    }
}

fn walk_provenance(obj: &Map<String, Value>, issues: &mut Issues) -> Provenance {
    let mut p = Provenance {
        source: String::new(),
        query: String::new(),
        rows: 0,
        generator: String::new(),
        generator_version: String::new(),
        server_version: None,
    };
    let Some(prov) = req_obj(obj, "", "provenance", issues) else {
        return p;
    };
    const PATH: &str = "provenance";
    unknown_fields(
        prov,
        PATH,
        &[
            "source",
            "query",
            "rows",
            "generator",
            "generator_version",
            "server_version",
        ],
        issues,
    );
    p.source = req_str(prov, PATH, "source", issues)
        .unwrap_or_default()
        .to_owned();
    p.query = req_str(prov, PATH, "query", issues)
        .unwrap_or_default()
        .to_owned();
    p.rows = req_u64(prov, PATH, "rows", issues).unwrap_or_default();
    p.generator = req_str(prov, PATH, "generator", issues)
        .unwrap_or_default()
        .to_owned();
    p.generator_version = req_str(prov, PATH, "generator_version", issues)
        .unwrap_or_default()
        .to_owned();
    p.server_version = opt_str(prov, PATH, "server_version", issues).map(str::to_owned);
    p
}

/// Keeps the well-formed entries; reports the others.
fn walk_features(list: &[Value], issues: &mut Issues) -> Vec<Feature> {
    let mut out = Vec::with_capacity(list.len().min(crate::limits::HARD_MAX_FEATURES));
    for (i, entry) in list.iter().enumerate() {
        let path = format!("features[{i}]");
        let Value::Object(f) = entry else {
            issues.push(wrong_type(&path, "an object", entry));
            continue;
        };
        unknown_fields(f, &path, &["name", "type", "weight"], issues);
        let name = req_str(f, &path, "name", issues);
        let ty = req_str(f, &path, "type", issues);
        let weight = req_f64(f, &path, "weight", issues);
        if let (Some(name), Some(ty), Some(weight)) = (name, ty, weight) {
            out.push(Feature {
                name: name.to_owned(),
                ty: ty.to_owned(),
                weight,
            });
        }
    }
    out
}

// --- field helpers: each reports its own issue and returns None on failure ---

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn unknown_fields(obj: &Map<String, Value>, parent: &str, known: &[&str], issues: &mut Issues) {
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            issues.push(Issue::UnknownField {
                path: join(parent, &quote(key)),
            });
        }
    }
}

fn get<'a>(
    obj: &'a Map<String, Value>,
    parent: &str,
    key: &str,
    issues: &mut Issues,
) -> Option<&'a Value> {
    let v = obj.get(key);
    if v.is_none() {
        issues.push(Issue::MissingField {
            path: join(parent, key),
        });
    }
    v
}

fn req_str<'a>(
    obj: &'a Map<String, Value>,
    parent: &str,
    key: &str,
    issues: &mut Issues,
) -> Option<&'a str> {
    match get(obj, parent, key, issues)? {
        Value::String(s) => Some(s),
        other => {
            issues.push(wrong_type(&join(parent, key), "a string", other));
            None
        }
    }
}

fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    parent: &str,
    key: &str,
    issues: &mut Issues,
) -> Option<&'a str> {
    match obj.get(key)? {
        Value::String(s) => Some(s),
        // serde reads null as an absent Option: so does the walk.
        Value::Null => None,
        other => {
            issues.push(wrong_type(&join(parent, key), "a string", other));
            None
        }
    }
}

fn req_u64(obj: &Map<String, Value>, parent: &str, key: &str, issues: &mut Issues) -> Option<u64> {
    let v = get(obj, parent, key, issues)?;
    let n = v.as_u64();
    if n.is_none() {
        issues.push(wrong_type(
            &join(parent, key),
            "an unsigned 64-bit integer",
            v,
        ));
    }
    n
}

fn req_f64(obj: &Map<String, Value>, parent: &str, key: &str, issues: &mut Issues) -> Option<f64> {
    let v = get(obj, parent, key, issues)?;
    let n = v.as_f64();
    if n.is_none() {
        issues.push(wrong_type(&join(parent, key), "a number", v));
    }
    n
}

fn req_obj<'a>(
    obj: &'a Map<String, Value>,
    parent: &str,
    key: &str,
    issues: &mut Issues,
) -> Option<&'a Map<String, Value>> {
    match get(obj, parent, key, issues)? {
        Value::Object(o) => Some(o),
        other => {
            issues.push(wrong_type(&join(parent, key), "an object", other));
            None
        }
    }
}

fn wrong_type(path: &str, expected: &'static str, found: &Value) -> Issue {
    let found = match found {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("the string {}", quote(s)),
        Value::Array(a) => format!("an array of {}", a.len()),
        Value::Object(_) => "an object".to_owned(),
    };
    Issue::WrongType {
        path: path.to_owned(),
        expected,
        found,
    }
}

/// A `serde_json::Value` that refuses objects with a repeated key.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {}",
                    quote(&key)
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(r: Result<Decoded, Vec<Issue>>) -> Vec<&'static str> {
        r.err().unwrap().iter().map(Issue::code).collect()
    }

    #[test]
    fn depth_scan_ignores_brackets_in_strings() {
        let s = format!("{{\"a\":\"{}\"}}", "[".repeat(100));
        assert!(scan_depth(s.as_bytes(), 4).is_ok());
        let s = format!("{{\"a\":\"\\\"{}\"}}", "[".repeat(100));
        assert!(scan_depth(s.as_bytes(), 4).is_ok());
    }

    #[test]
    fn depth_scan_stops_at_the_limit() {
        let deep = "[".repeat(10_000);
        assert_eq!(
            scan_depth(deep.as_bytes(), MAX_DEPTH),
            Err(Issue::TooDeep {
                limit: MAX_DEPTH,
                offset: MAX_DEPTH
            })
        );
    }

    #[test]
    fn repeated_keys_are_invalid_json() {
        let r = decode(br#"{"version":1,"version":2}"#, 1024);
        let issues = r.err().unwrap();
        assert!(
            matches!(&issues[0], Issue::InvalidJson { message, .. } if message.contains("duplicate key \"version\"")),
            "{issues:?}"
        );
    }

    #[test]
    fn invalid_json_reports_line_and_column() {
        let issues = decode(b"{\n  \"schema\": ,\n}", 1024).err().unwrap();
        assert!(
            matches!(
                &issues[0],
                Issue::InvalidJson {
                    line: 2,
                    column: 13,
                    ..
                }
            ),
            "{issues:?}"
        );
    }

    #[test]
    fn empty_and_whitespace_are_empty() {
        assert_eq!(codes(decode(b"", 10)), ["empty"]);
        assert_eq!(codes(decode(b" \n\t", 10)), ["empty"]);
    }

    #[test]
    fn size_is_checked_before_parsing() {
        // Not JSON at all, but too large is what gets reported.
        let big = vec![b'x'; 2000];
        assert_eq!(codes(decode(&big, 100)), ["too_large"]);
    }

    #[test]
    fn every_shape_problem_is_reported() {
        let doc = br#"{"schema":1,"version":-1,"provenance":{},"model":{"bias":"x"},"features":[3,{"name":"a","type":"UInt8"}],"extra":true}"#;
        let codes = codes(decode(doc, 4096));
        for want in ["unknown_field", "wrong_type", "missing_field"] {
            assert!(codes.contains(&want), "{want} missing from {codes:?}");
        }
        // schema (wrong type), version (negative), created_at missing, 5 provenance fields,
        // bias wrong type, features[0] not an object, features[1].weight missing, extra.
        assert_eq!(codes.len(), 12, "{codes:?}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever the typed fast path accepts, the reporting walk accepts too, with the
        /// same result: the two can never disagree on what is valid.
        #[test]
        fn fast_path_agrees_with_the_walk(
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), 0usize..MUTATIONS.len()), 0..4),
            signed in proptest::prelude::any::<bool>(),
        ) {
            let name = if signed { "signed-features-60.json" } else { "features-60.json" };
            let mut text = std::fs::read_to_string(format!("{}/tests/corpus/good/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
            for (at, m) in edits {
                let at = at.index(text.len());
                if text.is_char_boundary(at) {
                    text.insert_str(at, MUTATIONS[m]);
                }
            }
            if let Some(fast) = fast(text.as_bytes(), 1 << 20) {
                let mut issues = Issues::default();
                let slow = walk(text.as_bytes(), 1 << 20, &mut issues).unwrap();
                proptest::prop_assert!(issues.is_empty(), "{:?}", issues.into_vec());
                proptest::prop_assert_eq!(&slow.document, &fast.document);
                proptest::prop_assert_eq!(&slow.envelope, &fast.envelope);
            }
        }
    }

    /// Edits that keep JSON plausible: nulls, duplicates, numbers of other kinds.
    const MUTATIONS: &[&str] = &[
        "null",
        ",",
        "\"x\":1,",
        "1.0",
        "-1",
        "\"server_version\":null,",
        "\"keyid\":\"\",",
        "{}",
        "[]",
        "1e5",
        "\"",
    ];

    #[test]
    fn an_array_is_not_a_document() {
        assert_eq!(codes(decode(b"[1,2]", 100)), ["wrong_type"]);
    }
}
