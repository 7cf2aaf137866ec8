//! Progress on stderr (indicatif bars on a terminal, plain lines otherwise,
//! nothing with `-q`) and the human-readable numbers used in summaries.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `1.5 GB`-style sizes, decimal units as `pg_size_pretty` does not (it uses
/// 1024 but says kB); decimal is what rates in MB/s use, so sizes match them.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// `1,234,567`-style counts.
pub fn human_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Totals shared by every table of a run, for the overall bar and plain lines.
#[derive(Default)]
struct Totals {
    rows: AtomicU64,
    bytes: AtomicU64,
    tables_done: AtomicU64,
}

/// Progress on stderr: indicatif bars on a terminal, a plain line every few
/// seconds otherwise, nothing with `-q`. Updated per block, never per row.
pub struct Progress {
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    totals: Arc<Totals>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

/// One table's progress; cheap to update.
pub struct TableProgress {
    bar: Option<ProgressBar>,
    totals: Arc<Totals>,
    rows: u64,
    bytes: u64,
}

impl Progress {
    /// Starts progress for `tables` tables.
    pub fn new(label: &'static str, tables: usize, quiet: bool) -> Progress {
        let totals = Arc::new(Totals::default());
        let stop = Arc::new(AtomicBool::new(false));
        let tty = std::io::stderr().is_terminal();
        let (multi, overall, ticker) = if quiet {
            (None, None, None)
        } else if tty {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let overall = multi.add(ProgressBar::new(tables as u64));
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30}] {pos}/{len} tables {msg} {elapsed}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            overall.set_prefix(label);
            (Some(multi), Some(overall), None)
        } else {
            let (t, s) = (totals.clone(), stop.clone());
            let n = tables as u64;
            let handle = std::thread::spawn(move || plain_lines(label, n, t, s));
            (None, None, Some(handle))
        };
        Progress { multi, overall, totals, stop, ticker }
    }

    /// A bar for one table, sized by the catalog's row estimate.
    pub fn table(&self, name: &str, estimated_rows: Option<i64>) -> TableProgress {
        let bar = self.multi.as_ref().map(|m| {
            let len = estimated_rows.filter(|r| *r > 0).map(|r| r as u64);
            let bar = m.add(ProgressBar::new(len.unwrap_or(0)));
            let template = if len.is_some() {
                "  {prefix:40!} [{bar:20}] {human_pos}/~{human_len} rows {msg} {per_sec} ETA {eta}"
            } else {
                "  {prefix:40!} {human_pos} rows {msg} {per_sec}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(name.to_string());
            bar
        });
        TableProgress { bar, totals: self.totals.clone(), rows: 0, bytes: 0 }
    }
}

impl Drop for Progress {
    /// Clears the bars and stops the plain ticker.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if let Some(o) = self.overall.take() {
            o.finish_and_clear();
        }
        if let Some(m) = self.multi.take() {
            let _ = m.clear();
        }
    }
}

impl TableProgress {
    /// Reports the table's totals so far (records may include the header).
    pub fn update(&mut self, rows: u64, bytes: u64) {
        let (dr, db) = (rows.saturating_sub(self.rows), bytes.saturating_sub(self.bytes));
        self.rows = rows;
        self.bytes = bytes;
        self.totals.rows.fetch_add(dr, Ordering::Relaxed);
        self.totals.bytes.fetch_add(db, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_position(rows);
            b.set_message(human_bytes(bytes));
        }
    }

    /// Marks the table done.
    pub fn finish(self, overall: &Progress) {
        self.totals.tables_done.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
        if let Some(o) = &overall.overall {
            o.inc(1);
            o.set_message(human_bytes(self.totals.bytes.load(Ordering::Relaxed)));
        }
    }
}

/// Seconds between plain progress lines: `PGBARGE_PROGRESS_SECS` (up to a
/// day), default 10.
///
/// # Errors
/// A usage error for a value that is not a number of seconds in range;
/// commands call this before they start, so a bad value stops nothing midway.
pub fn plain_interval() -> crate::error::Result<Duration> {
    crate::limits::seconds_from_env("PGBARGE_PROGRESS_SECS", Duration::from_secs(10), 86_400.0)
}

fn plain_lines(label: &'static str, tables: u64, totals: Arc<Totals>, stop: Arc<AtomicBool>) {
    let start = Instant::now();
    let mut last = Instant::now();
    // Checked before any command starts (cmd::run); the default is a fallback only.
    let interval = plain_interval().unwrap_or(Duration::from_secs(10));
    while !stop.load(Ordering::Relaxed) {
        // Parked rather than asleep, so Drop can wake it and nobody waits.
        std::thread::park_timeout(interval.min(Duration::from_millis(200)));
        if last.elapsed() >= interval {
            last = Instant::now();
            let bytes = totals.bytes.load(Ordering::Relaxed);
            let secs = start.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "{label}: {}/{tables} tables, {} rows, {} ({}/s), {:.0} s",
                totals.tables_done.load(Ordering::Relaxed),
                human_count(totals.rows.load(Ordering::Relaxed)),
                human_bytes(bytes),
                human_bytes((bytes as f64 / secs) as u64),
                secs
            );
        }
    }
}

/// Prints rows (the first one the header) in aligned columns two spaces
/// apart, the last column unpadded; `right_aligned(column)` says which
/// columns (numbers) align to the right.
pub fn print_columns(rows: &[Vec<String>], right_aligned: impl Fn(usize) -> bool) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
                break;
            }
            let pad = " ".repeat(widths[c] - cell.chars().count());
            if right_aligned(c) {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
            line.push_str("  ");
        }
        println!("{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_count(1_234_567), "1,234,567");
        assert_eq!(human_count(12), "12");
    }
}
