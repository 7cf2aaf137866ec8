//! zstd compression as a sequence of independent frames, each holding
//! [`FRAME_INPUT`] bytes of input compressed in one call.
//!
//! Why not one streaming frame: zstd's streaming encoder copies its input
//! into a ring buffer of one window plus one block, and after every wrap its
//! match finder runs in the slower "external dictionary" mode (most of the
//! time at level 3). Compressing a contiguous buffer in one call keeps it on
//! the fast path. On the bench table (1.06 GB of CSV, level 3) that is 3.6 s
//! of CPU instead of 4.3 s, and a file no larger (271.2 MB against 273.4 MB).
//! Concatenated frames are one valid zstd stream (RFC 8878, section 3.1): the
//! `zstd` CLI and every decoder read them back as one.
//!
//! The price: no match reaches across a frame boundary, so levels whose
//! window is larger than a frame (zstd:17 and up) compress a little less.
//!
//! Must call [`FrameEncoder::finish`]: nothing is written on drop, so an
//! error can never produce a file that looks complete.

use std::io::{self, Write};

/// Input bytes per frame: twice level 3's 2 MiB window, and small enough
/// that `-j` writers together stay well inside the memory budget (the
/// pending input plus the compressed frame, about 5.5 MiB per writer).
pub const FRAME_INPUT: usize = 4 << 20;

/// Compresses what is written to it into `writer`, one frame per
/// [`FRAME_INPUT`] bytes.
pub struct FrameEncoder<W: Write> {
    compressor: zstd::bulk::Compressor<'static>,
    pending: Vec<u8>,
    frame: Vec<u8>,
    frames: u64,
    writer: W,
}

impl<W: Write> FrameEncoder<W> {
    /// # Errors
    /// zstd refused the level.
    pub fn new(writer: W, level: i32) -> io::Result<Self> {
        Ok(FrameEncoder {
            compressor: zstd::bulk::Compressor::new(level)?,
            pending: Vec::with_capacity(FRAME_INPUT),
            // Capacity for the worst case; only the pages a frame fills are
            // ever touched, so this costs address space, not memory.
            frame: Vec::with_capacity(zstd::zstd_safe::compress_bound(FRAME_INPUT)),
            frames: 0,
            writer,
        })
    }

    /// Adds input, writing a frame each time [`FRAME_INPUT`] bytes are pending.
    ///
    /// # Errors
    /// zstd's or the writer's error.
    pub fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.pending.is_empty() && data.len() >= FRAME_INPUT {
                // A whole frame of input in hand (a large row's block):
                // compressed where it is, not copied into `pending` first.
                let (frame, rest) = data.split_at(FRAME_INPUT);
                self.compress_frame(frame)?;
                data = rest;
                continue;
            }
            let take = (FRAME_INPUT - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == FRAME_INPUT {
                self.write_frame()?;
            }
        }
        Ok(())
    }

    /// Writes the last frame (an empty one when there was no input at all, so
    /// the output is always a valid zstd stream) and returns the writer.
    ///
    /// # Errors
    /// zstd's or the writer's error.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.pending.is_empty() || self.frames == 0 {
            self.write_frame()?;
        }
        self.writer.flush()?;
        Ok(self.writer)
    }

    fn write_frame(&mut self) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let written = self.compress_frame(&pending);
        self.pending = pending;
        self.pending.clear();
        written
    }

    fn compress_frame(&mut self, input: &[u8]) -> io::Result<()> {
        self.frame.clear();
        self.compressor.compress_to_buffer(input, &mut self.frame)?;
        self.writer.write_all(&self.frame)?;
        self.frames += 1;
        Ok(())
    }
}

/// Compresses `data` (at most [`FRAME_INPUT`] bytes) into one frame, the
/// frame [`FrameEncoder`] would write, with a zstd context kept by the
/// calling thread and reused (the parameters stay, the session is reset by
/// each call). Why: a file of one small table is written whole by the
/// thread that read it, and a context made afresh for each of a thousand
/// such tables is an allocation and a table setup each.
///
/// # Errors
/// zstd refused the level.
pub fn compress_one_frame(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    debug_assert!(data.len() <= FRAME_INPUT);
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    CONTEXT.with_borrow_mut(|kept| {
        if !matches!(kept, Some((l, _)) if *l == level) {
            *kept = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        let Some((_, compressor)) = kept.as_mut() else { unreachable!("kept above") };
        let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
        compressor.compress_to_buffer(data, &mut frame)?;
        Ok(frame)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(data: &[u8], pieces: usize) -> Vec<u8> {
        let mut enc = FrameEncoder::new(Vec::new(), 3).unwrap();
        for piece in data.chunks(pieces.max(1)) {
            enc.write_all(piece).unwrap();
        }
        enc.finish().unwrap()
    }

    #[test]
    fn frames_decode_as_one_stream() {
        // Two and a half frames of text that compresses, fed in odd pieces.
        let data: Vec<u8> = (0..FRAME_INPUT * 5 / 2)
            .map(|i| b"id,name\n1,\"a\"\"b\"\n"[i % 17] ^ (i / 4096) as u8)
            .collect();
        for pieces in [1000, 256 * 1024, FRAME_INPUT, FRAME_INPUT + 7, data.len()] {
            let z = compress(&data, pieces);
            assert!(z.len() < data.len());
            assert_eq!(zstd::decode_all(&z[..]).unwrap(), data, "pieces of {pieces}");
        }
    }

    #[test]
    fn large_writes_make_the_same_frames_as_small_ones() {
        let data: Vec<u8> = (0..FRAME_INPUT * 3 + 12345).map(|i| (i % 251) as u8).collect();
        assert_eq!(compress(&data, data.len()), compress(&data, 4096));
        assert_eq!(compress(&data, FRAME_INPUT + 1), compress(&data, 4096));
    }

    #[test]
    fn a_frame_boundary_falls_exactly_at_the_end() {
        let data = vec![b'x'; FRAME_INPUT * 2];
        let z = compress(&data, 4096);
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), data);
    }

    #[test]
    fn no_input_is_still_a_valid_stream() {
        let z = compress(b"", 1);
        assert!(!z.is_empty());
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), b"");
    }

    #[test]
    fn one_frame_is_the_frame_the_encoder_writes() {
        let data: Vec<u8> = (0..200_000).map(|i| b"id,name\n1,\"a\"\"b\"\n"[i % 17]).collect();
        for level in [3, 3, 1, 3] {
            let mut enc = FrameEncoder::new(Vec::new(), level).unwrap();
            enc.write_all(&data).unwrap();
            assert_eq!(compress_one_frame(&data, level).unwrap(), enc.finish().unwrap());
        }
        let empty = compress_one_frame(b"", 3).unwrap();
        assert_eq!(empty, compress(b"", 1));
    }

    #[test]
    fn writer_errors_are_returned() {
        #[derive(Debug)]
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("no space left on device"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut enc = FrameEncoder::new(Full, 3).unwrap();
        enc.write_all(b"a,b\n").unwrap();
        let err = enc.finish().unwrap_err();
        assert!(err.to_string().contains("no space left"));
    }
}
