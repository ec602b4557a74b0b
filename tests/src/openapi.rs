//! Checks answers against the schemas of `docs/openapi.json`: a small structural checker
//! (`$ref`, `type`, `required`, `properties`, `additionalProperties: false`, `items`,
//! `enum`, `allOf` / `oneOf` / `anyOf`).

use crate::http::Answer;
use crate::root;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// The OpenAPI document of `docs/openapi.json`, read once.
pub fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let text = std::fs::read_to_string(root().join("docs/openapi.json")).expect("openapi");
        serde_json::from_str(&text).expect("openapi JSON")
    })
}

/// Where `value` breaks `schema` (empty when it conforms).
pub fn check(schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let doc = openapi();
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix('#')
            .and_then(|p| doc.pointer(p))
            .unwrap_or(&Value::Null);
        if target.is_null() {
            return vec![format!("{at}: unresolved {r}")];
        }
        return check(target, value, at);
    }
    let mut out = Vec::new();
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            out.extend(check(s, value, at));
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(any) = schema.get(key).and_then(Value::as_array) {
            if !any.iter().any(|s| check(s, value, at).is_empty()) {
                out.push(format!("{at}: matches none of {key}: {value}"));
            }
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => true,
        });
        if !ok {
            out.push(format!("{at}: expected {types:?}, got {value}"));
            return out;
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(value) {
            out.push(format!("{at}: {value} is not one of {e:?}"));
        }
    }
    if let Some(obj) = value.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = r.as_str() {
                if !obj.contains_key(name) {
                    out.push(format!("{at}: missing required `{name}`"));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => out.extend(check(s, v, &format!("{at}.{k}"))),
                None if schema.get("additionalProperties") == Some(&json!(false)) => {
                    out.push(format!("{at}: unexpected member `{k}`"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            out.extend(check(items, v, &format!("{at}[{i}]")));
        }
    }
    out
}

/// Asserts that an answer's body conforms to `#/components/schemas/{name}`.
pub fn conforms(a: &Answer, name: &str) {
    let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
    let errors = check(&schema, &a.json, name);
    assert!(
        errors.is_empty(),
        "{name}: {}\n{}",
        errors.join("\n"),
        a.text
    );
}
