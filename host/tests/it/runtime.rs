//! The sandbox's hard limits against real guest components.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::manifest::Limits;
use weir::runtime::messages::{BatchOutput, KafkaMessage, TableOutput};
use weir::{InvokeError, LoadError, TrapKind, World};

use crate::support::{guest, load, outputs, runtime, sample, settings};

fn limits(timeout_ms: u64, max_memory: u64) -> Limits {
    Limits {
        timeout: Duration::from_millis(timeout_ms),
        max_memory,
        ..Limits::default()
    }
}

fn kind<T>(result: &Result<T, InvokeError>) -> Option<TrapKind> {
    match result {
        Err(InvokeError::Trap { kind, .. }) => Some(*kind),
        _ => None,
    }
}

#[tokio::test]
async fn ok_guest_sends_its_message_and_prints() {
    let rt = runtime();
    let env = vec![("TOPIC".to_owned(), "vehicle_topic".to_owned())];
    let hello = load(&rt, "hello", "ok", World::Fetcher, Limits::default(), env);
    assert!(hello.digest.starts_with("sha256:") && hello.digest.len() == 7 + 64);
    let (result, output) = hello
        .handle_cron(
            1_700_000_000,
            outputs(Arc::from(vec!["vehicle_topic".to_owned()])),
        )
        .await;
    let messages = result.unwrap().messages;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].topic, "vehicle_topic");
    assert_eq!(messages[0].key.as_deref(), Some(&b"1700000000"[..]));
    assert_eq!(output.stdout, "tick 1700000000\n");
}

#[tokio::test]
async fn sending_to_an_undeclared_topic_is_refused() {
    let rt = runtime();
    let env = vec![("TOPIC".to_owned(), "elsewhere".to_owned())];
    let hello = load(&rt, "hello", "ok", World::Fetcher, Limits::default(), env);
    let (result, _) = hello
        .handle_cron(1, outputs(Arc::from(vec!["vehicle_topic".to_owned()])))
        .await;
    match result {
        Err(InvokeError::Guest { message, .. }) => assert!(
            message.contains("`elsewhere` is not in the trigger's outputs"),
            "{message}"
        ),
        other => panic!("expected a guest error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_guest_that_loops_forever_is_stopped_at_its_deadline() {
    let rt = runtime();
    let timeout = 300;
    let looping = load(
        &rt,
        "looping",
        "loop",
        World::Fetcher,
        limits(timeout, 64 << 20),
        Vec::new(),
    );
    let started = Instant::now();
    let (result, _) = looping.handle_cron(1, outputs(Arc::from(Vec::new()))).await;
    let elapsed = started.elapsed();
    assert_eq!(kind(&result), Some(TrapKind::Timeout), "{result:?}");
    // Deadline + one 10 ms epoch tick; 100 ms more for instantiation and a noisy machine.
    assert!(
        elapsed >= Duration::from_millis(timeout),
        "stopped early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(timeout + 10 + 100),
        "stopped late: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_guest_that_grows_past_its_memory_cap_fails_as_memory() {
    let rt = runtime();
    let alloc = load(
        &rt,
        "alloc",
        "alloc",
        World::Fetcher,
        limits(10_000, 16 << 20),
        Vec::new(),
    );
    let (result, _) = alloc.handle_cron(1, outputs(Arc::from(Vec::new()))).await;
    assert_eq!(kind(&result), Some(TrapKind::Memory), "{result:?}");
    let Err(e) = result else { unreachable!() };
    assert!(
        e.to_string().contains("memory cap of 16777216 bytes"),
        "{e}"
    );
}

#[tokio::test]
async fn a_trap_is_an_error_value_and_the_runtime_keeps_serving() {
    let rt = runtime();
    let trap = load(
        &rt,
        "trap",
        "trap",
        World::Fetcher,
        Limits::default(),
        Vec::new(),
    );
    let looping = load(
        &rt,
        "looping",
        "loop",
        World::Fetcher,
        limits(50, 64 << 20),
        Vec::new(),
    );
    let alloc = load(
        &rt,
        "alloc",
        "alloc",
        World::Fetcher,
        limits(10_000, 8 << 20),
        Vec::new(),
    );
    let hello = load(
        &rt,
        "hello",
        "ok",
        World::Fetcher,
        Limits::default(),
        Vec::new(),
    );
    for _ in 0..3 {
        let (result, output) = trap.handle_cron(1, outputs(Arc::from(Vec::new()))).await;
        assert_eq!(kind(&result), Some(TrapKind::Trap), "{result:?}");
        assert!(
            output.stderr.contains("trap guest panics on purpose"),
            "{output:?}"
        );
        assert_eq!(
            kind(
                &looping
                    .handle_cron(1, outputs(Arc::from(Vec::new())))
                    .await
                    .0
            ),
            Some(TrapKind::Timeout)
        );
        assert_eq!(
            kind(&alloc.handle_cron(1, outputs(Arc::from(Vec::new()))).await.0),
            Some(TrapKind::Memory)
        );
        assert!(
            hello
                .handle_cron(2, outputs(Arc::from(Vec::new())))
                .await
                .0
                .is_ok()
        );
    }
    let text = rt.metrics().encode();
    for (function, outcome) in [
        ("trap", "trap"),
        ("looping", "timeout"),
        ("alloc", "memory"),
        ("hello", "ok"),
    ] {
        let invocations =
            format!("weir_invocations_total{{function=\"{function}\",outcome=\"{outcome}\"}}");
        assert_eq!(
            sample(&text, &invocations),
            Some(3.0),
            "{invocations} in\n{text}"
        );
    }
    assert_eq!(
        sample(&text, r#"weir_traps_total{function="alloc",kind="memory"}"#),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"weir_traps_total{function="looping",kind="timeout"}"#
        ),
        Some(3.0)
    );
}

#[tokio::test]
async fn concurrent_invocations_get_separate_instances() {
    let rt = runtime();
    let hello = Arc::new(load(
        &rt,
        "hello",
        "ok",
        World::Fetcher,
        Limits::default(),
        Vec::new(),
    ));
    let calls = (0..32).map(|i| {
        let hello = Arc::clone(&hello);
        tokio::spawn(async move { hello.handle_cron(i, outputs(Arc::from(Vec::new()))).await })
    });
    for (i, call) in calls.enumerate() {
        let (result, output) = call.await.unwrap();
        assert!(result.is_ok());
        assert_eq!(output.stdout, format!("tick {i}\n"));
    }
}

#[tokio::test]
async fn transformer_returns_one_outcome_per_message() {
    let rt = runtime();
    let batch = load(
        &rt,
        "batch",
        "batch",
        World::Transformer,
        Limits::default(),
        Vec::new(),
    );
    let message = |offset: i64, value: &[u8]| KafkaMessage {
        topic: "t".into(),
        partition: 3,
        offset,
        timestamp_ms: Some(1),
        key: None,
        value: Some(value.to_vec()),
        headers: vec![("h".into(), None)],
    };
    let keyed = KafkaMessage {
        key: Some(b"k1".to_vec()),
        timestamp_ms: None,
        headers: vec![("h".into(), Some(b"v".to_vec())), ("g".into(), None)],
        ..message(9, b"{}")
    };
    let (result, _) = batch
        .handle_batch(&[message(7, br#"{"a":1}"#), message(8, b"not json"), keyed])
        .await;
    let output = result.unwrap();
    // Every field of a message reaches the guest; each row keeps its
    // message's index.
    let BatchOutput { tables, rejects } = output;
    let [TableOutput::Json { table, rows }] = tables.as_slice() else {
        panic!("expected JSON rows of one table, got {tables:?}");
    };
    assert_eq!(table, "rows");
    assert_eq!(
        rows,
        &[
            (
                0,
                r#"{"offset":7,"topic":"t","partition":3,"timestamp_ms":1,"key":null,"headers":[["h",null]],"a":1}"#
                    .to_owned()
            ),
            (
                2,
                r#"{"offset":9,"topic":"t","partition":3,"timestamp_ms":null,"key":"k1","headers":[["h","v"],["g",null]]}"#
                    .to_owned()
            ),
        ]
    );
    assert_eq!(rejects, [(1, "value is not a JSON object".to_owned())]);
}

#[tokio::test]
async fn components_of_the_wrong_world_or_no_component_at_all_are_refused() {
    let rt = runtime();
    let err = rt
        .load_file(
            "batch",
            &guest("batch"),
            World::Fetcher,
            settings(Limits::default(), Vec::new()),
        )
        .unwrap_err();
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("missing export `handle-cron-event`") && text.contains("handle-batch"),
        "{text}"
    );

    let err = rt
        .load(
            "junk",
            b"\0asm not really",
            World::Fetcher,
            settings(Limits::default(), Vec::new()),
        )
        .unwrap_err();
    assert!(matches!(err, LoadError::Compile { .. }), "{err:?}");
    let err = rt
        .load(
            "text",
            b"hello",
            World::Fetcher,
            settings(Limits::default(), Vec::new()),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`text` is not a valid WebAssembly component"),
        "{err}"
    );
}

#[tokio::test]
async fn a_component_built_for_spins_cron_trigger_runs_unmodified() {
    let rt = runtime();
    let spin = load(
        &rt,
        "spin-cron",
        "spin_cron",
        World::Fetcher,
        Limits::default(),
        Vec::new(),
    );
    let (result, output) = spin.handle_cron(42, outputs(Arc::from(Vec::new()))).await;
    assert!(result.unwrap().messages.is_empty());
    assert_eq!(output.stdout, "spin cron component at 42\n");
    let (result, _) = spin.handle_cron(43, outputs(Arc::from(Vec::new()))).await;
    match result {
        Err(InvokeError::Guest { message, .. }) => assert_eq!(message, "odd timestamp 43"),
        other => panic!("expected the component's own error, got {other:?}"),
    }
}
