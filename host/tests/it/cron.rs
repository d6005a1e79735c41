//! The cron trigger on a real clock: ticks, no overlap, missed ticks.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weir::World;
use weir::imports::producer::OutMessage;
use weir::manifest::Limits;
use weir::sink::Publish;
use weir::trigger::cron::{CronRunner, CronTrigger};
use weir::versions::Function;

use crate::support::{load, runtime, sample};

/// Keeps what each successful tick published.
#[derive(Debug, Default)]
struct Collect(Mutex<Vec<OutMessage>>);

impl Publish for Collect {
    async fn publish(&self, _function: &str, messages: Vec<OutMessage>) -> anyhow::Result<()> {
        self.0.lock().unwrap().extend(messages);
        Ok(())
    }
}

/// A function running `component` (what `weir up` hands a cron trigger).
fn function(component: weir::LoadedComponent) -> Arc<Function> {
    Arc::new(Function::new(Arc::new(component), Vec::new()))
}

fn every_second(id: &str, component: &str, outputs: &[&str]) -> CronTrigger {
    CronTrigger {
        id: id.into(),
        component: component.into(),
        schedule: cron::Schedule::from_str("* * * * * *").unwrap(),
        outputs: outputs.iter().map(|s| (*s).to_owned()).collect(),
        variables: Default::default(),
    }
}

#[tokio::test]
async fn a_one_second_schedule_runs_at_least_twice_in_three_seconds() {
    let rt = runtime();
    let env = vec![("TOPIC".to_owned(), "ticks".to_owned())];
    let hello = function(load(
        &rt,
        "hello",
        "ok",
        World::Fetcher,
        Limits::default(),
        env,
    ));
    let runner = CronRunner::new(
        every_second("t", "hello", &["ticks"]),
        hello,
        Arc::default(),
        Arc::default(),
        None,
    );
    let collected = Arc::new(Collect::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(runner.run(Arc::clone(&collected), shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    let ticks: Vec<u64> = collected
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|m| {
            String::from_utf8_lossy(m.key.as_deref().unwrap())
                .parse()
                .unwrap()
        })
        .collect();
    assert!(ticks.len() >= 2, "only {} ticks in 3 s", ticks.len());
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "ticks are one second apart: {ticks:?}"
    );
    let text = rt.metrics().encode();
    assert!(
        sample(
            &text,
            r#"weir_invocations_total{function="hello",outcome="ok"}"#
        )
        .unwrap()
            >= 2.0
    );
}

#[tokio::test]
async fn runs_of_one_component_never_overlap_and_missed_ticks_are_counted() {
    let rt = runtime();
    let env = vec![("SLEEP_MS".to_owned(), "1300".to_owned())];
    let sleeper = function(load(
        &rt,
        "sleeper",
        "sleep",
        World::Fetcher,
        Limits::default(),
        env,
    ));
    // Two triggers of one component share its lock, as `weir up` arranges.
    let lock = Arc::default();
    let collected = Arc::new(Collect::default());
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for id in ["a", "b"] {
        let runner = CronRunner::new(
            every_second(id, "sleeper", &["sleeps"]),
            Arc::clone(&sleeper),
            Arc::clone(&lock),
            Arc::default(),
            None,
        );
        tasks.push(tokio::spawn(
            runner.run(Arc::clone(&collected), shutdown.clone()),
        ));
    }
    tokio::time::sleep(Duration::from_millis(5500)).await;
    shutdown.cancel();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
    let mut runs: Vec<(u128, u128)> = collected
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.value).into_owned();
            let (start, end) = text.split_once(',').unwrap();
            (start.parse().unwrap(), end.parse().unwrap())
        })
        .collect();
    runs.sort();
    assert!(runs.len() >= 2, "only {} runs", runs.len());
    for pair in runs.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "runs overlap: {pair:?}");
    }
    let text = rt.metrics().encode();
    let missed = sample(&text, r#"weir_missed_ticks_total{function="sleeper"}"#).unwrap_or(0.0);
    assert!(missed >= 1.0, "no missed ticks counted:\n{text}");
}

#[tokio::test]
async fn a_failing_tick_is_counted_and_publishes_nothing() {
    let rt = runtime();
    let trap = function(load(
        &rt,
        "trap",
        "trap",
        World::Fetcher,
        Limits::default(),
        Vec::new(),
    ));
    let runner = CronRunner::new(
        every_second("t", "trap", &[]),
        trap,
        Arc::default(),
        Arc::default(),
        None,
    );
    let collected = Collect::default();
    assert!(!runner.tick(chrono::Utc::now(), &collected).await);
    assert!(collected.0.lock().unwrap().is_empty());
    let text = rt.metrics().encode();
    assert_eq!(
        sample(
            &text,
            r#"weir_invocations_total{function="trap",outcome="trap"}"#
        ),
        Some(1.0)
    );
}
