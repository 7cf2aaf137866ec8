//! CSV as PostgreSQL's `COPY ... TO (FORMAT csv, HEADER)` writes it, turned
//! into COPY's text format on the way into the server, which parses text
//! faster than CSV.
//!
//! Exact for everything the CSV can hold: an unquoted empty field is NULL
//! (`\N`), a quoted one the empty string; backslashes, tabs, CR and LF
//! inside values become `\\`, `\t`, `\r`, `\n`, so no value can read as an
//! escape or as the `\.` end marker. The header record is dropped (text has
//! none). A caller-driven state machine: blocks may split anywhere, even
//! between the two quotes of a doubled `""`.

use super::csv_fields::State;

/// The transcoder of one table's stream.
#[derive(Debug)]
pub struct CsvToText {
    state: State,
    /// The header record is still being read (and dropped).
    in_header: bool,
    /// A table without columns writes an empty line per row in both formats;
    /// otherwise an empty line is one NULL field.
    no_columns: bool,
}

/// What a byte is, for the scanner: plain data, or one it must act on.
const PLAIN: u8 = 0;
const COMMA: u8 = 1;
const NEWLINE: u8 = 2;
const QUOTE: u8 = 3;
/// A byte that text must escape (`\`, tab, CR).
const ESCAPE: u8 = 4;

static CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    t[b',' as usize] = COMMA;
    t[b'\n' as usize] = NEWLINE;
    t[b'"' as usize] = QUOTE;
    t[b'\\' as usize] = ESCAPE;
    t[b'\t' as usize] = ESCAPE;
    t[b'\r' as usize] = ESCAPE;
    t
};

fn escaped(b: u8) -> &'static [u8] {
    match b {
        b'\\' => b"\\\\",
        b'\t' => b"\\t",
        b'\r' => b"\\r",
        b'\n' => b"\\n",
        _ => unreachable!("only escaped bytes come here"),
    }
}

impl CsvToText {
    /// A transcoder for a stream whose first record is a header;
    /// `columns` is the table's column count.
    pub fn new(columns: usize) -> Self {
        CsvToText { state: State::FieldStart, in_header: true, no_columns: columns == 0 }
    }

    /// Appends the text form of `input` to `out`.
    ///
    /// # Errors
    /// A quote followed by anything but a quote, comma or newline: not CSV as
    /// PostgreSQL writes it.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        out.reserve(input.len() + input.len() / 16);
        let mut i = 0;
        while i < input.len() {
            if self.in_header {
                i = self.skip_header(input, i)?;
                continue;
            }
            match self.state {
                State::FieldStart => match input[i] {
                    b'"' => {
                        self.state = State::Quoted;
                        i += 1;
                    }
                    b',' => {
                        out.extend_from_slice(b"\\N\t");
                        i += 1;
                    }
                    b'\n' => {
                        out.extend_from_slice(if self.no_columns { b"\n" } else { b"\\N\n" });
                        i += 1;
                    }
                    _ => self.state = State::Unquoted,
                },
                State::Unquoted => {
                    let start = i;
                    while i < input.len() && CLASS[input[i] as usize] == PLAIN {
                        i += 1;
                    }
                    out.extend_from_slice(&input[start..i]);
                    let Some(&b) = input.get(i) else { break };
                    i += 1;
                    match CLASS[b as usize] {
                        COMMA => {
                            out.push(b'\t');
                            self.state = State::FieldStart;
                        }
                        NEWLINE => {
                            out.push(b'\n');
                            self.state = State::FieldStart;
                        }
                        // PostgreSQL quotes whole fields; its CSV reader, like
                        // the record counter, takes a quote anywhere as the
                        // start of a quoted part.
                        QUOTE => self.state = State::Quoted,
                        _ => out.extend_from_slice(escaped(b)),
                    }
                }
                State::Quoted => {
                    let start = i;
                    while i < input.len() && matches!(CLASS[input[i] as usize], PLAIN | COMMA) {
                        i += 1;
                    }
                    out.extend_from_slice(&input[start..i]);
                    let Some(&b) = input.get(i) else { break };
                    i += 1;
                    if b == b'"' {
                        self.state = State::QuoteInQuoted;
                    } else {
                        out.extend_from_slice(escaped(b));
                    }
                }
                State::QuoteInQuoted => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'"' => {
                            out.push(b'"');
                            self.state = State::Quoted;
                        }
                        b',' => {
                            out.push(b'\t');
                            self.state = State::FieldStart;
                        }
                        b'\n' => {
                            out.push(b'\n');
                            self.state = State::FieldStart;
                        }
                        other => {
                            return Err(format!(
                                "a quoted field is followed by byte 0x{other:02x}, not a comma or a line end"
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads the header record from `input[i..]`, writing nothing; returns
    /// where it stopped (the record's end, or the block's).
    fn skip_header(&mut self, input: &[u8], mut i: usize) -> Result<usize, String> {
        while i < input.len() {
            let b = input[i];
            i += 1;
            self.state = match (self.state, b) {
                (State::Quoted, b'"') => State::QuoteInQuoted,
                (State::Quoted, _) => State::Quoted,
                (State::QuoteInQuoted, b'"') => State::Quoted,
                (_, b'"') => State::Quoted,
                (_, b'\n') => {
                    self.in_header = false;
                    self.state = State::FieldStart;
                    return Ok(i);
                }
                (State::QuoteInQuoted, b',') | (_, b',') => State::FieldStart,
                (State::QuoteInQuoted, other) => {
                    return Err(format!(
                        "the header's quoted name is followed by byte 0x{other:02x}"
                    ));
                }
                _ => State::Unquoted,
            };
        }
        Ok(i)
    }

    /// Whether the stream ended between records, as a whole file does.
    pub fn at_record_end(&self) -> bool {
        !self.in_header && self.state == State::FieldStart
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(csv: &[u8], columns: usize) -> Vec<u8> {
        let mut t = CsvToText::new(columns);
        let mut out = Vec::new();
        t.feed(csv, &mut out).unwrap();
        assert!(t.at_record_end());
        out
    }

    /// The same bytes fed whole, split at every position, and one byte at a time.
    fn every_split(csv: &[u8], columns: usize, want: &[u8]) {
        assert_eq!(whole(csv, columns), want, "whole");
        for at in 0..=csv.len() {
            let mut t = CsvToText::new(columns);
            let mut out = Vec::new();
            t.feed(&csv[..at], &mut out).unwrap();
            t.feed(&csv[at..], &mut out).unwrap();
            assert_eq!(out, want, "split at {at}");
        }
        let mut t = CsvToText::new(columns);
        let mut out = Vec::new();
        for b in csv {
            t.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out, want, "byte by byte");
    }

    #[test]
    fn nulls_empty_strings_and_escapes() {
        every_split(
            b"a,\"b,c\",d\n1,,\"\"\n,\"x\"\"y\",\"l1\nl2\"\n\"\\.\",tab\there,\"cr\r\"\n",
            3,
            b"1\t\\N\t\n\\N\tx\"y\tl1\\nl2\n\\\\.\ttab\\there\tcr\\r\n",
        );
    }

    #[test]
    fn a_header_with_quotes_and_newlines_is_dropped() {
        every_split(b"\"we\"\"ird\nname\",b\n1,2\n", 2, b"1\t2\n");
    }

    #[test]
    fn empty_lines_are_null_rows_or_rows_without_columns() {
        every_split(b"a\n\n\"\"\n", 1, b"\\N\n\n");
        every_split(b"\n\n\n", 0, b"\n\n");
    }

    #[test]
    fn backslashes_and_unicode_pass_exactly() {
        every_split("h\n\\N,é\\x41\n".as_bytes(), 2, "\\\\N\té\\\\x41\n".as_bytes());
    }

    #[test]
    fn a_stray_byte_after_a_closing_quote_is_an_error() {
        let mut t = CsvToText::new(1);
        let mut out = Vec::new();
        assert!(t.feed(b"a\n\"x\"y\n", &mut out).is_err());
    }

    #[test]
    fn a_cut_stream_is_not_at_a_record_end() {
        let mut t = CsvToText::new(1);
        let mut out = Vec::new();
        t.feed(b"a\n\"open", &mut out).unwrap();
        assert!(!t.at_record_end());
    }
}
