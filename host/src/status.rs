//! The live status of `weir up`: per function, invocations, errors, rows
//! written, partitions owned, lag and feed age, read from the host's own
//! metrics. Redrawn in place on a terminal; a log line per function
//! otherwise. A transform that owns no partition while messages wait is
//! called out, never shown as idle.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::versions::Functions;

/// One function's line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The component id.
    pub function: String,
    /// Invocations that returned `ok`.
    pub ok: f64,
    /// Invocations that failed (error, trap, timeout, memory).
    pub failed: f64,
    /// Rows committed to Delta, all tables.
    pub rows: f64,
    /// Dead letters, all reasons.
    pub dead_letters: f64,
    /// Messages not yet in Delta, all partitions of its topics (whoever owns them).
    pub lag: f64,
    /// Partitions this host's trigger owns (transforms).
    pub partitions: Option<f64>,
    /// Age of the oldest feed it fetched, seconds (fetchers).
    pub feed_age: Option<f64>,
}

/// The current lines of `functions` (id and trigger ids), in that order.
pub fn lines<'a>(
    metrics: &Metrics,
    functions: impl Iterator<Item = (&'a str, &'a [String])>,
) -> Vec<Line> {
    #[expect(
        clippy::cast_precision_loss,
        reason = "seconds since 1970 fit an f64 exactly"
    )]
    let now = chrono::Utc::now().timestamp() as f64;
    let metrics = metrics.snapshot();
    functions
        .map(|(id, triggers)| {
            let feed_age = triggers
                .iter()
                .filter_map(|feed| {
                    metrics.value("weir_feed_header_timestamp_seconds", &[("feed", feed)])
                })
                .map(|ts| now - ts)
                .reduce(f64::max);
            let ok = metrics.sum(
                "weir_invocations_total",
                &[("function", id), ("outcome", "ok")],
            );
            Line {
                function: id.to_owned(),
                ok,
                failed: metrics.sum("weir_invocations_total", &[("function", id)]) - ok,
                rows: metrics.sum("weir_delta_rows_written_total", &[("function", id)]),
                dead_letters: metrics.sum("weir_dead_letters_total", &[("function", id)]),
                lag: metrics.sum("weir_kafka_topic_lag", &[("function", id)]),
                partitions: metrics.value("weir_kafka_assigned_partitions", &[("function", id)]),
                feed_age,
            }
        })
        .collect()
}

/// The lines as a small table, then a warning per transform that waits.
pub fn table(lines: &[Line]) -> String {
    let mut out = format!(
        "{:<24} {:>10} {:>8} {:>12} {:>8} {:>6} {:>8} {:>9}\n",
        "function", "ok", "failed", "rows", "dead", "parts", "lag", "feed age"
    );
    for l in lines {
        let age = l
            .feed_age
            .map_or_else(|| "-".to_owned(), |a| format!("{a:.0} s"));
        let parts = l
            .partitions
            .map_or_else(|| "-".to_owned(), |p| p.to_string());
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>8} {:>12} {:>8} {:>6} {:>8} {:>9}",
            l.function, l.ok, l.failed, l.rows, l.dead_letters, parts, l.lag, age
        );
    }
    for l in lines.iter().filter(|l| l.stalled()) {
        let _ = writeln!(out, "! {}", l.stall_warning());
    }
    out
}

impl Line {
    /// A transform that owns no partition while its topics hold messages
    /// its group has not committed.
    pub fn stalled(&self) -> bool {
        self.partitions == Some(0.0) && self.lag > 0.0
    }

    fn stall_warning(&self) -> String {
        format!(
            "{} owns no partition while {} message(s) wait: another host holds them, or the broker \
             still assigns them to a member that died (until its session times out)",
            self.function, self.lag
        )
    }
}

/// Shows the status until `shutdown`: every `tty_every` in place on a
/// terminal, else every `log_every` as log lines.
pub async fn run(
    metrics: Arc<Metrics>,
    functions: Arc<Functions>,
    tty_every: Duration,
    log_every: Duration,
    shutdown: CancellationToken,
) {
    let tty = std::io::stdout().is_terminal();
    let every = if tty { tty_every } else { log_every };
    let mut drawn = 0;
    loop {
        let last = tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(every) => false,
        };
        let ids = functions
            .iter()
            .map(|f| (f.id.as_str(), f.triggers.as_slice()));
        let lines = lines(&metrics, ids);
        if tty && !last {
            let text = table(&lines);
            let mut stdout = std::io::stdout().lock();
            // Up over the previous table, then clear to the end of the screen.
            if drawn > 0 {
                let _ = write!(stdout, "\x1b[{drawn}A\x1b[J");
            }
            let _ = write!(stdout, "{text}");
            let _ = stdout.flush();
            drawn = text.lines().count();
        } else {
            // Off a terminal, and once more at shutdown: what the run did.
            for l in &lines {
                tracing::info!(function = %l.function, ok = l.ok, failed = l.failed, rows = l.rows, dead_letters = l.dead_letters, partitions = l.partitions, lag = l.lag, feed_age_s = l.feed_age.map(f64::round), "status");
                if l.stalled() {
                    tracing::warn!(function = %l.function, waiting = l.lag, "{}", l.stall_warning());
                }
            }
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{lines, table};
    use crate::metrics::Metrics;

    #[test]
    fn lines_add_up_each_functions_series() {
        let m = Metrics::new();
        m.init_function("f", "transformer");
        m.invocations.with_label_values(&["f", "ok"]).inc_by(5);
        m.invocations.with_label_values(&["f", "trap"]).inc_by(2);
        m.delta_rows_written
            .with_label_values(&["f", "a"])
            .inc_by(10);
        m.delta_rows_written
            .with_label_values(&["f", "b"])
            .inc_by(7);
        m.delta_rows_written
            .with_label_values(&["g", "a"])
            .inc_by(100);
        m.kafka_topic_lag.with_label_values(&["f", "t"]).set(3);
        m.kafka_topic_lag.with_label_values(&["f", "u"]).set(4);
        m.kafka_topic_lag.with_label_values(&["g", "t"]).set(50);
        m.kafka_assigned_partitions.with_label_values(&["f"]).set(2);
        m.feed_timestamp.with_label_values(&["poll"]).set(0.0);
        let triggers = vec!["poll".to_owned()];
        let got = lines(&m, [("f", triggers.as_slice())].into_iter());
        assert_eq!(got.len(), 1);
        let l = &got[0];
        assert_eq!(
            (l.ok, l.failed, l.rows, l.lag, l.dead_letters),
            (5.0, 2.0, 17.0, 7.0, 0.0)
        );
        assert!(l.feed_age.is_some_and(|a| a > 1.7e9), "{:?}", l.feed_age);
        assert_eq!(l.partitions, Some(2.0));
        assert!(!l.stalled());
        let text = table(&got);
        assert!(text.starts_with("function"), "{text}");
        assert!(text.lines().nth(1).unwrap().starts_with("f "), "{text}");
        assert_eq!(text.lines().count(), 2, "no warning: {text}");
    }

    #[test]
    fn a_transform_without_partitions_while_messages_wait_is_called_out() {
        let m = Metrics::new();
        m.init_function("f", "transformer");
        m.init_consumer("k", "f", &["t".to_owned()]);
        let idle = || lines(&m, [("f", &[][..])].into_iter());
        // Nothing waiting: owning nothing is fine.
        assert!(!idle()[0].stalled());
        m.kafka_topic_lag.with_label_values(&["f", "t"]).set(1284);
        let got = idle();
        assert!(got[0].stalled());
        let text = table(&got);
        let warning = text.lines().last().unwrap();
        assert!(
            warning.starts_with("! f owns no partition while 1284 message(s) wait"),
            "{text}"
        );
        // Once it owns a partition, the lag is just lag.
        m.kafka_assigned_partitions.with_label_values(&["f"]).set(3);
        assert!(!idle()[0].stalled());
    }
}
