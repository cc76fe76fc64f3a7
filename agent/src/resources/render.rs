//! The two forms `mesos-agent --resources` accepts: `name:value;name:[a-b,c-d]` and a JSON
//! array of `Resource` messages.

use serde_json::{json, Value as Json};

use super::{Resource, Value};

/// `cpus:4;mem:7000;ports:[31000-32000]`.
pub fn text(rs: &[Resource]) -> String {
    rs.iter()
        .map(|r| match &r.value {
            Value::Scalar(v) => format!("{}:{}", r.name, v),
            Value::Ranges(rr) => {
                let inner: Vec<String> = rr.iter().map(|(b, e)| format!("{b}-{e}")).collect();
                format!("{}:[{}]", r.name, inner.join(","))
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// `[{"name":"cpus","type":"SCALAR","scalar":{"value":4}}, ...]`.
pub fn json(rs: &[Resource]) -> Json {
    Json::Array(
        rs.iter()
            .map(|r| match &r.value {
                Value::Scalar(v) => {
                    json!({"name": r.name, "type": "SCALAR", "scalar": {"value": v}})
                }
                Value::Ranges(rr) => {
                    let range: Vec<Json> = rr
                        .iter()
                        .map(|(b, e)| json!({"begin": b, "end": e}))
                        .collect();
                    json!({"name": r.name, "type": "RANGES", "ranges": {"range": range}})
                }
            })
            .collect(),
    )
}
