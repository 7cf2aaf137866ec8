//! What a table's CSV becomes on its way to the server, chosen per table.

use bytes::Bytes;

use crate::format::csv_to_binary::{BinaryKind, CsvToBinary};
use crate::format::csv_to_text::CsvToText;
use crate::load::plan::TableLoad;
use crate::storage::manifest::ManifestTable;
use crate::stream::stages::WireFormat;

/// Average row size from which a table is sent as text, not binary.
const LARGE_ROWS: u64 = 64 * 1024;

/// What a table's CSV becomes on its way to the server: COPY binary when
/// every column's type has a covered binary form and is the same in the
/// target (the server loads binary fastest), else COPY text (parsed faster
/// than CSV, exact for every type).
pub enum ToServer {
    Text(CsvToText),
    Binary(CsvToBinary),
}

impl ToServer {
    /// The converter for loading `m`'s file into `t`; on the binary path it
    /// keeps the largest value of the columns that feed sequences.
    pub fn for_table(t: &TableLoad, m: &ManifestTable) -> Self {
        match binary_kinds(t, m) {
            Some(kinds) => {
                ToServer::Binary(CsvToBinary::new(kinds).keep_int_max(&t.sequence_int_columns()))
            }
            None => ToServer::Text(CsvToText::new(m.columns.len())),
        }
    }

    /// The format [`ToServer::for_table`] sends in, without building it.
    pub fn wire_format(t: &TableLoad, m: &ManifestTable) -> WireFormat {
        match binary_kinds(t, m) {
            Some(_) => WireFormat::Binary,
            None => WireFormat::Text,
        }
    }

    /// The largest values kept (binary path only).
    pub fn int_max(&self) -> Option<Vec<(usize, Option<i64>)>> {
        match self {
            ToServer::Binary(b) => b.int_max(),
            ToServer::Text(_) => None,
        }
    }

    /// The block's rows in the server's format, as chunks to send in order.
    pub fn feed(&mut self, block: &[u8]) -> std::result::Result<Vec<Bytes>, String> {
        match self {
            ToServer::Text(t) => {
                let mut out = Vec::new();
                t.feed(block, &mut out)?;
                Ok(vec![Bytes::from(out)])
            }
            ToServer::Binary(b) => Ok(b.feed(block)?.into_iter().map(Bytes::from).collect()),
        }
    }
}

/// Each column's binary form when the table goes as COPY binary: every
/// column's type covered and the same in the target, and rows small enough.
fn binary_kinds(t: &TableLoad, m: &ManifestTable) -> Option<Vec<BinaryKind>> {
    // Binary needs each value whole before its length is written; text
    // streams. A table of large rows stays on text, so memory stays at a
    // block whatever the row size.
    let large_rows = m.csv_bytes / m.rows.max(1) > LARGE_ROWS;
    if !t.binary_ok || large_rows || m.columns.is_empty() {
        return None;
    }
    m.columns.iter().map(|c| BinaryKind::for_type(&c.type_name)).collect()
}
