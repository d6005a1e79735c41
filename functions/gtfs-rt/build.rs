//! Compiles `proto/gtfs-realtime.proto` with protox (pure Rust: no system
//! `protoc` needed) and generates prost types that serialize to GTFS-RT's
//! JSON form: proto field names, enums by name, absent fields left out.

use std::fmt::Write as _;
use std::path::PathBuf;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};

const PROTO: &str = "gtfs-realtime.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", proto_dir.join(PROTO).display());
    let fds = protox::compile([PROTO], [&proto_dir])?;

    let mut config = prost_build::Config::new();
    config.message_attribute(".", "#[derive(serde::Serialize)]");
    let mut enums = String::new();
    for file in &fds.file {
        let package = format!(".{}", file.package());
        for message in &file.message_type {
            annotate(&mut config, &mut enums, &package, "", message);
        }
    }
    config.compile_fds(FileDescriptorSet { file: fds.file })?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("enum_names.rs"), enums)?;
    Ok(())
}

/// Adds serde attributes to `message` (full name `package.prefix.Name`) and
/// its nested types; writes a `ProtoEnum` impl for every nested enum.
fn annotate(
    config: &mut prost_build::Config,
    enums: &mut String,
    package: &str,
    rust_prefix: &str,
    message: &DescriptorProto,
) {
    let full = format!("{package}.{}", message.name());
    for field in &message.field {
        let path = format!("{full}.{}", field.name());
        let attribute = match (field.label(), field.r#type()) {
            (Label::Repeated, _) => "#[serde(skip_serializing_if = \"Vec::is_empty\")]".to_owned(),
            (_, Type::Enum) => {
                let rust = rust_path(field.type_name());
                format!(
                    "#[serde(skip_serializing_if = \"Option::is_none\", serialize_with = \"crate::json::enum_name::<{rust}, _>\")]"
                )
            }
            (Label::Required, _) => continue,
            _ => "#[serde(skip_serializing_if = \"Option::is_none\")]".to_owned(),
        };
        config.field_attribute(&path, attribute);
    }
    let module = format!("{rust_prefix}{}::", snake(message.name()));
    for nested in &message.nested_type {
        annotate(config, enums, &full, &module, nested);
    }
    for e in &message.enum_type {
        let rust = format!("crate::pb::{module}{}", e.name());
        let _ = writeln!(
            enums,
            "impl crate::json::ProtoEnum for {rust} {{ fn proto_name(&self) -> &'static str {{ self.as_str_name() }} }}"
        );
    }
}

/// `.transit_realtime.VehiclePosition.OccupancyStatus` → `crate::pb::vehicle_position::OccupancyStatus`.
fn rust_path(type_name: &str) -> String {
    let parts: Vec<&str> = type_name
        .trim_start_matches('.')
        .split('.')
        .skip(1)
        .collect();
    let (name, parents) = parts.split_last().unwrap_or((&"", &[]));
    let mut path = "crate::pb::".to_owned();
    for parent in parents {
        path.push_str(&snake(parent));
        path.push_str("::");
    }
    path.push_str(name);
    path
}

/// CamelCase → snake_case, as prost names nested-type modules.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
