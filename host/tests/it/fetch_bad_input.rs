//! Hostile and broken feeds against the real gtfs-fetch component and the
//! host's outbound HTTP: each fails (or skips) with a specific error and a
//! metric, returns no messages, and the next invocation still works.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use gtfs_rt::pb;
use weir::manifest::Limits;
use weir::runtime::{ComponentSettings, CronInvocation};
use weir::{InvokeError, LoadedComponent, World};

use crate::support::{function, runtime, sample};

fn shared(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/gtfs-rt")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (shared/ must sit beside the checkout)",
            path.display()
        )
    })
}

/// A feed with one vehicle entity that carries nothing optional.
fn minimal_feed() -> Vec<u8> {
    gtfs_rt::encode(&pb::FeedMessage {
        header: pb::FeedHeader {
            gtfs_realtime_version: "2.0".into(),
            ..Default::default()
        },
        entity: vec![pb::FeedEntity {
            id: "bare".into(),
            vehicle: Some(pb::VehiclePosition::default()),
            ..Default::default()
        }],
    })
}

async fn feed_server() -> u16 {
    let trip_updates = shared("bart-2019-trip-updates.pb");
    let truncated = trip_updates[..trip_updates.len() / 2].to_vec();
    let app = Router::new()
        .route(
            "/ok",
            get(|| async {
                gtfs_rt::encode(
                    &gtfs_rt::sample::Sample::new(5, 1).vehicle_positions(1_700_000_000),
                )
            }),
        )
        .route(
            "/404",
            get(|| async { (StatusCode::NOT_FOUND, "no such feed") }),
        )
        .route(
            "/500",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "upstream broke") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route("/empty", get(|| async { Vec::<u8>::new() }))
        .route(
            "/garbage",
            get(move || async move { shared("invalid-not-protobuf.pb") }),
        )
        .route("/truncated", get(move || async move { truncated }))
        .route("/big", get(|| async { vec![0u8; 2 << 20] }))
        .route(
            "/big-chunked",
            get(|| async {
                let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![0u8; 64 << 10]));
                Body::from_stream(futures::stream::iter(chunks)).into_response()
            }),
        )
        .route("/zero", get(|| async { shared("empty-alerts.pb") }))
        .route("/minimal", get(|| async { minimal_feed() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

async fn fetch(
    component: &LoadedComponent,
    url: String,
) -> Result<Vec<weir::imports::producer::OutMessage>, InvokeError> {
    let invocation = CronInvocation {
        outputs: Arc::from(vec!["t".to_owned()]),
        variables: BTreeMap::from([
            ("feed_url".to_owned(), url),
            ("topic".to_owned(), "t".to_owned()),
        ]),
        feed: None,
    };
    component
        .handle_cron(1, invocation)
        .await
        .0
        .map(|r| r.messages)
}

/// The built gtfs-fetch function with `settings`.
fn load_fetcher(rt: &Arc<weir::Runtime>, settings: ComponentSettings) -> LoadedComponent {
    rt.load_file(
        "gtfs-fetch",
        &function("gtfs-fetch"),
        World::Fetcher,
        settings,
    )
    .unwrap()
}

fn guest_error(result: Result<Vec<weir::imports::producer::OutMessage>, InvokeError>) -> String {
    match result {
        Err(InvokeError::Guest { message, .. }) => message,
        other => panic!("expected the function's own error, got {other:?}"),
    }
}

#[tokio::test]
async fn broken_feeds_fail_with_specific_errors_and_metrics() {
    let port = feed_server().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rt = runtime();
    let limits = Limits {
        http_timeout: Duration::from_millis(500),
        max_response_bytes: 1 << 20,
        ..Limits::default()
    };
    let settings = ComponentSettings {
        http: (&limits).into(),
        limits,
        allowed_outbound_hosts: vec![
            format!("http://127.0.0.1:{port}"),
            format!("http://127.0.0.1:{closed}"),
        ],
        ..Default::default()
    };
    let fetcher = load_fetcher(&rt, settings);
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let errors = |kind: &str| {
        let text = rt.metrics().encode();
        sample(
            &text,
            &format!("weir_outbound_http_errors_total{{function=\"gtfs-fetch\",kind=\"{kind}\"}}"),
        )
        .unwrap_or(0.0)
    };

    let cases: [(&str, &str); 6] = [
        ("/404", "returned HTTP 404 Not Found"),
        ("/500", "returned HTTP 500 Internal Server Error"),
        ("/empty", "empty feed: zero bytes"),
        ("/garbage", "not a GTFS-Realtime FeedMessage"),
        ("/truncated", "not a GTFS-Realtime FeedMessage"),
        ("/slow", "failed"),
    ];
    for (path, expected) in cases {
        let message = guest_error(fetch(&fetcher, url(path)).await);
        assert!(message.contains(expected), "{path}: {message}");
        assert!(
            fetch(&fetcher, url("/ok")).await.is_ok(),
            "the next invocation after {path} works"
        );
    }
    assert_eq!(errors("timeout"), 1.0);

    for path in ["/big", "/big-chunked"] {
        let message = guest_error(fetch(&fetcher, url(path)).await);
        assert!(message.contains("failed"), "{path}: {message}");
    }
    assert_eq!(errors("too_large"), 2.0);

    let message = guest_error(fetch(&fetcher, format!("http://127.0.0.1:{closed}/ok")).await);
    assert!(
        message.contains("GET") && message.contains("failed"),
        "{message}"
    );
    assert_eq!(errors("connect"), 1.0);

    let other_port = if port == 1 { 2 } else { port - 1 };
    let message = guest_error(fetch(&fetcher, format!("http://127.0.0.1:{other_port}/ok")).await);
    assert!(message.contains("HttpRequestDenied"), "{message}");
    assert_eq!(errors("denied"), 1.0);

    assert!(
        fetch(&fetcher, url("/zero")).await.unwrap().is_empty(),
        "a feed with no entities sends nothing"
    );
    let bare = fetch(&fetcher, url("/minimal")).await.unwrap();
    assert_eq!(bare.len(), 1);
    let value: serde_json::Value = serde_json::from_slice(&bare[0].value).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"entity_type": "vehicle", "gtfs_realtime_version": "2.0", "id": "bare", "vehicle": {}})
    );
    assert_eq!(bare[0].key.as_deref(), Some(&b"bare"[..]));

    let text = rt.metrics().encode();
    assert_eq!(
        sample(
            &text,
            r#"weir_invocations_total{function="gtfs-fetch",outcome="error"}"#
        ),
        Some(10.0),
        "{text}"
    );
}

/// A Japanese operator's vehicle feed as some send it: labels and trip ids
/// in Shift-JIS inside `string` fields; and the same feed's trip id cut in
/// the middle of a UTF-8 character.
pub(crate) fn shift_jis_feed() -> (Vec<u8>, [&'static str; 2]) {
    let texts = ["都営大江戸線 上野御徒町", "平日_0712"];
    let raw: Vec<Vec<u8>> = texts
        .iter()
        .map(|t| encoding_rs::SHIFT_JIS.encode(t).0.into_owned())
        .chain([vec![b'T', 0xE9, 0xA7]])
        .collect();
    let entity = |id: &str, label: String, trip: String| pb::FeedEntity {
        id: id.to_owned(),
        vehicle: Some(pb::VehiclePosition {
            trip: Some(pb::TripDescriptor {
                trip_id: Some(trip),
                ..Default::default()
            }),
            vehicle: Some(pb::VehicleDescriptor {
                id: Some(id.to_owned()),
                label: Some(label),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let hole = |i: usize| gtfs_rt::sample::placeholder(i, raw[i].len());
    let feed = pb::FeedMessage {
        header: pb::FeedHeader {
            gtfs_realtime_version: "1.0".into(),
            timestamp: Some(1_764_000_000),
            ..Default::default()
        },
        entity: vec![
            entity("V1", hole(0), hole(1)),
            entity("V2", "ascii label".to_owned(), hole(2)),
        ],
    };
    (gtfs_rt::sample::with_raw_text(&feed, &raw), texts)
}

#[tokio::test]
async fn legacy_text_is_transcoded_with_feed_encoding_and_replaced_and_counted_without() {
    let (bytes, [label, trip]) = shift_jis_feed();
    let app = Router::new().route("/sjis", get(move || async move { bytes }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let rt = runtime();
    let settings = ComponentSettings {
        allowed_outbound_hosts: vec![format!("http://127.0.0.1:{port}")],
        ..Default::default()
    };
    let fetcher = load_fetcher(&rt, settings);
    let fetch = |encoding: Option<&str>| {
        let mut variables = BTreeMap::from([
            (
                "feed_url".to_owned(),
                format!("http://127.0.0.1:{port}/sjis"),
            ),
            ("topic".to_owned(), "t".to_owned()),
        ]);
        if let Some(label) = encoding {
            variables.insert("feed_encoding".to_owned(), label.to_owned());
        }
        let feed = weir::imports::feed::FeedObservation::new(
            "odpt".to_owned(),
            None,
            Arc::from("gtfs-fetch"),
            Arc::clone(rt.metrics()),
        );
        let invocation = CronInvocation {
            outputs: Arc::from(vec!["t".to_owned()]),
            variables,
            feed: Some(feed),
        };
        let fetcher = &fetcher;
        async move { fetcher.handle_cron(1, invocation).await }
    };
    let vehicles = |messages: &[weir::imports::producer::OutMessage]| -> Vec<serde_json::Value> {
        messages
            .iter()
            .map(|m| {
                serde_json::from_slice::<serde_json::Value>(&m.value).unwrap()["vehicle"].clone()
            })
            .collect()
    };
    let invalid = || {
        sample(
            &rt.metrics().encode(),
            r#"weir_feed_invalid_strings_total{feed="odpt",function="gtfs-fetch"}"#,
        )
    };

    // Without an encoding: the feed publishes, U+FFFD where text was not UTF-8.
    let (result, output) = fetch(None).await;
    let sent = vehicles(&result.unwrap().messages);
    assert_eq!(sent.len(), 2);
    for text in [&sent[0]["vehicle"]["label"], &sent[0]["trip"]["trip_id"]] {
        assert!(text.as_str().unwrap().contains('\u{FFFD}'), "{text}");
    }
    assert_eq!(sent[1]["trip"]["trip_id"], "T\u{FFFD}");
    assert_eq!(sent[1]["vehicle"]["label"], "ascii label");
    assert_eq!(sent[1]["vehicle"]["id"], "V2");
    assert_eq!(invalid(), Some(3.0));
    assert!(
        output
            .stderr
            .contains("3 string field(s) were not valid text"),
        "{}",
        output.stderr
    );
    assert!(output.stderr.contains("feed_encoding"), "{}", output.stderr);

    // With the operator's encoding: the text as meant; the cut UTF-8 (a
    // lone lead byte's partner missing) reads as whatever Shift-JIS makes of it.
    let (result, output) = fetch(Some("shift_jis")).await;
    let sent = vehicles(&result.unwrap().messages);
    assert_eq!(sent[0]["vehicle"]["label"], label);
    assert_eq!(sent[0]["trip"]["trip_id"], trip);
    assert_eq!(sent[1]["vehicle"]["label"], "ascii label");
    assert!(
        output.stderr.contains("transcoded to UTF-8"),
        "{}",
        output.stderr
    );

    // An encoding nobody knows fails the invocation, saying which.
    let (result, _) = fetch(Some("klingon")).await;
    let message = guest_error(result.map(|r| r.messages));
    assert!(
        message.contains("feed_encoding") && message.contains("`klingon`"),
        "{message}"
    );
}
