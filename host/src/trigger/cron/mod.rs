//! The cron trigger: runs a component on a seconds-first schedule. One
//! component never runs twice at once (its triggers share a lock); ticks
//! that pass while it runs are skipped and counted, never queued. With
//! Kafka, each trigger runs on one host of the fleet ([`fleet`]), which
//! also keeps the trigger's feed ledger.

pub mod fleet;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, PoisonError};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use toml::Spanned;
use tracing::Instrument;

use self::fleet::{Fleet, LedgerRecord, LedgerState};
use super::ConfigCheck;
use crate::imports::feed::{FeedLedger, FeedObservation};
use crate::runtime::{CronInvocation, GuestOutput};
use crate::sink::Publish;
use crate::versions::Function;

/// One `[[trigger.cron]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronTriggerConfig {
    /// Trigger id; default `cron-<index>`.
    #[serde(default)]
    pub id: Option<String>,
    /// Component to run; must implement the `fetcher` world.
    pub component: Spanned<String>,
    /// Seconds-first, UTC: `sec min hour day-of-month month day-of-week [year]`.
    pub cron_expression: Spanned<String>,
    /// Kafka topics the function may send to; anything else is refused.
    #[serde(default)]
    pub outputs: Vec<Spanned<String>>,
    /// Variables for this trigger's invocations, over the component's own
    /// (templates allowed): lets one component serve several feeds.
    #[serde(default)]
    pub variables: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// A validated cron trigger.
#[derive(Debug, Clone)]
pub struct CronTrigger {
    /// Trigger id.
    pub id: String,
    /// Component id.
    pub component: String,
    /// The parsed schedule.
    pub schedule: cron::Schedule,
    /// Topics the function may send to.
    pub outputs: Arc<[String]>,
    /// Variables overriding the component's for this trigger.
    pub variables: BTreeMap<String, String>,
}

impl CronTrigger {
    /// The time between its next two ticks (a day if it has fewer).
    pub fn period(&self) -> std::time::Duration {
        let mut ticks = self.schedule.upcoming(Utc);
        match (ticks.next(), ticks.next()) {
            (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
            _ => std::time::Duration::from_secs(86_400),
        }
    }
}

impl CronTriggerConfig {
    pub(crate) fn validate(
        &self,
        v: &mut impl ConfigCheck,
        key: &str,
        index: usize,
    ) -> Option<CronTrigger> {
        let before = v.problem_count();
        v.check_component(&self.component, key);
        let expression = self.cron_expression.get_ref();
        let schedule = match cron::Schedule::from_str(expression) {
            Ok(schedule) => Some(schedule),
            Err(e) => {
                let fields = expression.split_whitespace().count();
                let hint = if fields == 5 {
                    "; weir's cron expressions are seconds-first: `sec min hour day-of-month month day-of-week [year]`, e.g. `*/15 * * * * *`"
                } else {
                    ""
                };
                v.report(
                    &self.cron_expression.span(),
                    format!("{key}.cron_expression"),
                    format!(
                        "invalid cron expression `{expression}`: {}{hint}",
                        cron_reason(&e, expression)
                    ),
                );
                None
            }
        };
        for topic in &self.outputs {
            if let Err(why) = super::check_topic(topic.get_ref()) {
                v.report(&topic.span(), format!("{key}.outputs"), why);
            }
        }
        let variables = v.expand_variables(&self.variables, key);
        let schedule = schedule.filter(|_| v.problem_count() == before)?;
        Some(CronTrigger {
            id: self.id.clone().unwrap_or_else(|| format!("cron-{index}")),
            component: self.component.get_ref().clone(),
            schedule,
            outputs: self.outputs.iter().map(|t| t.get_ref().clone()).collect(),
            variables,
        })
    }
}

/// The `cron` crate's message without its echo of the input and caret line.
fn cron_reason(e: &cron::error::Error, expression: &str) -> String {
    let text = e.to_string();
    let reason = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && *l != expression.trim() && !l.chars().all(|c| c == '^'));
    reason.map_or_else(
        || "not a valid schedule".to_owned(),
        |l| l.trim_end_matches('.').to_owned(),
    )
}

/// A running cron trigger: its function and the lock its function's
/// triggers share.
#[derive(Debug, Clone)]
pub struct CronRunner {
    trigger: CronTrigger,
    function: Arc<Function>,
    running: Arc<Mutex<()>>,
    ledger: Arc<FeedLedger>,
    fleet: Option<Arc<Fleet>>,
    /// With a fleet: where this host's reading of the trigger's ledger in
    /// Kafka ends (the offset after the last record it read or wrote);
    /// `None` until read, and again once another host is found writing.
    known: Arc<std::sync::Mutex<Option<i64>>>,
}

impl CronRunner {
    /// Prepares `trigger`; `running` must be the same lock for every
    /// trigger of the component. With a `fleet`, it ticks only while this
    /// host owns it.
    pub fn new(
        trigger: CronTrigger,
        function: Arc<Function>,
        running: Arc<Mutex<()>>,
        ledger: Arc<FeedLedger>,
        fleet: Option<Arc<Fleet>>,
    ) -> Self {
        Self {
            trigger,
            function,
            running,
            ledger,
            fleet,
            known: Arc::default(),
        }
    }

    fn known(&self) -> Option<i64> {
        *self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_known(&self, known: Option<i64>) {
        *self.known.lock().unwrap_or_else(PoisonError::into_inner) = known;
    }

    /// Appends `record` to the fleet's ledger, moving `known` past it.
    async fn append(&self, fleet: &Fleet, record: LedgerRecord) -> anyhow::Result<()> {
        let end = fleet.record(record).await?;
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.is_some() {
            *known = Some(end);
        }
        Ok(())
    }

    /// Whether this host runs the tick at `at`: always without a fleet;
    /// with one, while it owns the trigger, after reading the trigger's
    /// ledger once per gain of ownership (`synced`: the gain last read).
    async fn owns(&self, at: DateTime<Utc>, synced: &mut Option<u64>) -> bool {
        let Some(fleet) = &self.fleet else {
            return true;
        };
        let Some(gained) = fleet.owns(&self.trigger.id) else {
            *synced = None;
            // Not this host's trigger: no exchange of it with the brokers
            // to report (the fleet's own consumer keeps asking them).
            self.brokers_answered(true);
            return false;
        };
        if *synced == Some(gained) && self.known().is_some() {
            return true;
        }
        match self.read_ledger(fleet, at).await {
            Ok(()) => {
                *synced = Some(gained);
                true
            }
            Err(e) => {
                tracing::error!(trigger = %self.trigger.id, error = format!("{e:#}"), "cannot read the trigger's feed ledger from Kafka; tick skipped");
                self.brokers_answered(false);
                false
            }
        }
    }

    /// Takes the trigger's ledger over from whichever host ran it last. A
    /// version that host began to publish and did not finish is given up.
    async fn read_ledger(&self, fleet: &Fleet, at: DateTime<Utc>) -> anyhow::Result<()> {
        let id = &self.trigger.id;
        let (record, end) = fleet.read_ledger(id).await?;
        self.set_known(Some(end));
        let Some(record) = record else {
            return Ok(());
        };
        tracing::info!(trigger = %id, from = %record.host, state = ?record.state, feed_timestamp = ?record.feed_timestamp, "took over the trigger's feed ledger");
        let Some(timestamp) = record.feed_timestamp else {
            return Ok(());
        };
        self.ledger.raise(id, timestamp)?;
        if record.state == LedgerState::Publishing {
            self.give_up(fleet, at, timestamp).await;
        }
        Ok(())
    }

    /// Records feed version `timestamp` as incomplete: cut short, and
    /// never published again.
    async fn give_up(&self, fleet: &Fleet, at: DateTime<Utc>, timestamp: u64) {
        let id = &self.trigger.id;
        tracing::warn!(trigger = %id, feed_timestamp = timestamp, "a feed version was cut short while being published; it is not published again");
        self.function
            .current()
            .component
            .metrics()
            .feed_versions_incomplete
            .with_label_values(&[self.trigger.component.as_str(), id])
            .inc();
        if let Err(e) = self.ledger.raise(id, timestamp) {
            tracing::error!(trigger = %id, error = %e, "cannot record the feed version in the ledger file");
        }
        let record = self.record(at, LedgerState::Incomplete, Some(timestamp));
        if let Err(e) = self.append(fleet, record).await {
            tracing::error!(trigger = %id, error = format!("{e:#}"), "cannot record the incomplete feed version in Kafka");
        }
    }

    /// Records whether the brokers answered this trigger's last exchange
    /// (`weir_kafka_reachable`, which `/readyz` reads).
    fn brokers_answered(&self, answered: bool) {
        let changed = self
            .function
            .current()
            .component
            .metrics()
            .set_kafka_reachable(&self.trigger.id, answered);
        match (changed, answered) {
            (true, true) => {
                tracing::info!(trigger = %self.trigger.id, "the Kafka brokers answer again")
            }
            (true, false) => {
                tracing::warn!(trigger = %self.trigger.id, "the Kafka brokers do not answer")
            }
            (false, _) => {}
        }
    }

    /// Counts a fetch whose messages could not be published; the brokers
    /// did not answer.
    fn publish_failed(&self) {
        self.function
            .current()
            .component
            .metrics()
            .feed_publish_failures
            .with_label_values(&[self.trigger.component.as_str(), &self.trigger.id])
            .inc();
        self.brokers_answered(false);
    }

    /// Records that this host is about to publish feed version `version`,
    /// and whether it may: not if another host wrote to the trigger's
    /// ledger since this host last read it (both believed they ran the
    /// trigger; the other wrote first). Then the tick publishes nothing
    /// and the next one reads the ledger again, if this host still owns
    /// the trigger.
    async fn claim(&self, fleet: &Fleet, at: DateTime<Utc>, version: u64) -> bool {
        let id = &self.trigger.id;
        let Some(known) = self.known() else {
            // `owns` reads the ledger before a tick publishes, and a claim
            // that fails forgets it only after.
            tracing::error!(trigger = %id, "claiming a feed version without having read the ledger; nothing published");
            return false;
        };
        let record = self.record(at, LedgerState::Publishing, Some(version));
        match fleet.claim(record, known).await {
            Ok(Some(end)) => {
                self.set_known(Some(end));
                true
            }
            Ok(None) => {
                tracing::warn!(trigger = %id, feed_timestamp = version, "another host wrote this trigger's feed ledger since this host read it; nothing published");
                self.set_known(None);
                self.function
                    .current()
                    .component
                    .metrics()
                    .cron_fenced
                    .with_label_values(&[id])
                    .inc();
                false
            }
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "cannot record the feed version about to be published; nothing published"
                );
                self.function.record_error(format!("feed ledger: {e:#}"));
                self.publish_failed();
                // If the record landed after all, it lies between this
                // host's reading and its next claim, which then fails: the
                // version is published at most once either way.
                false
            }
        }
    }

    fn record(
        &self,
        at: DateTime<Utc>,
        state: LedgerState,
        feed_timestamp: Option<u64>,
    ) -> LedgerRecord {
        LedgerRecord {
            trigger: self.trigger.id.clone(),
            host: String::new(),
            tick: at.timestamp(),
            state,
            feed_timestamp,
        }
    }

    /// Runs on schedule until `shutdown`; an invocation under way finishes first.
    pub async fn run(self, publish: Arc<impl Publish>, shutdown: CancellationToken) {
        let function = self.trigger.component.clone();
        let Some(mut next) = self.trigger.schedule.after(&Utc::now()).next() else {
            tracing::warn!(%function, trigger = %self.trigger.id, "cron schedule has no future ticks");
            return;
        };
        let mut synced = None;
        loop {
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let _running = self.running.lock().await;
            if self.owns(next, &mut synced).await
                && !self.tick(next, publish.as_ref()).await
                && let Some(fleet) = &self.fleet
                && self.known().is_some()
            {
                // A failed tick is still a tick: the fleet sees its owner
                // alive (unless another host was found running it).
                let record = self.record(
                    next,
                    LedgerState::Ticked,
                    self.ledger.last(&self.trigger.id),
                );
                if let Err(e) = self.append(fleet, record).await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "cannot record the tick in the feed ledger"
                    );
                    self.brokers_answered(false);
                }
            }
            let now = Utc::now();
            let (following, missed) = next_after(&self.trigger.schedule, next, now);
            if missed > 0 {
                tracing::warn!(%function, trigger = %self.trigger.id, missed, "skipped cron ticks while the previous run was still going");
                self.function
                    .current()
                    .component
                    .metrics()
                    .missed_ticks
                    .with_label_values(&[function.as_str()])
                    .inc_by(missed);
            }
            let Some(following) = following else { return };
            next = following;
        }
    }

    /// Invokes the component once for the tick scheduled at `at` and
    /// publishes what it sent. Errors are logged and counted, never raised.
    pub async fn tick(&self, at: DateTime<Utc>, publish: &impl Publish) -> bool {
        let function = self.trigger.component.as_str();
        let span = tracing::info_span!("cron", function, trigger = %self.trigger.id, tick = %at);
        async {
            let timestamp = u64::try_from(at.timestamp()).unwrap_or_default();
            let feed_name = self.trigger.id.clone();
            let last = self.ledger.last(&feed_name);
            // One version for the call and its publish: a swap waits.
            let in_use = self.function.checkout().await;
            let metrics = Arc::clone(in_use.component.metrics());
            let invocation = CronInvocation {
                outputs: Arc::clone(&self.trigger.outputs),
                variables: self.trigger.variables.clone(),
                feed: Some(FeedObservation::new(
                    feed_name.clone(),
                    last,
                    Arc::from(function),
                    metrics,
                )),
            };
            let (result, output) = in_use.component.handle_cron(timestamp, invocation).await;
            log_output(function, &output);
            let result = match result {
                Ok(result) => result,
                Err(e) => {
                    tracing::error!(outcome = e.outcome(), error = %e, "cron invocation failed");
                    self.function.record_error(e.to_string());
                    return false;
                }
            };
            let count = result.messages.len();
            let published = result
                .feed_timestamp
                .filter(|ts| last.is_none_or(|l| *ts > l));
            if let (Some(fleet), Some(version)) = (&self.fleet, published) {
                if !self.claim(fleet, at, version).await {
                    return false;
                }
                crate::failpoint::hit("cron-after-publishing");
            }
            if let Err(e) = publish.publish(function, result.messages).await {
                tracing::error!(
                    error = format!("{e:#}"),
                    count,
                    "publishing the invocation's messages failed"
                );
                self.function.record_error(format!("publishing: {e:#}"));
                self.publish_failed();
                // Some messages may have landed: with a fleet the version
                // is published at most once.
                if let (Some(fleet), Some(version)) = (&self.fleet, published) {
                    self.give_up(fleet, at, version).await;
                }
                return false;
            }
            if let Some(published) = published
                && let Err(e) = self.ledger.commit(&feed_name, published)
            {
                tracing::error!(
                    error = format!("{e:#}"),
                    "recording the published feed timestamp failed"
                );
            }
            if let Some(fleet) = &self.fleet {
                let state = if published.is_some() {
                    LedgerState::Published
                } else {
                    LedgerState::Ticked
                };
                let record = self.record(at, state, self.ledger.last(&feed_name));
                let recorded = self.append(fleet, record).await;
                if let Err(e) = &recorded {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "cannot record the tick in the feed ledger"
                    );
                }
                self.brokers_answered(recorded.is_ok());
            } else if count > 0 {
                self.brokers_answered(true);
            }
            tracing::debug!(count, "cron invocation succeeded");
            true
        }
        .instrument(span)
        .await
    }
}

/// The first tick of `schedule` after `now`, and how many ticks after
/// `last` were at or before `now` (missed).
fn next_after(
    schedule: &cron::Schedule,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, u64) {
    let mut missed = 0;
    for tick in schedule.after(&last) {
        if tick > now {
            return (Some(tick), missed);
        }
        missed += 1;
    }
    (None, missed)
}

/// Logs what a guest printed, one event per line, under the function's name.
pub(crate) fn log_output(function: &str, output: &GuestOutput) {
    for line in output.stdout.lines() {
        tracing::info!(target: "weir::guest", function, stream = "stdout", "{line}");
    }
    for line in output.stderr.lines() {
        tracing::warn!(target: "weir::guest", function, stream = "stderr", "{line}");
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::{TimeZone, Utc};

    use super::next_after;

    #[test]
    fn counts_ticks_that_passed_during_a_run() {
        let every_second = cron::Schedule::from_str("* * * * * *").unwrap();
        let last = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let now = last + chrono::Duration::milliseconds(3500);
        let (next, missed) = next_after(&every_second, last, now);
        assert_eq!(missed, 3);
        assert_eq!(next, Some(last + chrono::Duration::seconds(4)));
        let (_, none) = next_after(
            &every_second,
            last,
            last + chrono::Duration::milliseconds(400),
        );
        assert_eq!(none, 0);
    }
}
