//! COPY's binary format, read only as far as counting tuples on a stream:
//! the signature and header, then per tuple a 16-bit field count and per field
//! a 32-bit length (-1 for NULL) and that many bytes, then the -1 trailer
//! (PostgreSQL docs, COPY, "Binary Format"). A caller-driven state machine,
//! correct for any chunking; it never looks inside a value.

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

/// Counts tuples in a binary COPY stream fed in chunks of any size.
#[derive(Debug, Clone)]
pub struct BinaryTupleCounter {
    state: State,
    /// Bytes of a fixed-size item (header, count, length) split across chunks.
    pending: Vec<u8>,
    tuples: u64,
}

impl Default for BinaryTupleCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl BinaryTupleCounter {
    pub fn new() -> Self {
        BinaryTupleCounter { state: State::Header, pending: Vec::with_capacity(19), tuples: 0 }
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
                        n if n > 0 => State::FieldLength(n as u16 - 1),
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
                    let len = len.max(0) as usize;
                    if len > chunk.len() {
                        self.state = State::FieldData((len - chunk.len()) as u64, fields_left);
                        return &[];
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
                n if n > 0 => State::FieldLength(n as u16 - 1),
                n => State::Failed(BinaryShapeError::BadFieldCount(n)),
            },
            State::FieldLength(rest) => match i32::from_be_bytes([p[0], p[1], p[2], p[3]]) {
                -1 | 0 if rest == 0 => self.tuple_done(),
                -1 | 0 => State::FieldLength(rest - 1),
                n if n > 0 => State::FieldData(n as u64, rest),
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
