//! One backup file on its way to the server: read (file size and sha256),
//! checked as the CSV the manifest describes (header, CSV sha256, record
//! count) and turned into the server's format, block by block.
//!
//! All of it is the client's own work, done before a block reaches the
//! target: a one-transaction restore does it on the thread that reads ahead
//! ([`super::files_ahead`]), so the load's thread only sends.

use bytes::Bytes;

use super::to_server::ToServer;
use crate::error::{Error, Result};
use crate::format::compression::Compression;
use crate::format::csv::FirstRecord;
use crate::format::encryption::Identities;
use crate::load::loader::BlockSource;
use crate::load::read_ahead::Weighed;
use crate::storage::location::Location;
use crate::storage::manifest::ManifestTable;
use crate::storage::source::FileSource;
use crate::stream::stages::CsvStages;

/// One block of a file, ready to send.
pub struct WireBlock {
    /// The block's rows in the server's format, as chunks to send in order.
    pub chunks: Vec<Bytes>,
    /// Records and CSV bytes of the file up to this block's end (progress).
    pub rows: u64,
    pub csv_bytes: u64,
}

impl Weighed for WireBlock {
    fn weight(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }
}

/// What reading a whole file found.
pub struct FileChecked {
    /// How the file, its CSV or its header differ from the manifest; empty
    /// when they match.
    pub problems: Vec<String>,
    /// The largest values of the integer columns that feed sequences, when
    /// the binary path kept them.
    pub int_max: Option<Vec<(usize, Option<i64>)>>,
}

/// A file being read, checked and converted.
pub struct CheckedFile {
    source: FileSource,
    table: ManifestTable,
    stages: CsvStages,
    header: FirstRecord,
    header_checked: bool,
    to_server: ToServer,
}

impl CheckedFile {
    /// Opens `table`'s file in `dir`, to be sent as `to_server` says.
    ///
    /// # Errors
    /// The file is missing, not a regular file, or cannot be read.
    pub fn open(
        dir: &Location,
        table: ManifestTable,
        compression: Compression,
        keys: Option<&Identities>,
        to_server: ToServer,
    ) -> Result<CheckedFile> {
        let source = dir.open(&table.file, compression, keys)?;
        Ok(CheckedFile {
            source,
            table,
            stages: CsvStages::new(false),
            header: FirstRecord::new(),
            header_checked: false,
            to_server,
        })
    }

    /// The next block, waiting for the file's reader; for a thread outside
    /// the runtime.
    ///
    /// # Errors
    /// As [`CheckedFile::convert`], and the file's own read errors.
    pub fn next_block_blocking(&mut self) -> Result<Option<WireBlock>> {
        let csv = self.source.next_block().transpose()?;
        self.convert(csv)
    }

    /// Checks one block of CSV and turns it into the server's format.
    ///
    /// # Errors
    /// The header is not the manifest's, or the CSV is not as PostgreSQL
    /// writes it (differences: the file is not the backup's).
    fn convert(&mut self, csv: Option<Bytes>) -> Result<Option<WireBlock>> {
        let Some(block) = csv else { return Ok(None) };
        let file = &self.table.file;
        if !self.header_checked {
            self.header.feed(&block);
            if let Some(h) = self.header.get() {
                self.header_checked = true;
                if let Some(d) = self.table.header_difference(Some(h), 1) {
                    return Err(Error::difference(format!("{file}: {d}")));
                }
            }
        }
        self.stages.feed(&block);
        let chunks = self.to_server.feed(&block).map_err(|e| {
            Error::difference(format!("{file}: not CSV as PostgreSQL writes it: {e}"))
        })?;
        Ok(Some(WireBlock { chunks, rows: self.stages.rows(), csv_bytes: self.stages.bytes() }))
    }

    /// Once every block was taken: the file's size and sha256, the CSV's
    /// sha256, record count and shape, and the header, against the manifest.
    ///
    /// # Errors
    /// The file was not read to its end.
    pub fn finish(self) -> Result<FileChecked> {
        let m = &self.table;
        let summary = self.source.finish()?;
        let mut problems: Vec<String> = m.file_difference(&summary).into_iter().collect();
        let csv_bytes = self.stages.bytes();
        match self.stages.finish() {
            Err(e) => problems.push(format!("CSV is cut short: {e}")),
            Ok(csv) => problems.extend(m.csv_differences(&csv)),
        }
        if !self.header_checked {
            problems.extend(m.header_difference(None, csv_bytes));
        }
        Ok(FileChecked { problems, int_max: self.to_server.int_max() })
    }
}

impl BlockSource<WireBlock> for CheckedFile {
    async fn next_block(&mut self) -> Result<Option<WireBlock>> {
        let csv = self.source.next_block_async().await.transpose()?;
        self.convert(csv)
    }
}
