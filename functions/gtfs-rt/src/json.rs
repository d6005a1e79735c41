//! The JSON form of one feed entity, as sent to Kafka: proto field names
//! (snake_case), enums by name, absent fields left out, plus the entity
//! type and the feed header's timestamp and version.

use serde::{Serialize, Serializer};

use crate::pb::{FeedEntity, FeedMessage};

/// Implemented (by the build script) for every generated enum.
pub trait ProtoEnum: TryFrom<i32> {
    /// The value's name as written in the `.proto` file.
    fn proto_name(&self) -> &'static str;
}

/// Serializes an enum field by name; a number the schema does not know stays a number.
pub fn enum_name<E: ProtoEnum, S: Serializer>(
    value: &Option<i32>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(n) => match E::try_from(*n) {
            Ok(e) => serializer.serialize_str(e.proto_name()),
            Err(_) => serializer.serialize_i32(*n),
        },
        None => serializer.serialize_none(),
    }
}

/// The kind of payload an entity carries.
pub fn entity_type(entity: &FeedEntity) -> &'static str {
    if entity.vehicle.is_some() {
        "vehicle"
    } else if entity.trip_update.is_some() {
        "trip_update"
    } else if entity.alert.is_some() {
        "alert"
    } else if entity.trip_modifications.is_some() {
        "trip_modifications"
    } else if entity.shape.is_some() {
        "shape"
    } else if entity.stop.is_some() {
        "stop"
    } else {
        "empty"
    }
}

/// One Kafka message: key and JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityMessage {
    /// The entity type (`vehicle`, `trip_update`, `alert`, …).
    pub entity_type: &'static str,
    /// Vehicle id for vehicle positions that carry one, else the entity id.
    pub key: String,
    /// The JSON object.
    pub value: Vec<u8>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    entity_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    feed_timestamp: Option<u64>,
    gtfs_realtime_version: &'a str,
    #[serde(flatten)]
    entity: &'a FeedEntity,
}

/// The message for every entity of `feed`, in feed order.
pub fn messages(feed: &FeedMessage) -> impl Iterator<Item = EntityMessage> + '_ {
    feed.entity.iter().map(|entity| {
        let entity_type = entity_type(entity);
        let key = entity
            .vehicle
            .as_ref()
            .and_then(|v| v.vehicle.as_ref())
            .and_then(|d| d.id.clone())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| entity.id.clone());
        let envelope = Envelope {
            entity_type,
            feed_timestamp: feed.header.timestamp,
            gtfs_realtime_version: &feed.header.gtfs_realtime_version,
            entity,
        };
        // Serializing plain structs with string keys into memory cannot fail.
        let value = serde_json::to_vec(&envelope).unwrap_or_default();
        EntityMessage {
            entity_type,
            key,
            value,
        }
    })
}
