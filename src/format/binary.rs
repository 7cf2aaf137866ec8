//! COPY's binary format, read only as far as counting tuples on a stream:
//! the signature and header, then per tuple a 16-bit field count and per field
//! a 32-bit length (-1 for NULL) and that many bytes, then the -1 trailer
//! (PostgreSQL docs, COPY, "Binary Format"). A caller-driven state machine,
//! correct for any chunking; it looks inside no value, except, when asked,
//! the integers of chosen columns, whose largest it keeps ([`IntMax`]).

/// The 11-byte signature every binary COPY stream starts with.
pub const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// What is wrong with a binary COPY stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BinaryShapeError {
    #[error("the binary COPY signature is missing")]
    BadSignature,
    #[error("a field length of {0} is invalid")]
    BadLength(i32),
    #[error("a tuple has {0} fields")]
    BadFieldCount(i16),
    #[error("the binary COPY stream ends before its trailer")]
    Truncated,
    #[error("bytes follow the binary COPY trailer")]
    AfterTrailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting the 11-byte signature, flags and extension length (19 bytes).
    Header,
    /// Skipping the header extension.
    Extension(u64),
    /// Expecting a tuple's field count (2 bytes) or the trailer.
    TupleStart,
    /// Expecting a field length (4 bytes); `u16` fields remain after this one.
    FieldLength(u16),
    /// Skipping a field's bytes; then `u16` fields remain.
    FieldData(u64, u16),
    Done,
    Failed(BinaryShapeError),
}

/// The largest value of chosen integer columns of a stream (a load's
/// sequence-fed columns, so that moving their sequences needs no `max()`
/// query per table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntMax {
    /// (column index in the stream, the largest value; `None` while every
    /// value was NULL).
    columns: Vec<(usize, Option<i64>)>,
    /// A value was not read (split across chunks, or not an integer): the
    /// maxima are unknown, and the caller asks the server.
    lost: bool,
}

impl IntMax {
    /// Keeps the largest value of each of `columns`.
    pub fn new(columns: &[usize]) -> Self {
        IntMax { columns: columns.iter().map(|&c| (c, None)).collect(), lost: false }
    }

    fn slot(&mut self, column: usize) -> Option<&mut Option<i64>> {
        self.columns.iter_mut().find(|(c, _)| *c == column).map(|(_, m)| m)
    }

    /// Notes `value` of `column` (ignored when not tracked).
    pub fn observe(&mut self, column: usize, value: i64) {
        if let Some(m) = self.slot(column) {
            *m = Some(m.map_or(value, |m| m.max(value)));
        }
    }

    /// A value of `column` went by unread: if it is tracked, nothing is known.
    pub fn lose(&mut self, column: usize) {
        if self.slot(column).is_some() {
            self.lost = true;
        }
    }

    /// Whether `column` is tracked.
    pub fn tracks(&self, column: usize) -> bool {
        self.columns.iter().any(|(c, _)| *c == column)
    }

    /// Each tracked column's largest value, unless one was not read.
    pub fn maxima(&self) -> Option<Vec<(usize, Option<i64>)>> {
        (!self.lost).then(|| self.columns.clone())
    }
}

/// Counts tuples in a binary COPY stream fed in chunks of any size.
#[derive(Debug, Clone)]
pub struct BinaryTupleCounter {
    state: State,
    /// Bytes of a fixed-size item (header, count, length) split across chunks.
    pending: Vec<u8>,
    tuples: u64,
    /// Fields of the current tuple (to know which column a field is).
    fields: u16,
    max: Option<IntMax>,
}

impl Default for BinaryTupleCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl BinaryTupleCounter {
    pub fn new() -> Self {
        BinaryTupleCounter {
            state: State::Header,
            pending: Vec::with_capacity(19),
            tuples: 0,
            fields: 0,
            max: None,
        }
    }

    /// Also keeps the largest value of `columns` (int2, int4 or int8).
    pub fn with_int_max(columns: &[usize]) -> Self {
        BinaryTupleCounter { max: Some(IntMax::new(columns)), ..Self::new() }
    }

    /// The largest values kept (see [`BinaryTupleCounter::with_int_max`]).
    pub fn int_max(&self) -> Option<&IntMax> {
        self.max.as_ref()
    }

    /// The stream column of the field whose length was just read, when
    /// `fields_left` fields follow it in the tuple.
    fn column(&self, fields_left: u16) -> usize {
        usize::from(self.fields.saturating_sub(1).saturating_sub(fields_left))
    }

    /// Notes a whole value of the column `fields_left` fields from the end.
    fn observe(&mut self, fields_left: u16, value: &[u8]) {
        let column = self.column(fields_left);
        if let Some(max) = &mut self.max
            && max.tracks(column)
        {
            match value.len() {
                2 => max.observe(column, i16::from_be_bytes([value[0], value[1]]).into()),
                4 => max.observe(
                    column,
                    i32::from_be_bytes([value[0], value[1], value[2], value[3]]).into(),
                ),
                8 => {
                    max.observe(column, i64::from_be_bytes(value.try_into().expect("eight bytes")))
                }
                _ => max.lose(column),
            }
        }
    }

    /// A value of the column `fields_left` fields from the end goes unread.
    fn skip_value(&mut self, fields_left: u16) {
        let column = self.column(fields_left);
        if let Some(max) = &mut self.max {
            max.lose(column);
        }
    }

    /// Tuples complete so far.
    pub fn tuples(&self) -> u64 {
        self.tuples
    }

    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            if self.pending.is_empty()
                && matches!(self.state, State::TupleStart | State::FieldLength(_))
            {
                chunk = self.walk(chunk);
                if chunk.is_empty() {
                    return;
                }
            }
            match self.state {
                State::Done => {
                    self.state = State::Failed(BinaryShapeError::AfterTrailer);
                    return;
                }
                State::Failed(_) => return,
                State::Extension(n) | State::FieldData(n, _) => {
                    let take = n.min(chunk.len() as u64);
                    chunk = &chunk[take as usize..];
                    let left = n - take;
                    self.state = match self.state {
                        State::Extension(_) if left == 0 => State::TupleStart,
                        State::Extension(_) => State::Extension(left),
                        State::FieldData(_, 0) if left == 0 => self.tuple_done(),
                        State::FieldData(_, f) if left == 0 => State::FieldLength(f - 1),
                        State::FieldData(_, f) => State::FieldData(left, f),
                        s => s,
                    };
                }
                State::Header | State::TupleStart | State::FieldLength(_) => {
                    let need = match self.state {
                        State::Header => 19,
                        State::TupleStart => 2,
                        _ => 4,
                    };
                    let take = (need - self.pending.len()).min(chunk.len());
                    self.pending.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    if self.pending.len() == need {
                        self.state = self.item_complete();
                        self.pending.clear();
                    }
                }
            }
        }
    }

    /// The fast path: whole counts, lengths and values read straight from
    /// the chunk while they fit in it. Returns the rest, from the first item
    /// that crosses the chunk's end (left to the byte-collecting path).
    fn walk<'a>(&mut self, mut chunk: &'a [u8]) -> &'a [u8] {
        loop {
            match self.state {
                State::TupleStart => {
                    let Some((count, rest)) = chunk.split_first_chunk::<2>() else {
                        return chunk;
                    };
                    chunk = rest;
                    self.state = match i16::from_be_bytes(*count) {
                        -1 => State::Done,
                        0 => self.tuple_done(),
                        n if n > 0 => {
                            self.fields = n as u16;
                            State::FieldLength(n as u16 - 1)
                        }
                        n => State::Failed(BinaryShapeError::BadFieldCount(n)),
                    };
                }
                State::FieldLength(fields_left) => {
                    let Some((len, rest)) = chunk.split_first_chunk::<4>() else {
                        return chunk;
                    };
                    chunk = rest;
                    let len = i32::from_be_bytes(*len);
                    if len < -1 {
                        self.state = State::Failed(BinaryShapeError::BadLength(len));
                        return chunk;
                    }
                    let is_null = len == -1;
                    let len = len.max(0) as usize;
                    if len > chunk.len() {
                        self.skip_value(fields_left);
                        self.state = State::FieldData((len - chunk.len()) as u64, fields_left);
                        return &[];
                    }
                    if self.max.is_some() && !is_null {
                        self.observe(fields_left, &chunk[..len]);
                    }
                    chunk = &chunk[len..];
                    self.state = if fields_left == 0 {
                        self.tuple_done()
                    } else {
                        State::FieldLength(fields_left - 1)
                    };
                }
                _ => return chunk,
            }
        }
    }

    fn tuple_done(&mut self) -> State {
        self.tuples += 1;
        State::TupleStart
    }

    /// Acts on a complete fixed-size item in `pending`.
    fn item_complete(&mut self) -> State {
        let p = &self.pending;
        match self.state {
            State::Header => {
                if &p[..11] != SIGNATURE {
                    return State::Failed(BinaryShapeError::BadSignature);
                }
                let ext = u32::from_be_bytes([p[15], p[16], p[17], p[18]]) as u64;
                if ext == 0 { State::TupleStart } else { State::Extension(ext) }
            }
            State::TupleStart => match i16::from_be_bytes([p[0], p[1]]) {
                -1 => State::Done,
                0 => self.tuple_done(),
                n if n > 0 => {
                    self.fields = n as u16;
                    State::FieldLength(n as u16 - 1)
                }
                n => State::Failed(BinaryShapeError::BadFieldCount(n)),
            },
            State::FieldLength(rest) => match i32::from_be_bytes([p[0], p[1], p[2], p[3]]) {
                -1 if rest == 0 => self.tuple_done(),
                -1 => State::FieldLength(rest - 1),
                n if n >= 0 => {
                    // The value is skipped byte by byte from here, unread.
                    self.skip_value(rest);
                    if n == 0 && rest == 0 {
                        self.tuple_done()
                    } else if n == 0 {
                        State::FieldLength(rest - 1)
                    } else {
                        State::FieldData(n as u64, rest)
                    }
                }
                n => State::Failed(BinaryShapeError::BadLength(n)),
            },
            s => s,
        }
    }

    /// The tuple count, once the stream ended with its trailer.
    ///
    /// # Errors
    /// The stream is malformed or ended early.
    pub fn finish(&self) -> Result<u64, BinaryShapeError> {
        match &self.state {
            State::Done => Ok(self.tuples),
            State::Failed(e) => Err(*e),
            _ => Err(BinaryShapeError::Truncated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of `rows` tuples: (int4 i, text "x"*i or NULL when i % 3 == 0).
    fn stream(rows: u32, extension: &[u8]) -> Vec<u8> {
        let mut v = SIGNATURE.to_vec();
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(&(extension.len() as u32).to_be_bytes());
        v.extend_from_slice(extension);
        for i in 0..rows {
            v.extend_from_slice(&2i16.to_be_bytes());
            v.extend_from_slice(&4i32.to_be_bytes());
            v.extend_from_slice(&i.to_be_bytes());
            if i % 3 == 0 {
                v.extend_from_slice(&(-1i32).to_be_bytes());
            } else {
                v.extend_from_slice(&(i as i32).to_be_bytes());
                v.extend(std::iter::repeat_n(b'x', i as usize));
            }
        }
        v.extend_from_slice(&(-1i16).to_be_bytes());
        v
    }

    fn count(data: &[u8], chunk: usize) -> Result<u64, BinaryShapeError> {
        let mut c = BinaryTupleCounter::new();
        for piece in data.chunks(chunk) {
            c.feed(piece);
        }
        c.finish()
    }

    /// At every chunking the kept maximum is the true one or unknown, never
    /// wrong; whole in one chunk it is known. A value of a width no integer
    /// has (column 1's text) makes it unknown.
    #[test]
    fn keeps_the_largest_integer_or_says_it_is_unknown() {
        let data = stream(20, b"");
        let mut whole = BinaryTupleCounter::with_int_max(&[0]);
        whole.feed(&data);
        assert_eq!(whole.finish(), Ok(20));
        assert_eq!(whole.int_max().and_then(IntMax::maxima), Some(vec![(0, Some(19))]));
        for chunk in 1..=data.len() {
            let mut c = BinaryTupleCounter::with_int_max(&[0]);
            for piece in data.chunks(chunk) {
                c.feed(piece);
            }
            assert_eq!(c.finish(), Ok(20), "chunk {chunk}");
            let m = c.int_max().and_then(IntMax::maxima);
            assert!(m.is_none() || m == Some(vec![(0, Some(19))]), "chunk {chunk}: {m:?}");
        }
        let mut text = BinaryTupleCounter::with_int_max(&[1]);
        text.feed(&data);
        assert_eq!(text.int_max().and_then(IntMax::maxima), None);
        let mut none = BinaryTupleCounter::with_int_max(&[0]);
        none.feed(&stream(0, b""));
        assert_eq!(none.int_max().and_then(IntMax::maxima), Some(vec![(0, None)]));
    }

    #[test]
    fn counts_at_every_chunking() {
        let data = stream(20, b"");
        for chunk in 1..=data.len() {
            assert_eq!(count(&data, chunk), Ok(20), "chunk {chunk}");
        }
        assert_eq!(count(&stream(0, b""), 7), Ok(0));
        assert_eq!(count(&stream(5, b"abcd"), 3), Ok(5));
    }

    #[test]
    fn zero_column_tuples_count() {
        let mut data = stream(0, b"");
        data.truncate(data.len() - 2);
        for _ in 0..3 {
            data.extend_from_slice(&0i16.to_be_bytes());
        }
        data.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(count(&data, 1), Ok(3));
    }

    #[test]
    fn malformed_streams_are_errors() {
        let data = stream(10, b"");
        for cut in [0, 5, 19, 25, data.len() - 1] {
            assert_eq!(count(&data[..cut], 4), Err(BinaryShapeError::Truncated), "cut {cut}");
        }
        let mut bad = data.clone();
        bad[0] = b'X';
        assert_eq!(count(&bad, 100), Err(BinaryShapeError::BadSignature));
        let mut after = data.clone();
        after.push(0);
        assert_eq!(count(&after, 100), Err(BinaryShapeError::AfterTrailer));
        let mut neg = stream(0, b"");
        neg.truncate(neg.len() - 2);
        neg.extend_from_slice(&1i16.to_be_bytes());
        neg.extend_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(count(&neg, 100), Err(BinaryShapeError::BadLength(-5)));
    }
}
