//! Prose lines fitted to the terminal: summaries, reports and hints are
//! wrapped at the terminal's width (words kept whole, continuation lines
//! indented under the first), so nothing a person reads runs off an
//! 80-column screen. Output that is not a terminal — a pipe, a file, a test —
//! is left exactly as written, one line per item, for scripts and `grep`.
//!
//! This module only formats text; it prints nothing.

/// Which stream a line goes to (each may be a terminal or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The width to wrap at on `stream`, or `None` when it is not a terminal.
pub fn width(stream: Stream) -> Option<usize> {
    let term = match stream {
        Stream::Stdout => console::Term::stdout(),
        Stream::Stderr => console::Term::stderr(),
    };
    if !term.is_term() {
        return None;
    }
    // `COLUMNS` wins, as for most terminal programs; then the terminal's own size.
    let columns = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok());
    let width = columns.or_else(|| term.size_checked().map(|(_, w)| usize::from(w)));
    Some(width.unwrap_or(80).clamp(40, 400))
}

/// `text` (one line) wrapped at `width`, continuation lines indented as the
/// first line is, plus `hang` more spaces; `text` as it is without a width.
pub fn fit(text: &str, width: Option<usize>, hang: usize) -> String {
    let Some(width) = width else {
        return text.to_string();
    };
    let indent = text.len() - text.trim_start().len();
    let rest = " ".repeat(indent + hang);
    let options = textwrap::Options::new(width)
        .subsequent_indent(&rest)
        .break_words(false)
        .word_separator(textwrap::WordSeparator::AsciiSpace);
    textwrap::fill(text, options)
}

/// [`fit`] for a line printed on stdout.
pub fn stdout(text: &str, hang: usize) -> String {
    fit(text, width(Stream::Stdout), hang)
}

/// Each line of `text` [`fit`] for stderr (an error report of several lines).
pub fn stderr_lines(text: &str, hang: usize) -> String {
    let width = width(Stream::Stderr);
    text.lines().map(|l| fit(l, width, hang)).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_words_with_a_hanging_indent_and_leaves_pipes_alone() {
        let line = "  checked 11 tables (70 rows, 11.9 kB of CSV read) in 0.0 s: file sizes and sha256, decompression, CSV sha256";
        let out = fit(line, Some(40), 2);
        for l in out.lines() {
            assert!(l.chars().count() <= 40, "{l:?}");
        }
        assert!(out.lines().skip(1).all(|l| l.starts_with("    ")), "{out}");
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            line.split_whitespace().collect::<Vec<_>>()
        );
        assert_eq!(fit(line, None, 2), line);
        // A word longer than the line stays whole (a hash, a path).
        let hash = "x".repeat(64);
        assert!(fit(&format!("sha256 is {hash}"), Some(40), 2).contains(&hash));
    }
}
