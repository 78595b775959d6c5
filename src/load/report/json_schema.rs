//! The JSON Schema (draft 2020-12) of the JSON report, and a small validator for the subset of
//! keywords it uses (`type`, `required`, `properties`, `additionalProperties`, `items`,
//! `minItems`, `maxItems`, `minimum`, `const`, `$ref` to `#/$defs/...`). Tests check our output
//! against it; users can feed it to any draft 2020-12 validator.

use super::compare::Json;

pub const JSON_SCHEMA: &str = r##"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://ringproxy.invalid/ringload-report.schema.json",
  "title": "ringload run report",
  "description": "One ringload run. Latencies are in microseconds; rates in requests per second.",
  "type": "object",
  "required": ["schema", "config", "started_unix", "duration_s", "responses", "rate",
    "bytes_read", "bytes_written", "latency", "service", "connect", "ttfb", "send_lag",
    "status", "errors", "error_count", "conns", "tally", "in_flight_at_stop", "drained",
    "abandoned", "failed_in_drain", "intervals", "spectrum", "cost", "verdict"],
  "properties": {
    "schema": {"const": 1},
    "config": {
      "type": "object",
      "required": ["urls", "method", "connections", "threads", "pipeline", "mode",
        "target_rate", "io", "version"],
      "properties": {
        "urls": {"type": "array", "items": {"type": "string"}},
        "method": {"type": "string"},
        "connections": {"type": "integer", "minimum": 0},
        "threads": {"type": "integer", "minimum": 0},
        "pipeline": {"type": "integer", "minimum": 0},
        "mode": {"type": "string", "description": "\"closed\", or the open-loop schedule"},
        "target_rate": {"type": "number", "minimum": 0},
        "io": {"type": "string"},
        "version": {"type": "string"}
      }
    },
    "started_unix": {"type": "number", "description": "Unix time (s) the measured window began"},
    "duration_s": {"type": "number", "minimum": 0},
    "responses": {"$ref": "#/$defs/count"},
    "rate": {"type": "number", "minimum": 0, "description": "achieved responses per second"},
    "bytes_read": {"$ref": "#/$defs/count"},
    "bytes_written": {"$ref": "#/$defs/count"},
    "latency": {"$ref": "#/$defs/latency", "description": "corrected: from the intended send"},
    "service": {"$ref": "#/$defs/latency", "description": "from the actual send"},
    "connect": {"$ref": "#/$defs/latency"},
    "ttfb": {"$ref": "#/$defs/latency"},
    "send_lag": {"$ref": "#/$defs/latency", "description": "actual minus intended send"},
    "status": {"$ref": "#/$defs/counts", "description": "responses per status code"},
    "errors": {"$ref": "#/$defs/counts", "description": "errors per phase:kind"},
    "error_count": {"$ref": "#/$defs/count"},
    "conns": {
      "type": "object",
      "required": ["opened", "reused", "closed_by_server"],
      "properties": {
        "opened": {"$ref": "#/$defs/count"},
        "reused": {"$ref": "#/$defs/count"},
        "closed_by_server": {"$ref": "#/$defs/count"}
      }
    },
    "tally": {"$ref": "#/$defs/counts"},
    "in_flight_at_stop": {"$ref": "#/$defs/count"},
    "drained": {"$ref": "#/$defs/count"},
    "abandoned": {"$ref": "#/$defs/count"},
    "failed_in_drain": {"$ref": "#/$defs/count"},
    "intervals": {
      "type": "array",
      "items": {
        "type": "object",
        "required": ["t", "count", "p50", "p99", "max"],
        "properties": {
          "t": {"type": "number", "description": "start, s after started_unix"},
          "count": {"$ref": "#/$defs/count"},
          "p50": {"$ref": "#/$defs/count"},
          "p99": {"$ref": "#/$defs/count"},
          "max": {"$ref": "#/$defs/count"}
        }
      }
    },
    "spectrum": {
      "type": "object",
      "required": ["latency", "service"],
      "properties": {
        "latency": {"$ref": "#/$defs/spectrum"},
        "service": {"$ref": "#/$defs/spectrum"}
      }
    },
    "cost": {
      "type": "object",
      "required": ["user_s", "sys_s", "cpu_us_per_request", "core_use_pct", "max_rss_kb"],
      "properties": {
        "user_s": {"type": "number", "minimum": 0},
        "sys_s": {"type": "number", "minimum": 0},
        "cpu_us_per_request": {"type": "number", "minimum": 0},
        "core_use_pct": {"type": "number", "minimum": 0},
        "max_rss_kb": {"$ref": "#/$defs/count"}
      }
    },
    "verdict": {
      "type": "object",
      "required": ["trustworthy", "reasons"],
      "properties": {
        "trustworthy": {"type": "boolean"},
        "reasons": {"type": "array", "items": {"type": "string"}}
      }
    }
  },
  "$defs": {
    "count": {"type": "integer", "minimum": 0},
    "counts": {"type": "object", "additionalProperties": {"$ref": "#/$defs/count"}},
    "latency": {
      "type": "object",
      "required": ["count", "min", "mean", "stdev", "max", "p50", "p75", "p90", "p99", "p999",
        "p9999"],
      "properties": {
        "count": {"$ref": "#/$defs/count"},
        "min": {"$ref": "#/$defs/count"},
        "mean": {"type": "number", "minimum": 0},
        "stdev": {"type": "number", "minimum": 0},
        "max": {"$ref": "#/$defs/count"},
        "p50": {"$ref": "#/$defs/count"},
        "p75": {"$ref": "#/$defs/count"},
        "p90": {"$ref": "#/$defs/count"},
        "p99": {"$ref": "#/$defs/count"},
        "p999": {"$ref": "#/$defs/count"},
        "p9999": {"$ref": "#/$defs/count"}
      },
      "additionalProperties": false
    },
    "spectrum": {
      "description": "[percentile, microseconds] pairs on the .hgrm tick sequence",
      "type": "array",
      "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
    }
  }
}"##;

/// Checks `v` against `schema` (the subset of keywords listed above) and returns every
/// violation as `path: what`. Empty means valid.
pub fn validate(schema: &Json, v: &Json) -> Vec<String> {
    let mut errs = Vec::new();
    check(schema, schema, v, "$", &mut errs);
    errs
}

fn type_ok(t: &str, v: &Json) -> bool {
    match (t, v) {
        ("object", Json::Obj(_)) | ("array", Json::Arr(_)) | ("string", Json::Str(_)) => true,
        ("boolean", Json::Bool(_)) | ("null", Json::Null) | ("number", Json::Num(_)) => true,
        ("integer", Json::Num(n)) => n.fract() == 0.0,
        _ => false,
    }
}

fn check(root: &Json, s: &Json, v: &Json, path: &str, errs: &mut Vec<String>) {
    let Json::Obj(s) = s else {
        if let Json::Bool(false) = s {
            errs.push(format!("{path}: not allowed"));
        }
        return;
    };
    if let Some(Json::Str(r)) = s.get("$ref") {
        match r.strip_prefix("#/").and_then(|p| root.at(p)) {
            Some(target) => check(root, target, v, path, errs),
            None => errs.push(format!("{path}: unresolved $ref {r}")),
        }
    }
    match s.get("type") {
        Some(Json::Str(t)) if !type_ok(t, v) => errs.push(format!("{path}: not of type {t}")),
        Some(Json::Arr(ts)) if !ts.iter().any(|t| t.as_str().is_some_and(|t| type_ok(t, v))) => {
            errs.push(format!("{path}: not of any allowed type"))
        }
        _ => {}
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        errs.push(format!("{path}: not the constant {c:?}"));
    }
    if let (Some(Json::Num(min)), Json::Num(n)) = (s.get("minimum"), v)
        && n < min
    {
        errs.push(format!("{path}: {n} below the minimum {min}"));
    }
    match v {
        Json::Obj(m) => {
            if let Some(Json::Arr(req)) = s.get("required") {
                for k in req.iter().filter_map(Json::as_str) {
                    if !m.contains_key(k) {
                        errs.push(format!("{path}: missing required key \"{k}\""));
                    }
                }
            }
            let props = match s.get("properties") {
                Some(Json::Obj(p)) => Some(p),
                _ => None,
            };
            for (k, x) in m {
                let sub = format!("{path}.{k}");
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => check(root, ps, x, &sub, errs),
                    None => {
                        if let Some(ap) = s.get("additionalProperties") {
                            check(root, ap, x, &sub, errs);
                        }
                    }
                }
            }
        }
        Json::Arr(a) => {
            if let Some(Json::Num(n)) = s.get("minItems")
                && (a.len() as f64) < *n
            {
                errs.push(format!("{path}: fewer than {n} items"));
            }
            if let Some(Json::Num(n)) = s.get("maxItems")
                && (a.len() as f64) > *n
            {
                errs.push(format!("{path}: more than {n} items"));
            }
            if let Some(is) = s.get("items") {
                for (i, x) in a.iter().enumerate() {
                    check(root, is, x, &format!("{path}[{i}]"), errs);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::compare::parse_json;
    use super::*;

    #[test]
    fn schema_parses_and_catches_errors() {
        let s = parse_json(JSON_SCHEMA).unwrap();
        let v = parse_json(r#"{"schema": 2, "latency": {"count": -1, "extra": 1}}"#).unwrap();
        let e = validate(&s, &v);
        assert!(
            e.iter().any(|e| e.contains("$.schema: not the constant")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|e| e.contains("missing required key \"config\""))
        );
        assert!(e.iter().any(|e| e.contains("$.latency.count: -1 below")));
        assert!(e.iter().any(|e| e.contains("$.latency.extra: not allowed")));
        assert!(
            e.iter()
                .any(|e| e.contains("$.latency: missing required key \"p99\""))
        );
    }
}
