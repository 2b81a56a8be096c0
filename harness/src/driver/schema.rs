//! The workload format's JSON Schema, with every registered broker's options in it.

use super::{names, BROKERS};
use crate::workload::Workload;

/// Lists the registry's names as the values `BrokerKind` takes in a JSON Schema.
pub fn name_brokers(schema: &mut serde_json::Value) {
    if let Some(kind) = schema.pointer_mut("/$defs/BrokerKind") {
        kind["enum"] = serde_json::json!(names());
    }
}

/// The workload format's JSON Schema, with each broker's topology options under its name.
pub fn workload_schema() -> serde_json::Value {
    let mut generator = schemars::SchemaGenerator::default();
    let mut schema =
        serde_json::to_value(generator.root_schema_for::<Workload>()).unwrap_or_default();
    let options: serde_json::Map<String, serde_json::Value> = BROKERS
        .iter()
        .map(|b| {
            let s = (b.options_schema)(&mut generator);
            (
                b.name.to_string(),
                serde_json::to_value(s).unwrap_or_default(),
            )
        })
        .collect();
    let defs = serde_json::to_value(generator.definitions()).unwrap_or_default();
    if let Some(topology) = schema.pointer_mut("/$defs/Topology") {
        if let Some(properties) = topology["properties"].as_object_mut() {
            properties.extend(options);
        }
        topology["additionalProperties"] = serde_json::Value::Bool(false);
    }
    name_brokers(&mut schema);
    if let (Some(all), Some(more)) = (schema["$defs"].as_object_mut(), defs.as_object()) {
        for (k, v) in more {
            all.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    schema
}
