//! A generator of realistic GTFS-Realtime feeds of any size: vehicles
//! shuttling along straight routes through a city centre, the trip updates
//! of their next stops, and a few alerts. A feed is a pure function of the
//! seed and the time, so a server can replay a "live" feed by asking for now.

use crate::pb::{
    Alert, EntitySelector, FeedEntity, FeedHeader, FeedMessage, Position, TimeRange,
    TranslatedString, TripDescriptor, TripUpdate, VehicleDescriptor, VehiclePosition, alert,
    feed_header, translated_string, trip_update, vehicle_position,
};

/// Metres between two stops of a route.
const STOP_SPACING_M: f64 = 800.0;
/// Stops per route.
const STOPS_PER_ROUTE: u32 = 25;
/// Metres per degree of latitude.
const M_PER_DEG_LAT: f64 = 111_320.0;

/// Shape of a generated network.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Number of vehicles (and trips).
    pub vehicles: u32,
    /// Varies everything that is not a function of time.
    pub seed: u64,
    /// City centre, degrees.
    pub centre: (f64, f64),
}

impl Sample {
    /// `vehicles` vehicles around Tokyo Station.
    pub fn new(vehicles: u32, seed: u64) -> Self {
        Self {
            vehicles,
            seed,
            centre: (35.681, 139.767),
        }
    }

    fn routes(&self) -> u32 {
        (self.vehicles / 20).max(1)
    }

    fn rand(&self, a: u64, b: u64) -> u64 {
        splitmix(self.seed ^ splitmix(a.wrapping_mul(0x9E37_79B9) ^ splitmix(b)))
    }

    /// Where vehicle `v` is at `t`: route, metres along it, direction (0 out, 1 back), speed m/s.
    fn place(&self, v: u32, t: u64) -> (u32, f64, u32, f64) {
        let route = v % self.routes();
        let length = STOP_SPACING_M * f64::from(STOPS_PER_ROUTE - 1);
        let speed = 6.0 + (self.rand(u64::from(v), 1) % 900) as f64 / 100.0;
        let phase = (self.rand(u64::from(v), 2) % 10_000) as f64 / 10_000.0 * 2.0 * length;
        let travelled = (phase + speed * t as f64) % (2.0 * length);
        if travelled < length {
            (route, travelled, 0, speed)
        } else {
            (route, 2.0 * length - travelled, 1, speed)
        }
    }

    /// Latitude, longitude and bearing of a point `along` metres on `route`.
    fn point(&self, route: u32, along: f64, direction: u32) -> (f64, f64, f64) {
        let angle = std::f64::consts::PI * f64::from(route) / f64::from(self.routes());
        let half = STOP_SPACING_M * f64::from(STOPS_PER_ROUTE - 1) / 2.0;
        let (north, east) = ((along - half) * angle.cos(), (along - half) * angle.sin());
        let lat = self.centre.0 + north / M_PER_DEG_LAT;
        let lon = self.centre.1 + east / (M_PER_DEG_LAT * self.centre.0.to_radians().cos());
        let mut bearing = angle.to_degrees();
        if direction == 1 {
            bearing += 180.0;
        }
        (lat, lon, bearing % 360.0)
    }

    fn header(&self, t: u64) -> FeedHeader {
        FeedHeader {
            gtfs_realtime_version: "2.0".into(),
            incrementality: Some(feed_header::Incrementality::FullDataset as i32),
            timestamp: Some(t),
            feed_version: Some(format!("sample-{}", self.seed)),
        }
    }

    fn trip(&self, v: u32, t: u64) -> TripDescriptor {
        let (route, _, direction, _) = self.place(v, t);
        let date = yyyymmdd(t);
        TripDescriptor {
            trip_id: Some(format!("R{route}-T{v}-{date}")),
            route_id: Some(format!("R{route}")),
            direction_id: Some(direction),
            start_date: Some(date),
            start_time: Some("05:00:00".into()),
            schedule_relationship: Some(0),
            ..Default::default()
        }
    }

    fn vehicle(&self, v: u32) -> VehicleDescriptor {
        VehicleDescriptor {
            id: Some(format!("V{v:05}")),
            label: Some(format!("{}", 1000 + v)),
            license_plate: None,
            wheelchair_accessible: Some(2),
        }
    }

    /// The VehiclePositions feed at `t` (POSIX seconds).
    pub fn vehicle_positions(&self, t: u64) -> FeedMessage {
        let entity = (0..self.vehicles)
            .map(|v| {
                let (route, along, direction, speed) = self.place(v, t);
                let (lat, lon, bearing) = self.point(route, along, direction);
                let stop = (along / STOP_SPACING_M).round() as u32;
                let at_stop = (along - f64::from(stop) * STOP_SPACING_M).abs() < 30.0;
                let next = if at_stop || direction == 1 {
                    stop
                } else {
                    (stop + 1).min(STOPS_PER_ROUTE - 1)
                };
                let status = if at_stop {
                    vehicle_position::VehicleStopStatus::StoppedAt
                } else {
                    vehicle_position::VehicleStopStatus::InTransitTo
                };
                FeedEntity {
                    id: format!("vp-{v}"),
                    vehicle: Some(VehiclePosition {
                        trip: Some(self.trip(v, t)),
                        vehicle: Some(self.vehicle(v)),
                        position: Some(Position {
                            latitude: lat as f32,
                            longitude: lon as f32,
                            bearing: Some(bearing as f32),
                            odometer: Some(along),
                            speed: Some(if at_stop { 0.0 } else { speed as f32 }),
                        }),
                        current_stop_sequence: Some(next + 1),
                        stop_id: Some(format!("R{route}-S{next}")),
                        current_status: Some(status as i32),
                        timestamp: Some(t.saturating_sub(self.rand(u64::from(v), t) % 10)),
                        congestion_level: Some((self.rand(u64::from(v), 3) % 5) as i32),
                        occupancy_status: Some((self.rand(u64::from(v), t / 300) % 7) as i32),
                        occupancy_percentage: Some((self.rand(u64::from(v), t / 60) % 120) as u32),
                        multi_carriage_details: Vec::new(),
                    }),
                    ..Default::default()
                }
            })
            .collect();
        FeedMessage {
            header: self.header(t),
            entity,
        }
    }

    /// The TripUpdates feed at `t`: each trip's next five stops.
    pub fn trip_updates(&self, t: u64) -> FeedMessage {
        let entity = (0..self.vehicles)
            .map(|v| {
                let (route, along, direction, speed) = self.place(v, t);
                let stop = (along / STOP_SPACING_M).floor() as u32;
                let delay = (self.rand(u64::from(v), t / 120) % 360) as i32 - 60;
                let stops: Vec<u32> = if direction == 0 {
                    (stop + 1..STOPS_PER_ROUTE).take(5).collect()
                } else {
                    (0..=stop).rev().take(5).collect()
                };
                let stop_time_update = stops
                    .into_iter()
                    .map(|s| {
                        let eta = ((f64::from(s) * STOP_SPACING_M - along).abs() / speed) as i64;
                        let time = t as i64 + eta + i64::from(delay);
                        let event = trip_update::StopTimeEvent {
                            delay: Some(delay),
                            time: Some(time),
                            uncertainty: Some(30),
                            scheduled_time: None,
                        };
                        trip_update::StopTimeUpdate {
                            stop_sequence: Some(s + 1),
                            stop_id: Some(format!("R{route}-S{s}")),
                            arrival: Some(event),
                            departure: Some(trip_update::StopTimeEvent {
                                time: Some(time + 20),
                                ..event
                            }),
                            schedule_relationship: Some(0),
                            ..Default::default()
                        }
                    })
                    .collect();
                FeedEntity {
                    id: format!("tu-{v}"),
                    trip_update: Some(TripUpdate {
                        trip: self.trip(v, t),
                        vehicle: Some(self.vehicle(v)),
                        stop_time_update,
                        timestamp: Some(t),
                        delay: Some(delay),
                        trip_properties: None,
                    }),
                    ..Default::default()
                }
            })
            .collect();
        FeedMessage {
            header: self.header(t),
            entity,
        }
    }

    /// The Alerts feed at `t`: one alert per ten routes, each active for an hour.
    pub fn alerts(&self, t: u64) -> FeedMessage {
        let hour = t / 3600 * 3600;
        let entity = (0..self.routes().div_ceil(10))
            .map(|a| {
                let route = u32::try_from(self.rand(u64::from(a), hour) % u64::from(self.routes())).unwrap_or(0);
                let stop = u32::try_from(self.rand(u64::from(a), hour + 1) % u64::from(STOPS_PER_ROUTE)).unwrap_or(0);
                FeedEntity {
                    id: format!("alert-{a}-{hour}"),
                    alert: Some(Alert {
                        active_period: vec![TimeRange {
                            start: Some(hour),
                            end: Some(hour + 3600),
                        }],
                        informed_entity: vec![
                            EntitySelector {
                                route_id: Some(format!("R{route}")),
                                ..Default::default()
                            },
                            EntitySelector {
                                stop_id: Some(format!("R{route}-S{stop}")),
                                ..Default::default()
                            },
                        ],
                        cause: Some(alert::Cause::Maintenance as i32),
                        effect: Some(alert::Effect::SignificantDelays as i32),
                        header_text: Some(text(&[
                            ("en", &format!("Delays on route R{route}")),
                            ("ja", &format!("R{route}線 遅延")),
                        ])),
                        description_text: Some(text(&[(
                            "en",
                            &format!("Track maintenance near stop R{route}-S{stop}; expect delays of up to 10 minutes."),
                        )])),
                        severity_level: Some(alert::SeverityLevel::Warning as i32),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            })
            .collect();
        FeedMessage {
            header: self.header(t),
            entity,
        }
    }
}

fn text(translations: &[(&str, &str)]) -> TranslatedString {
    TranslatedString {
        translation: translations
            .iter()
            .map(|(language, text)| translated_string::Translation {
                text: (*text).to_owned(),
                language: Some((*language).to_owned()),
            })
            .collect(),
    }
}

/// A 64-bit mixing function (splitmix64's finalizer).
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The UTC calendar date of POSIX time `t`, as GTFS writes it (`YYYYMMDD`).
pub fn yyyymmdd(t: u64) -> String {
    crate::date::yyyymmdd(i64::try_from(t).unwrap_or(i64::MAX))
}

/// A string of `len` bytes that stands for raw bytes in a feed being built
/// (see [`with_raw_text`]); `index` tells the placeholders apart.
pub fn placeholder(index: usize, len: usize) -> String {
    let mut text = format!("<{index}");
    while text.len() < len {
        text.push('#');
    }
    text
}

/// `feed` encoded, with each placeholder `placeholder(i, raw[i].len())` it
/// holds swapped for `raw[i]`: a feed whose strings carry bytes that are
/// not UTF-8 (legacy encodings, cut characters), as some producers send,
/// which prost cannot encode. Equal lengths keep every length prefix right.
///
/// # Panics
/// If a placeholder is missing from the feed, or `raw[i]` is too short to
/// hold one (fewer bytes than `<` and the index).
pub fn with_raw_text(feed: &FeedMessage, raw: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = crate::encode(feed);
    for (i, raw) in raw.iter().enumerate() {
        let marker = placeholder(i, raw.len()).into_bytes();
        assert_eq!(
            marker.len(),
            raw.len(),
            "raw text {i} is too short for a placeholder"
        );
        let at = bytes
            .windows(marker.len())
            .position(|w| w == marker.as_slice())
            .unwrap_or_else(|| panic!("placeholder {i} is not in the feed"));
        bytes[at..at + raw.len()].copy_from_slice(raw);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::{Sample, yyyymmdd};

    #[test]
    fn dates() {
        assert_eq!(yyyymmdd(0), "19700101");
        assert_eq!(yyyymmdd(1_699_405_559), "20231108");
        assert_eq!(yyyymmdd(951_782_400), "20000229");
    }

    #[test]
    fn feeds_have_the_requested_size_and_move() {
        let sample = Sample::new(1000, 7);
        let a = sample.vehicle_positions(1_700_000_000);
        let b = sample.vehicle_positions(1_700_000_030);
        assert_eq!(a.entity.len(), 1000);
        assert_eq!(sample.trip_updates(1_700_000_000).entity.len(), 1000);
        assert_eq!(sample.alerts(1_700_000_000).entity.len(), 5);
        let pos = |f: &crate::pb::FeedMessage| {
            f.entity[3]
                .vehicle
                .as_ref()
                .and_then(|v| v.position)
                .map(|p| (p.latitude, p.longitude))
        };
        assert_ne!(pos(&a), pos(&b), "vehicles move");
        for e in &a.entity {
            let p = e.vehicle.as_ref().and_then(|v| v.position).unwrap();
            assert!(
                (35.5..35.9).contains(&p.latitude) && (139.5..140.0).contains(&p.longitude),
                "{p:?}"
            );
        }
        assert_eq!(
            sample.vehicle_positions(1_700_000_000),
            a,
            "a pure function of seed and time"
        );
    }
}
