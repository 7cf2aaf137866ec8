//! Progress on stderr (indicatif bars on a terminal, plain lines otherwise,
//! nothing with `-q`) and the human-readable numbers used in summaries.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{HumanCount, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `1.5 GB`-style sizes, decimal units as `pg_size_pretty` does not (it uses
/// 1024 but says kB); decimal is what rates in MB/s use, so sizes match them.
///
/// Not indicatif's `DecimalBytes`: it prints two decimals (`60.39 MB`), and
/// the backup summary's line, with three sizes on it, then passes 80 columns.
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

/// `1 table`, `2 tables`, `1,000 rows`: a count with its noun.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", HumanCount(n), if n == 1 { one } else { many })
}

/// `950`, `162.5k`, `1.2M`, `3.4G`: a count short enough for a bar.
pub fn human_short(n: f64) -> String {
    if n < 1000.0 {
        return format!("{n:.0}");
    }
    let (v, unit) = if n < 1e6 {
        (n / 1e3, "k")
    } else if n < 1e9 {
        (n / 1e6, "M")
    } else {
        (n / 1e9, "G")
    };
    format!("{v:.1}{unit}")
}

/// Totals shared by every table of a run, for the overall bar and plain lines.
#[derive(Default)]
struct Totals {
    rows: AtomicU64,
    bytes: AtomicU64,
    tables_done: AtomicU64,
    /// Sum over tables of each one's done part in thousandths (1000 when
    /// finished; rows against the estimate while running), so the overall
    /// bar moves while a table loads, not only when it ends.
    permille: AtomicU64,
}

/// The multi-bars on screen, so that [`clear_all`] can take them down before
/// an error is printed, whoever still holds a [`Progress`].
static ON_SCREEN: std::sync::Mutex<Vec<(u64, MultiProgress)>> = std::sync::Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Clears every progress bar from the terminal and keeps them from being
/// drawn again: called before an error or a summary is printed.
pub fn clear_all() {
    let bars = std::mem::take(&mut *ON_SCREEN.lock().unwrap_or_else(|p| p.into_inner()));
    for (_, m) in bars {
        let _ = m.clear();
        m.set_draw_target(ProgressDrawTarget::hidden());
    }
}

/// Progress on stderr: indicatif bars on a terminal, a plain line every few
/// seconds otherwise, nothing with `-q`. Updated per block, never per row.
pub struct Progress {
    id: u64,
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    totals: Arc<Totals>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

/// One table's progress; cheap to update.
pub struct TableProgress {
    bar: Option<ProgressBar>,
    overall: Option<ProgressBar>,
    totals: Arc<Totals>,
    rows: u64,
    bytes: u64,
    estimate: Option<u64>,
    permille: u64,
}

impl Progress {
    /// Starts progress for `tables` tables.
    ///
    /// Lines are laid out to fit 80 columns: the bars take what the
    /// terminal's width leaves, and long table names are cut.
    pub fn new(label: &'static str, tables: usize, quiet: bool) -> Progress {
        let totals = Arc::new(Totals::default());
        let stop = Arc::new(AtomicBool::new(false));
        let tty = std::io::stderr().is_terminal();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (multi, overall, ticker) = if quiet {
            (None, None, None)
        } else if tty {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let overall = multi.add(ProgressBar::new(tables as u64 * 1000));
            let (t, n) = (totals.clone(), tables as u64);
            let done = move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(
                    w,
                    "{}/{}",
                    t.tables_done.load(Ordering::Relaxed),
                    counted(n, "table", "tables")
                );
            };
            let t = totals.clone();
            let sofar = move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(
                    w,
                    "{} rows, {}",
                    human_short(t.rows.load(Ordering::Relaxed) as f64),
                    human_bytes(t.bytes.load(Ordering::Relaxed))
                );
            };
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{wide_bar}] {done} · {sofar} · {elapsed}",
                )
                .expect("valid template")
                .with_key("done", done)
                .with_key("sofar", sofar)
                .progress_chars("=> "),
            );
            overall.set_prefix(label);
            overall.enable_steady_tick(Duration::from_millis(250));
            ON_SCREEN.lock().unwrap_or_else(|p| p.into_inner()).push((id, multi.clone()));
            (Some(multi), Some(overall), None)
        } else {
            let (t, s) = (totals.clone(), stop.clone());
            let n = tables as u64;
            let handle = std::thread::spawn(move || plain_lines(label, n, t, s));
            (None, None, Some(handle))
        };
        Progress { id, multi, overall, totals, stop, ticker }
    }

    /// Prints a line on stderr above the bars (plainly when there are none),
    /// even with `-q`: it is for warnings the user must see.
    pub fn note(&self, line: &str) {
        match &self.multi {
            Some(m) if m.println(line).is_ok() => {}
            _ => eprintln!("{line}"),
        }
    }

    /// A bar for one table, sized by the catalog's row estimate.
    pub fn table(&self, name: &str, estimated_rows: Option<i64>) -> TableProgress {
        let estimate = estimated_rows.filter(|r| *r > 0).map(|r| r as u64);
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(estimate.unwrap_or(0)));
            let rows = |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = match s.len() {
                    Some(len) if len > 0 => write!(
                        w,
                        "{}/~{} rows",
                        human_short(s.pos() as f64),
                        human_short(len as f64)
                    ),
                    _ => write!(w, "{} rows", human_short(s.pos() as f64)),
                };
            };
            let rate = |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{} rows/s", human_short(s.per_sec()));
            };
            let template = if estimate.is_some() {
                "  {prefix:24!} [{wide_bar}] {rows} {rate} ETA {eta}"
            } else {
                "  {prefix:24!} {rows} {rate}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .with_key("rows", rows)
                    .with_key("rate", rate)
                    .progress_chars("=> "),
            );
            bar.set_prefix(name.to_string());
            bar
        });
        TableProgress {
            bar,
            overall: self.overall.clone(),
            totals: self.totals.clone(),
            rows: 0,
            bytes: 0,
            estimate,
            permille: 0,
        }
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
            // No bar a worker still holds may draw again.
            m.set_draw_target(ProgressDrawTarget::hidden());
            ON_SCREEN.lock().unwrap_or_else(|p| p.into_inner()).retain(|(id, _)| *id != self.id);
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
        if let Some(est) = self.estimate {
            // Short of 1000 until the table is done: estimates are estimates.
            self.set_permille((rows.saturating_mul(1000) / est).min(990));
        }
        if let Some(b) = &self.bar {
            b.set_position(rows);
        }
    }

    fn set_permille(&mut self, permille: u64) {
        let delta = permille.saturating_sub(self.permille);
        self.permille = self.permille.max(permille);
        let total = self.totals.permille.fetch_add(delta, Ordering::Relaxed) + delta;
        if let Some(o) = &self.overall {
            o.set_position(total);
        }
    }

    /// Takes back what this table counted so far, for a table started over:
    /// the totals and the overall bar then count only the attempt that ends.
    pub fn restart(&mut self) {
        self.totals.rows.fetch_sub(self.rows, Ordering::Relaxed);
        self.totals.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
        let total = self.totals.permille.fetch_sub(self.permille, Ordering::Relaxed);
        if let Some(o) = &self.overall {
            o.set_position(total.saturating_sub(self.permille));
        }
        (self.rows, self.bytes, self.permille) = (0, 0, 0);
        if let Some(b) = &self.bar {
            b.set_position(0);
        }
    }

    /// Marks the table done.
    pub fn finish(mut self, _overall: &Progress) {
        self.totals.tables_done.fetch_add(1, Ordering::Relaxed);
        self.set_permille(1000);
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
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
                "{label}: {}/{}, {}, {} ({}/s), {:.0} s",
                totals.tables_done.load(Ordering::Relaxed),
                counted(tables, "table", "tables"),
                counted(totals.rows.load(Ordering::Relaxed), "row", "rows"),
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
    let width = crate::wrap::width(crate::wrap::Stream::Stdout);
    for line in column_lines(rows, &right_aligned, width).into_iter().flatten() {
        println!("{line}");
    }
}

/// The width `rows` take printed as columns, unwrapped.
pub fn columns_width(rows: &[Vec<String>]) -> usize {
    let columns = rows.first().map_or(0, Vec::len);
    (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .sum::<usize>()
        + 2 * columns.saturating_sub(1)
}

/// The lines of [`print_columns`], per row: on a terminal of `width` columns,
/// the widest text columns but the first (the names, never cut) are narrowed
/// — their cells wrapped at spaces onto more lines, as psql's wrapped format
/// does — until the table fits or each is down to 12.
pub fn column_lines(
    rows: &[Vec<String>],
    right_aligned: &impl Fn(usize) -> bool,
    width: Option<usize>,
) -> Vec<Vec<String>> {
    const NARROWEST: usize = 12;
    let columns = rows.first().map_or(0, Vec::len);
    let mut widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    if let Some(limit) = width {
        loop {
            let total: usize = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
            if total <= limit {
                break;
            }
            let widest = (1..columns)
                .filter(|&c| !right_aligned(c) && widths[c] > NARROWEST)
                .max_by_key(|&c| widths[c]);
            let Some(c) = widest else { break };
            widths[c] = widths[c].saturating_sub(total - limit).max(NARROWEST);
        }
    }
    let mut out = Vec::new();
    for r in rows {
        let cells: Vec<Vec<String>> = r
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if cell.chars().count() <= widths[c] {
                    vec![cell.clone()]
                } else {
                    let options = textwrap::Options::new(widths[c]).break_words(false);
                    textwrap::wrap(cell, options).into_iter().map(|l| l.into_owned()).collect()
                }
            })
            .collect();
        let height = cells.iter().map(Vec::len).max().unwrap_or(1);
        let mut lines = Vec::with_capacity(height);
        for k in 0..height {
            let mut line = String::new();
            for (c, cell) in cells.iter().enumerate() {
                let text = cell.get(k).map_or("", String::as_str);
                if c + 1 == columns {
                    line.push_str(text);
                    break;
                }
                let pad = " ".repeat(widths[c].saturating_sub(text.chars().count()));
                if right_aligned(c) {
                    line.push_str(&pad);
                    line.push_str(text);
                } else {
                    line.push_str(text);
                    line.push_str(&pad);
                }
                line.push_str("  ");
            }
            lines.push(line.trim_end().to_string());
        }
        out.push(lines);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_tables_wrap_their_widest_text_columns_to_fit() {
        let rows = vec![
            vec!["TABLE".into(), "ROWS".into(), "FK PARENTS".into()],
            vec![
                "public.\"TimeEntry\"".into(),
                "30".into(),
                "public.\"Job\", public.\"User\", public.\"Customer\"".into(),
            ],
        ];
        let right = |c: usize| c == 1;
        assert_eq!(column_lines(&rows, &right, None).concat().len(), 2);
        let lines = column_lines(&rows, &right, Some(50)).concat();
        assert!(lines.len() > 2, "{lines:?}");
        assert!(lines.iter().all(|l| l.chars().count() <= 50), "{lines:?}");
        let joined = lines.join(" ");
        for part in ["public.\"Job\",", "public.\"User\",", "public.\"Customer\""] {
            assert!(joined.contains(part), "{joined}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(counted(1, "table", "tables"), "1 table");
        assert_eq!(counted(0, "table", "tables"), "0 tables");
        assert_eq!(counted(1200, "row", "rows"), "1,200 rows");
        assert_eq!(human_short(950.4), "950");
        assert_eq!(human_short(162_456.611_4), "162.5k");
        assert_eq!(human_short(1_234_567.0), "1.2M");
    }
}
