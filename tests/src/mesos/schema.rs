//! Apache Mesos' own v1 protos (tests/proto, vendored) as the schema of every Call the
//! double receives and every Event it sends: compiled at run time by protox, messages
//! read by prost-reflect's JSON mapping with unknown fields denied.
//!
//! The agent's parse ([`super::proto`], stout's rules) ignores unknown fields; an
//! executor sending one loses that information silently, so the double records a Call
//! that does not fit the schema as a violation. An Event that does not fit is a bug of
//! the double (a test's deliberately odd events go out unchecked).

use std::path::Path;
use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor};
use serde_json::Value;

pub const CALL: &str = "mesos.v1.executor.Call";
pub const EVENT: &str = "mesos.v1.executor.Event";

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
        let files = protox::compile(["mesos/v1/executor/executor.proto"], [&root])
            .unwrap_or_else(|e| panic!("cannot compile the Mesos protos in {root:?}: {e}"));
        DescriptorPool::from_file_descriptor_set(files).expect("Mesos protos: descriptor pool")
    })
}

fn message(name: &str) -> MessageDescriptor {
    pool()
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("{name} is not in the Mesos protos"))
}

/// Reads `json` as the message `name`; the error names the offending field.
pub fn parse(name: &str, json: &Value) -> Result<DynamicMessage, String> {
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    DynamicMessage::deserialize_with_options(message(name), json, &options)
        .map_err(|e| format!("not a {name} per Apache Mesos' protos: {e}"))
}

/// An Event the double is about to send; panics (a double bug) if it does not fit.
pub fn assert_event(event: &Value) {
    if let Err(e) = parse(EVENT, event) {
        panic!("the double built a bad Event: {e}: {event}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_well_formed_update_call_fits() {
        let call = json!({
            "type": "UPDATE",
            "framework_id": {"value": "f"},
            "executor_id": {"value": "e"},
            "update": {"status": {
                "task_id": {"value": "t"},
                "state": "TASK_RUNNING",
                "source": "SOURCE_EXECUTOR",
                "uuid": "AAAAAAAAQACAAAAAAAAAAA==",
                "timestamp": 1.5,
                "container_status": {"network_infos": [
                    {"ip_addresses": [{"protocol": "IPv4", "ip_address": "10.0.0.2"}]}
                ]}
            }}
        });
        parse(CALL, &call).unwrap();
    }

    #[test]
    fn unknown_fields_wrong_types_and_enums_are_named() {
        let base = json!({"type": "HEARTBEAT", "framework_id": {"value": "f"},
                          "executor_id": {"value": "e"}});
        let mut extra = base.clone();
        extra["executor_id"]["name"] = json!("x");
        let err = parse(CALL, &extra).unwrap_err();
        assert!(err.contains("name"), "{err}");
        let mut typed = base.clone();
        typed["framework_id"] = json!("f");
        assert!(parse(CALL, &typed).is_err());
        let mut kind = base;
        kind["type"] = json!("PING");
        let err = parse(CALL, &kind).unwrap_err();
        assert!(err.contains("PING"), "{err}");
    }

    #[test]
    #[should_panic(expected = "bad Event")]
    fn an_event_outside_the_schema_is_a_double_bug() {
        assert_event(&json!({"type": "KILL", "kill": {"task": {"value": "t"}}}));
    }
}
