//! Progress on a real terminal (issue 16): run under `script` with an
//! 80-column pseudo-terminal, the bars fit, rates carry units, the overall
//! bar moves while the table loads, and the bars are gone before the summary
//! or an error is printed.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::cluster;

/// A database with one table big enough to show progress for a while.
fn big_db(name: &str) -> String {
    let c = cluster();
    let db = c.create_db(name);
    c.psql(
        &db,
        "CREATE TABLE big AS SELECT i, md5(i::text) AS t FROM generate_series(1, 1500000) i; ANALYZE big;",
    );
    db
}

/// `script -qec CMD /dev/null` with an 80-column terminal; everything the
/// terminal got. `on_output` sees the output so far and may act once.
fn under_terminal(cmd: &str, mut on_output: impl FnMut(&str)) -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_pgbarge")).parent().unwrap().display().to_string();
    let mut child = Command::new("script")
        .args(["-qec", &format!("stty cols 80 rows 24; {cmd}"), "/dev/null"])
        .env("PATH", format!("{bin}:{}", std::env::var("PATH").unwrap_or_default()))
        .env("COLUMNS", "80")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run script");
    let mut out = child.stdout.take().unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                all.extend_from_slice(&buf[..n]);
                on_output(&String::from_utf8_lossy(&all));
            }
        }
    }
    child.wait().unwrap();
    String::from_utf8_lossy(&all).into_owned()
}

/// The text the terminal shows per drawn line: escape sequences removed,
/// split at carriage returns and newlines.
fn visible_lines(raw: &str) -> Vec<String> {
    let mut text = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            text.push('\n');
            continue;
        }
        text.push(if c == '\r' { '\n' } else { c });
    }
    text.lines().map(str::to_string).filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn progress_fits_80_columns_moves_and_is_cleared_before_the_summary() {
    let db = big_db("tp_fits");
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("b");
    let cmd = format!("pgbarge backup -d '{}' -o {} -j 1", cluster().conn(&db), dir.display());
    let raw = under_terminal(&cmd, |_| {});
    let lines = visible_lines(&raw);
    for l in &lines {
        assert!(l.chars().count() <= 80, "a line wider than 80 columns: {l:?}\n{raw:?}");
    }
    let bars: Vec<&String> = lines.iter().filter(|l| l.contains("rows/s")).collect();
    assert!(!bars.is_empty(), "no table bar was drawn: {raw:?}");
    // Rates carry units, never `162,456.6114/s`.
    assert!(bars.iter().all(|l| !l.contains(',')), "{bars:?}");
    assert!(bars.iter().any(|l| l.contains("k rows/s") || l.contains("M rows/s")), "{bars:?}");
    // The overall bar moved before the table finished.
    assert!(
        lines.iter().any(|l| l.starts_with(" [=") && l.contains("] 0/1 table · ")),
        "the overall bar never moved while the table loaded: {lines:?}"
    );
    // No bar is drawn after the summary starts.
    let summary = raw.find("backup complete").expect("summary");
    assert!(!raw[summary..].contains("rows/s"), "{raw:?}");
    assert!(raw[summary..].contains("1 table, 1,500,000 rows"), "{raw:?}");
}

#[test]
fn bars_are_cleared_before_an_error() {
    let db = big_db("tp_error");
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("b");
    let cmd = format!(
        "pgbarge backup -d '{}' -o {} -j 1 & echo \"PID=$!\"; wait $!",
        cluster().conn(&db),
        dir.display()
    );
    let mut signalled = false;
    let raw = under_terminal(&cmd, |out| {
        if signalled || !out.contains("rows/s") {
            return;
        }
        let pid = out.split("PID=").nth(1).and_then(|s| {
            s.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<i32>().ok()
        });
        if let Some(pid) = pid {
            unsafe { libc::kill(pid, libc::SIGTERM) };
            signalled = true;
        }
    });
    assert!(signalled, "no bar was drawn: {raw:?}");
    let error = raw.find("error: ").unwrap_or_else(|| panic!("no error: {raw:?}"));
    assert!(raw[error..].contains("interrupted by SIGTERM"), "{raw:?}");
    // What the terminal shows last above the error is a cleared line, not a bar.
    let before = &raw[..error];
    let last_bar = before.rfind("rows/s").unwrap();
    let last_clear = before.rfind("\x1b[2K").unwrap_or(0);
    assert!(last_clear > last_bar, "a bar stays above the error: {:?}", &raw[last_bar..]);
    assert!(!raw[error..].contains("rows/s"), "{raw:?}");
}

/// Reports fit the terminal too: `list` of the ERP fixture (139 columns as a
/// plain table) moves foreign-key parents onto lines of their own and wraps
/// keys, and no table name is cut; verify's summary wraps at words.
#[test]
fn list_and_verify_fit_an_80_column_terminal() {
    let c = cluster();
    let db = crate::common::db_with("term_list", "erp/source.sql");
    let out = under_terminal(&format!("pgbarge list -d '{}'", c.conn(&db)), |_| {});
    let lines = visible_lines(&out);
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{lines:#?}");
    for name in ["public.\"TimeEntryRejectionNote\"", "public.\"FileAttachment\""] {
        assert!(lines.iter().any(|l| l.starts_with(name)), "{name} cut: {lines:#?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with("references public.\"Job\", public.\"TimeEntry\"")),
        "{lines:#?}"
    );
    // Not a terminal: one line per table, as before.
    let piped = crate::common::pgbarge(&["list", "-d", &c.conn(&db)], &[]);
    assert!(
        piped.stdout.lines().any(|l| l.starts_with("public.\"FileAttachment\"")
            && l.contains("public.\"Job\", public.\"TimeEntry\"")),
        "{}",
        piped.stdout
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bk");
    crate::common::pgbarge(&["backup", "-q", "-d", &c.conn(&db), "-o", dir.to_str().unwrap()], &[])
        .expect_code(0);
    let out = under_terminal(&format!("pgbarge verify --deep '{}'", dir.display()), |_| {});
    let lines = visible_lines(&out);
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("checked 13 tables")), "{lines:#?}");
}
