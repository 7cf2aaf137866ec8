//! CSV as PostgreSQL writes it, split into field values: a caller-driven
//! state machine (blocks may split anywhere) that hands each field to a
//! callback once it is whole, unquoted. An unquoted empty field is NULL; a
//! quoted one the empty string.

/// What the splitter hands over.
#[derive(Debug, PartialEq, Eq)]
pub enum Field<'a> {
    Null,
    /// The value's bytes; the callee may take the buffer (a large value is
    /// then passed on without a copy).
    Value(&'a mut Vec<u8>),
    /// After the last field of a record.
    EndOfRecord,
}

/// Where a CSV scanner stands between two bytes (shared with
/// [`super::csv_to_text`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// At the start of a field (after a comma, a record's end, or at the start).
    FieldStart,
    /// Inside a field without quotes.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: a doubled `""` or the end.
    QuoteInQuoted,
}

/// The splitter of one stream.
#[derive(Debug)]
pub struct CsvFields {
    state: State,
    /// The first record is a header, read and dropped.
    in_header: bool,
    /// The current field's bytes so far, unquoted.
    value: Vec<u8>,
    /// The current field had quotes (so empty is the empty string).
    quoted: bool,
}

impl CsvFields {
    pub fn new(header: bool) -> Self {
        CsvFields { state: State::FieldStart, in_header: header, value: Vec::new(), quoted: false }
    }

    /// Reads `input`, calling `each` for every field completed in it.
    ///
    /// # Errors
    /// `each`'s error, or a quote followed by anything but a quote, comma or
    /// line end.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut each: impl FnMut(Field<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::FieldStart | State::Unquoted => {
                    let start = i;
                    while i < input.len() && !matches!(input[i], b',' | b'\n' | b'"') {
                        i += 1;
                    }
                    self.value.extend_from_slice(&input[start..i]);
                    if i > start {
                        self.state = State::Unquoted;
                    }
                    let Some(&b) = input.get(i) else { break };
                    i += 1;
                    match b {
                        b'"' => {
                            self.quoted = true;
                            self.state = State::Quoted;
                        }
                        b',' => self.end_field(&mut each)?,
                        _ => {
                            self.end_field(&mut each)?;
                            self.end_record(&mut each)?;
                        }
                    }
                }
                State::Quoted => {
                    let start = i;
                    while i < input.len() && input[i] != b'"' {
                        i += 1;
                    }
                    self.value.extend_from_slice(&input[start..i]);
                    if i < input.len() {
                        i += 1;
                        self.state = State::QuoteInQuoted;
                    }
                }
                State::QuoteInQuoted => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'"' => {
                            self.value.push(b'"');
                            self.state = State::Quoted;
                        }
                        b',' => self.end_field(&mut each)?,
                        b'\n' => {
                            self.end_field(&mut each)?;
                            self.end_record(&mut each)?;
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

    fn end_field(
        &mut self,
        each: &mut impl FnMut(Field<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        if !self.in_header {
            if self.value.is_empty() && !self.quoted {
                each(Field::Null)?;
            } else {
                each(Field::Value(&mut self.value))?;
            }
        }
        self.value.clear();
        self.quoted = false;
        self.state = State::FieldStart;
        Ok(())
    }

    fn end_record(
        &mut self,
        each: &mut impl FnMut(Field<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        if std::mem::replace(&mut self.in_header, false) {
            return Ok(());
        }
        each(Field::EndOfRecord)
    }

    /// Whether the stream ended between records, as a whole file does.
    pub fn at_record_end(&self) -> bool {
        !self.in_header && self.state == State::FieldStart && self.value.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(csv: &[u8], splits: &[usize]) -> Vec<String> {
        let mut f = CsvFields::new(true);
        let mut out = Vec::new();
        let mut at = 0;
        for &end in splits.iter().chain(std::iter::once(&csv.len())) {
            f.feed(&csv[at..end], |field| {
                out.push(match field {
                    Field::Null => "NULL".to_string(),
                    Field::Value(v) => format!("[{}]", String::from_utf8_lossy(&v[..])),
                    Field::EndOfRecord => "|".to_string(),
                });
                Ok(())
            })
            .unwrap();
            at = end;
        }
        assert!(f.at_record_end());
        out
    }

    #[test]
    fn fields_at_every_split() {
        let csv = b"\"h,1\",h2\n1,,\"\"\n\"a\"\"b\",\"x\ny\",z\n\n";
        let want = vec!["[1]", "NULL", "[]", "|", "[a\"b]", "[x\ny]", "[z]", "|", "NULL", "|"];
        assert_eq!(fields(csv, &[]), want);
        for at in 0..=csv.len() {
            assert_eq!(fields(csv, &[at]), want, "split at {at}");
        }
        let every: Vec<usize> = (1..csv.len()).collect();
        assert_eq!(fields(csv, &every), want);
    }
}
