//! The admin API under hostile requests, generated (issue 22): function ids
//! with path tricks, wrong tokens, wrong content types, uploads cut short,
//! stalled or too large — sent as raw HTTP/1.1 over loopback, so nothing between
//! the generator and the host normalises them. Each gets the status its
//! kind calls for, is counted in `weir_admin_requests_total{code}`, and
//! nothing is swapped; a well-formed deploy afterwards still works.

use std::net::SocketAddr;

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use weir::Host;

use crate::deploy::{TOKEN, UPLOAD_TIMEOUT, manifest, start, with_token};
use crate::support::{guest, sample};

/// A raw request: its head (request line and headers, each ending in
/// CRLF) and the body bytes it sends; `cut_short` closes the client's side
/// after them, as a client that went away mid-upload.
struct Raw {
    head: String,
    body: Vec<u8>,
    cut_short: bool,
}

/// Reads one answer head; its status code, 0 if the host closed first.
async fn status(socket: &mut TcpStream) -> u16 {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head)
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3)?.parse().ok())
        .unwrap_or(0)
}

/// Sends `raw` as a careful client does (`expect: 100-continue`: the body
/// only once the host asks for it, so a refusal never races a body it did
/// not read) and returns the status of the answer (0: none).
async fn send(addr: SocketAddr, raw: &Raw) -> u16 {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let head = format!("{}expect: 100-continue\r\n\r\n", raw.head);
    socket.write_all(head.as_bytes()).await.unwrap();
    let first = status(&mut socket).await;
    if first != 100 {
        return first;
    }
    let _ = socket.write_all(&raw.body).await;
    if raw.cut_short {
        let _ = socket.shutdown().await;
    }
    status(&mut socket).await
}

/// `PUT <path>` with `headers` and `body`, declaring `declared` bytes.
fn put(path: &str, headers: &[(&str, &str)], body: &[u8], declared: usize) -> Raw {
    let mut head = format!(
        "PUT {path} HTTP/1.1\r\nhost: weir\r\nconnection: close\r\ncontent-length: {declared}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    Raw {
        head,
        body: body.to_vec(),
        cut_short: body.len() < declared,
    }
}

/// `PUT /functions/mark/component`: the status of the answer (0: none).
async fn upload(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8], declared: usize) -> u16 {
    send(
        addr,
        &put("/functions/mark/component", headers, body, declared),
    )
    .await
}

/// Every byte outside the unreserved set percent-encoded.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What a path segment decodes to, if it is valid UTF-8 after decoding.
fn decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A header value HTTP allows: no control characters but tab (the rest
/// would be a malformed request, refused with 400 before any handler).
fn header_value(text: &str) -> String {
    text.chars()
        .filter(|c| *c == '\t' || !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Function ids: arbitrary text percent-encoded, and path tricks raw.
fn id() -> impl Strategy<Value = String> {
    let tricks = prop::sample::select(vec![
        "..",
        "../mark",
        "mark/..",
        "mark/../mark",
        "./mark",
        "mark/",
        "%2e%2e",
        "%2E%2E%2Fmark",
        "mark%2F..%2Fmark",
        "mark%00",
        "%00mark",
        "mark%ff",
        "%c0%ae%c0%ae",
        "MARK",
        "mark%20",
        "ma%0Ark",
        "*",
        "",
        "mark?x=/../",
        "mark#frag",
    ]);
    prop_oneof![
        any::<String>().prop_map(|s| encode(&s)),
        (tricks, "[a-z./%]{0,12}").prop_map(|(t, s)| format!("{t}{s}")),
        "[a-z]{200,3000}",
    ]
}

/// Bearer tokens that are not the host's.
fn wrong_token() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>().prop_map(|s| format!("Bearer {s}")),
        "[ -~]{0,80}",
        (0..TOKEN.len(), any::<char>()).prop_map(|(at, c)| {
            let mut t: Vec<char> = TOKEN.chars().collect();
            t[at] = if t[at] == c { 'x' } else { c };
            format!("Bearer {}", t.into_iter().collect::<String>())
        }),
        (1..TOKEN.len()).prop_map(|n| format!("Bearer {}", &TOKEN[..n])),
        "[a-z0-9]{1,20}".prop_map(|s| format!("Bearer {TOKEN}{s}")),
        Just(format!("bearer {TOKEN}")),
        Just(format!("Basic {TOKEN}")),
        Just(TOKEN.to_owned()),
        Just("Bearer ".to_owned()),
        "[a-zA-Z0-9]{4000,8000}".prop_map(|s| format!("Bearer {s}")),
    ]
}

/// Content types other than the two a component may be sent as.
fn wrong_type() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/json",
            "application/wasm-but-not",
            "application/octet-streams",
            "wasm",
            "application/",
        ])
        .prop_map(str::to_owned),
    ]
    .prop_map(|t| header_value(&t))
    .prop_filter("not an accepted type", |t| {
        let essence = t
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        !t.is_empty() && essence != "application/wasm" && essence != "application/octet-stream"
    })
}

/// `cases` values of `strategy`, each passed to `check`.
async fn each<S: Strategy>(cases: usize, strategy: S, mut check: impl AsyncFnMut(S::Value)) {
    let mut runner = TestRunner::deterministic();
    for _ in 0..cases {
        let value = strategy.new_tree(&mut runner).unwrap().current();
        check(value).await;
    }
}

fn running_digest(host: &Host) -> String {
    host.functions
        .get("mark")
        .expect("function mark")
        .current()
        .component
        .digest
        .clone()
}

fn answers(host: &Host, code: u16) -> f64 {
    let label = format!(r#"weir_admin_requests_total{{code="{code}"}}"#);
    sample(&host.metrics.encode(), &label).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_admin_requests_get_their_status_are_counted_and_swap_nothing() {
    let topic = "admin-props";
    let (_cluster, brokers) = crate::support::cluster(topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path(), topic, &guest("mark_a"));
    let (host, shutdown) = start(&manifest, &brokers, with_token(), None).await;
    let addr = host.addr;
    let before = running_digest(&host);
    let v2 = std::fs::read(guest("mark_b")).unwrap();
    let bearer = format!("Bearer {TOKEN}");
    let wasm = ("content-type", "application/wasm");

    // Ids: a valid component and token; nothing but `mark` itself names
    // the function, so every other id is unknown (404), unreadable (400),
    // names another route (405) or is too long (414).
    each(1500, id(), async |id| {
        if decode(&id).as_deref() == Some("mark") {
            return;
        }
        let path = format!("/functions/{id}/component");
        let status = send(
            addr,
            &put(&path, &[("authorization", &bearer), wasm], &v2, v2.len()),
        )
        .await;
        assert!(
            matches!(status, 400 | 404 | 405 | 414),
            "{path:?}: {status}"
        );
        assert_eq!(running_digest(&host), before, "{path:?}");
    })
    .await;

    // A thousand wrong tokens: 401, whatever is wrong with them.
    let counted = answers(&host, 401);
    let mut wrong = 0;
    each(1000, wrong_token(), async |token| {
        let token = header_value(&token);
        if token.strip_prefix("Bearer ").map(str::trim) == Some(TOKEN) {
            return;
        }
        wrong += 1;
        let status = upload(addr, &[("authorization", &token), wasm], &v2, v2.len()).await;
        assert_eq!(status, 401, "{token:?}");
    })
    .await;
    assert_eq!(running_digest(&host), before);
    assert_eq!(
        answers(&host, 401) - counted,
        f64::from(wrong),
        "every refusal counted"
    );

    // Wrong content types: 415, the component never looked at.
    let counted = answers(&host, 415);
    each(1000, wrong_type(), async |content_type| {
        let status = upload(
            addr,
            &[("authorization", &bearer), ("content-type", &content_type)],
            &v2,
            v2.len(),
        )
        .await;
        assert_eq!(status, 415, "{content_type:?}");
    })
    .await;
    assert_eq!(running_digest(&host), before);
    assert_eq!(answers(&host, 415) - counted, 1000.0);

    // Cut short: declared as cut, the bytes are not a component (422); or
    // declared whole and the client gone mid-upload: the host answers 400
    // if it was still reading, or drops the connection (hyper does not
    // serve a request whose client half-closed) — never looking at the
    // bytes either way.
    let counted = (answers(&host, 422), answers(&host, 400));
    let (mut declared_cut, mut answered_400) = (0, 0);
    each(
        1000,
        (0..v2.len(), any::<bool>()),
        async |(cut, declared_whole)| {
            let declared = if declared_whole { v2.len() } else { cut };
            let status = upload(
                addr,
                &[("authorization", &bearer), wasm],
                &v2[..cut],
                declared,
            )
            .await;
            if declared_whole {
                assert!(
                    matches!(status, 0 | 400),
                    "{cut} of {} bytes: {status}",
                    v2.len()
                );
                answered_400 += usize::from(status == 400);
            } else {
                assert_eq!(status, 422, "{cut} bytes");
                declared_cut += 1;
            }
        },
    )
    .await;
    assert_eq!(running_digest(&host), before);
    assert_eq!(answers(&host, 422) - counted.0, declared_cut as f64);
    assert_eq!(answers(&host, 400) - counted.1, answered_400 as f64);

    // Stalled: declared whole, part sent, then silence with the
    // connection open. The host gives up after its upload timeout with
    // 408 instead of holding the request for as long as the client likes.
    let counted = answers(&host, 408);
    for cut in [0, v2.len() / 2, v2.len() - 1] {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let raw = put(
            "/functions/mark/component",
            &[("authorization", &bearer), wasm],
            &[],
            v2.len(),
        );
        let head = format!("{}expect: 100-continue\r\n\r\n", raw.head);
        socket.write_all(head.as_bytes()).await.unwrap();
        assert_eq!(status(&mut socket).await, 100);
        socket.write_all(&v2[..cut]).await.unwrap();
        let asked = std::time::Instant::now();
        let answer = tokio::time::timeout(UPLOAD_TIMEOUT * 5, status(&mut socket))
            .await
            .expect("a stalled upload is answered");
        assert_eq!(answer, 408, "{cut} of {} bytes sent", v2.len());
        assert!(
            asked.elapsed() >= UPLOAD_TIMEOUT / 2,
            "{:?}",
            asked.elapsed()
        );
    }
    assert_eq!(running_digest(&host), before);
    assert_eq!(answers(&host, 408) - counted, 3.0);

    // Too large: the host allows 1 MiB; declared larger, refused before the
    // body is read.
    let counted = answers(&host, 413);
    each(200, (1usize << 20) + 1..64 << 20, async |declared| {
        let status = upload(addr, &[("authorization", &bearer), wasm], &v2, declared).await;
        assert_eq!(status, 413, "{declared}");
    })
    .await;
    assert_eq!(running_digest(&host), before);
    assert_eq!(answers(&host, 413) - counted, 200.0);

    // And the API still deploys what it should.
    let status = upload(addr, &[("authorization", &bearer), wasm], &v2, v2.len()).await;
    assert_eq!(status, 200);
    assert_eq!(running_digest(&host), weir::runtime::digest(&v2));
    shutdown.cancel();
    host.wait().await.unwrap();
}
