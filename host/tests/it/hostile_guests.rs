//! Hostile guests (issue 22): components that compute without pause (also
//! after the host resumed them from an awaited call), allocate up to their
//! memory cap on every call, answer ten messages with a million outcomes,
//! send to a topic they did not declare, follow a redirect from an allowed
//! host to one that is not, and start two thousand outbound requests at
//! once — all at the same time, in one runtime on two worker threads. Each
//! is stopped or refused, and counted; a well-behaved function called
//! meanwhile keeps its latency (measured alone first, then during).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use weir::manifest::Limits;
use weir::runtime::messages::KafkaMessage;
use weir::{InvokeError, LoadedComponent, Runtime, TrapKind, World};

use crate::support::{guest, load, outputs, runtime, settings};

/// A plain answer.
const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";

/// A loopback HTTP server answering every request with `answer` after
/// `hold`, counting the connections it has open at once and in all.
struct Server {
    port: u16,
    most_open: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
}

async fn serve(hold: Duration, answer: String) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let open = Arc::new(AtomicUsize::new(0));
    let most_open = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counts = (
        Arc::clone(&open),
        Arc::clone(&most_open),
        Arc::clone(&accepted),
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (open, most_open) = (Arc::clone(&counts.0), Arc::clone(&counts.1));
            counts.2.fetch_add(1, Ordering::SeqCst);
            let now = open.fetch_add(1, Ordering::SeqCst) + 1;
            most_open.fetch_max(now, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                tokio::time::sleep(hold).await;
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Server {
        port,
        most_open,
        accepted,
    }
}

fn limits(timeout_ms: u64, max_memory: u64) -> Limits {
    Limits {
        timeout: Duration::from_millis(timeout_ms),
        max_memory,
        ..Limits::default()
    }
}

/// The `net` guest in `mode` against `url`, allowed to reach `allowed`,
/// with a deadline of `timeout_ms`.
fn net(
    rt: &Arc<Runtime>,
    id: &str,
    mode: &str,
    url: &str,
    allowed: u16,
    timeout_ms: u64,
) -> Arc<LoadedComponent> {
    let env = [("MODE", mode), ("URL", url), ("COUNT", "2000")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
    let mut settings = settings(limits(timeout_ms, 64 << 20), env);
    settings.allowed_outbound_hosts = vec![format!("http://127.0.0.1:{allowed}")];
    Arc::new(
        rt.load_file(id, &guest("net"), World::Fetcher, settings)
            .unwrap(),
    )
}

/// Calls a cron function once, allowed to send to `results`.
async fn tick(function: &LoadedComponent) -> Result<Vec<String>, InvokeError> {
    let (result, _) = function
        .handle_cron(1, outputs(Arc::from(vec!["results".to_owned()])))
        .await;
    result.map(|r| {
        r.messages
            .iter()
            .map(|m| String::from_utf8_lossy(&m.value).into_owned())
            .collect()
    })
}

fn kind<T>(result: &Result<T, InvokeError>) -> Option<TrapKind> {
    match result {
        Err(InvokeError::Trap { kind, .. }) => Some(*kind),
        _ => None,
    }
}

type Call = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs `call` again and again until `stop`; returns how often it ran.
fn hammer(
    stop: &Arc<AtomicBool>,
    mut call: impl FnMut() -> Call + Send + 'static,
) -> tokio::task::JoinHandle<usize> {
    let stop = Arc::clone(stop);
    tokio::spawn(async move {
        let mut calls = 0;
        while !stop.load(Ordering::SeqCst) {
            call().await;
            calls += 1;
        }
        calls
    })
}

/// The `ok` guest's latency, call after call, for `run`; sorted.
async fn latencies(ok: &LoadedComponent, run: Duration) -> Vec<Duration> {
    let started = Instant::now();
    let mut all = Vec::new();
    while started.elapsed() < run {
        let call = Instant::now();
        let (result, _) = ok
            .handle_cron(1, outputs(Arc::from(vec!["vehicle_topic".to_owned()])))
            .await;
        all.push(call.elapsed());
        assert_eq!(result.unwrap().messages.len(), 1);
    }
    all.sort();
    all
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[at - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guests_are_stopped_refused_and_counted_and_a_good_function_keeps_its_latency() {
    let rt = runtime();
    let metrics = Arc::clone(rt.metrics());
    let slow = serve(Duration::from_millis(200), OK.to_owned()).await;
    let secret = serve(
        Duration::ZERO,
        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_owned(),
    )
    .await;
    let redirecting = serve(
        Duration::ZERO,
        format!(
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{}/secret\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            secret.port
        ),
    )
    .await;
    let slow_url = format!("http://127.0.0.1:{}/", slow.port);
    let env = vec![("TOPIC".to_owned(), "vehicle_topic".to_owned())];
    let ok = load(&rt, "good", "ok", World::Fetcher, Limits::default(), env);

    // Alone, after one warm-up call.
    latencies(&ok, Duration::from_millis(100)).await;
    let alone = latencies(&ok, Duration::from_secs(2)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut hostile = Vec::new();
    // Two guests that never return, on two worker threads: without the
    // yield at every epoch tick they would hold both threads for their
    // whole 1 s deadline, again and again.
    let spinning = Arc::new(load(
        &rt,
        "spin",
        "loop",
        World::Fetcher,
        limits(1000, 64 << 20),
        Vec::new(),
    ));
    for _ in 0..2 {
        let f = Arc::clone(&spinning);
        hostile.push(hammer(&stop, move || {
            let f = Arc::clone(&f);
            Box::pin(async move {
                let r = tick(&f).await;
                assert_eq!(kind(&r), Some(TrapKind::Timeout), "{r:?}");
            })
        }));
    }
    // Resumed by the host after an outbound request, then never returns.
    let waiting = net(
        &rt,
        "wait-loop",
        "wait-then-loop",
        &slow_url,
        slow.port,
        1000,
    );
    hostile.push(hammer(&stop, move || {
        let f = Arc::clone(&waiting);
        Box::pin(async move {
            let r = tick(&f).await;
            assert_eq!(kind(&r), Some(TrapKind::Timeout), "{r:?}");
        })
    }));
    // Up to its memory cap on every call.
    let greedy = Arc::new(load(
        &rt,
        "greedy",
        "alloc",
        World::Fetcher,
        limits(10_000, 16 << 20),
        Vec::new(),
    ));
    hostile.push(hammer(&stop, move || {
        let f = Arc::clone(&greedy);
        Box::pin(async move {
            let r = tick(&f).await;
            assert_eq!(kind(&r), Some(TrapKind::Memory), "{r:?}");
        })
    }));
    // A million outcomes for ten messages.
    let overflow = Arc::new(load(
        &rt,
        "overflow",
        "overflow",
        World::Transformer,
        Limits::default(),
        Vec::new(),
    ));
    let ten: Vec<KafkaMessage> = (0..10)
        .map(|offset| KafkaMessage {
            topic: "in".into(),
            partition: 0,
            offset,
            timestamp_ms: None,
            key: None,
            value: Some(b"{}".to_vec()),
            headers: Vec::new(),
        })
        .collect();
    let ten = Arc::new(ten);
    hostile.push(hammer(&stop, move || {
        let (f, ten) = (Arc::clone(&overflow), Arc::clone(&ten));
        Box::pin(async move {
            match f.handle_batch(&ten).await.0 {
                Err(InvokeError::Guest { message, .. }) => assert!(
                    message.contains("returned 1000000 outcomes for 10 messages"),
                    "{message}"
                ),
                other => panic!("expected a guest error, got {other:?}"),
            }
        })
    }));
    // Sending to a topic it did not declare.
    let env = vec![("TOPIC".to_owned(), "elsewhere".to_owned())];
    let stray = Arc::new(load(
        &rt,
        "stray",
        "ok",
        World::Fetcher,
        Limits::default(),
        env,
    ));
    hostile.push(hammer(&stop, move || {
        let f = Arc::clone(&stray);
        Box::pin(async move {
            match tick(&f).await {
                Err(InvokeError::Guest { message, .. }) => assert!(
                    message.contains("`elsewhere` is not in the trigger's outputs"),
                    "{message}"
                ),
                other => panic!("expected a guest error, got {other:?}"),
            }
        })
    }));

    // Once each while the others run: two thousand requests at once, and
    // a redirect to a host the function may not reach. (Their deadline is
    // long: every one of the flood's two thousand answers resumes the
    // guest, which waits its turn behind the spinning ones each time.)
    let flooded_server = serve(Duration::from_millis(200), OK.to_owned()).await;
    let flood_url = format!("http://127.0.0.1:{}/", flooded_server.port);
    let flood = net(
        &rt,
        "flood",
        "flood",
        &flood_url,
        flooded_server.port,
        20_000,
    );
    let flooded = tick(&flood).await.expect("the flood returns");
    let redirect_url = format!("http://127.0.0.1:{}/moved", redirecting.port);
    let redirect = net(
        &rt,
        "redirect",
        "redirect",
        &redirect_url,
        redirecting.port,
        20_000,
    );
    let redirected = tick(&redirect).await.expect("the redirect guest returns");

    let during = latencies(&ok, Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let mut calls = Vec::new();
    for task in hostile {
        calls.push(task.await.expect("a hostile task's checks"));
    }

    // Two thousand at once: no more than max_outbound_requests reached the
    // server together, the rest were refused at once and counted.
    let [flooded] = flooded.as_slice() else {
        panic!("{flooded:?}")
    };
    let (ok_count, refused) = flooded
        .strip_prefix("ok=")
        .and_then(|r| r.split_once(" refused="))
        .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
        .expect("ok=N refused=N");
    let cap = Limits::default().max_outbound_requests;
    assert_eq!(ok_count + refused, 2000);
    assert!(refused >= 2000 - 4 * cap as u64, "{flooded}");
    let most_open = flooded_server.most_open.load(Ordering::SeqCst);
    assert!(
        (1..=cap).contains(&most_open),
        "{most_open} requests reached the server at once, the cap is {cap}"
    );
    let http_errors = |function: &str, kind: &str| {
        metrics
            .outbound_http_errors
            .with_label_values(&[function, kind])
            .get()
    };
    assert_eq!(http_errors("flood", "too_many"), refused);
    // The redirect reached the guest as a 302; following it was refused,
    // and the disallowed host never saw a connection.
    assert_eq!(redirected.len(), 1);
    assert!(
        redirected[0].starts_with("first=302 then=") && redirected[0].contains("HttpRequestDenied"),
        "{redirected:?}"
    );
    assert_eq!(secret.accepted.load(Ordering::SeqCst), 0);
    assert_eq!(http_errors("redirect", "denied"), 1);

    // Each stopped or refused every time, and counted as what it was.
    let invocations = |function: &str, outcome: &str| {
        metrics
            .invocations
            .with_label_values(&[function, outcome])
            .get()
    };
    let (spins, waits, greeds, overflows, strays) =
        (calls[0] + calls[1], calls[2], calls[3], calls[4], calls[5]);
    assert!(
        spins >= 2 && waits >= 1 && greeds >= 1 && overflows >= 1 && strays >= 1,
        "{calls:?}"
    );
    assert_eq!(invocations("spin", "timeout"), spins as u64);
    assert_eq!(invocations("wait-loop", "timeout"), waits as u64);
    assert_eq!(invocations("greedy", "memory"), greeds as u64);
    assert_eq!(invocations("overflow", "error"), overflows as u64);
    assert_eq!(invocations("stray", "error"), strays as u64);

    // The good function, meanwhile: the hostile ones cost it at most a few
    // epoch ticks, never a hostile call's deadline.
    let (p50_alone, p99_alone) = (percentile(&alone, 0.5), percentile(&alone, 0.99));
    let (p50_during, p99_during) = (percentile(&during, 0.5), percentile(&during, 0.99));
    eprintln!(
        "good function alone: {} calls, p50 {p50_alone:?}, p99 {p99_alone:?}; \
         during: {} calls, p50 {p50_during:?}, p99 {p99_during:?}; hostile calls {calls:?}; flood {flooded}",
        alone.len(),
        during.len()
    );
    assert!(
        p99_during < Duration::from_millis(250),
        "the good function waited {p99_during:?} (p99) beside hostile guests, {p99_alone:?} alone"
    );
}
