//! CSV as PostgreSQL writes it (pinned settings: UTF8, `DateStyle ISO`,
//! `TimeZone UTC`, exact floats) turned into COPY's binary format, which the
//! server loads fastest, for tables whose every column has a type whose
//! binary form is simple to produce exactly from its text: integers,
//! booleans, floats, numeric, text types, uuid, date, timestamp(tz), json
//! and jsonb. Any other type keeps its table on COPY text.
//!
//! A value that does not parse as its type is an error, never a guess; the
//! server checks what it receives again (`numeric_recv`, `date_recv`, ...).

use super::binary::IntMax;
use super::csv_fields::{CsvFields, Field};

/// The binary encoder of one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    /// text, varchar, char(n), json: the text's bytes.
    Text,
    Jsonb,
    Uuid,
    Date,
    Timestamp,
    Timestamptz,
}

impl BinaryKind {
    /// The encoder for a column of `type_name` (as `format_type` writes it),
    /// if its binary form is covered.
    pub fn for_type(type_name: &str) -> Option<Self> {
        let base = type_name.split('(').next().unwrap_or_default().trim();
        Some(match base {
            "boolean" => Self::Bool,
            "smallint" => Self::Int2,
            "integer" => Self::Int4,
            "bigint" => Self::Int8,
            "real" => Self::Float4,
            "double precision" => Self::Float8,
            "numeric" => Self::Numeric,
            "text" | "character varying" | "character" | "json" => Self::Text,
            "jsonb" => Self::Jsonb,
            "uuid" => Self::Uuid,
            "date" => Self::Date,
            "timestamp without time zone" => Self::Timestamp,
            "timestamp with time zone" => Self::Timestamptz,
            _ => return None,
        })
    }

    /// Appends the binary form of `value` (not NULL) to `out`: its length,
    /// then its bytes. A large text or jsonb value is not copied: its buffer
    /// is taken and becomes the next chunk of `chunks`, so a 100 MB value is
    /// held once.
    fn encode_value(
        self,
        value: &mut Vec<u8>,
        out: &mut Vec<u8>,
        chunks: &mut Vec<Vec<u8>>,
    ) -> Result<(), String> {
        if value.len() < LARGE_VALUE || !matches!(self, Self::Text | Self::Jsonb) {
            return self.encode(value, out);
        }
        std::str::from_utf8(value).map_err(|_| "not UTF-8".to_string())?;
        let version: &[u8] = if self == Self::Jsonb { &[1] } else { &[] };
        out.extend_from_slice(&((value.len() + version.len()) as i32).to_be_bytes());
        out.extend_from_slice(version);
        chunks.push(std::mem::take(out));
        chunks.push(std::mem::take(value));
        Ok(())
    }

    /// Appends the binary form of `text` (a value, not NULL) to `out`:
    /// its length, then its bytes.
    fn encode(self, text: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let fixed = |out: &mut Vec<u8>, bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        let s = || std::str::from_utf8(text).map_err(|_| "not UTF-8".to_string());
        match self {
            Self::Bool => match text {
                b"t" => fixed(out, &[1]),
                b"f" => fixed(out, &[0]),
                _ => return Err("not a boolean".into()),
            },
            Self::Int2 => fixed(out, &int::<i16>(s()?)?.to_be_bytes()),
            Self::Int4 => fixed(out, &int::<i32>(s()?)?.to_be_bytes()),
            Self::Int8 => fixed(out, &int::<i64>(s()?)?.to_be_bytes()),
            Self::Float4 => fixed(out, &(float(s()?)? as f32).to_be_bytes()),
            Self::Float8 => fixed(out, &float(s()?)?.to_be_bytes()),
            Self::Numeric => {
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                numeric(s()?, out)?;
                let len = (out.len() - at - 4) as i32;
                out[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
            Self::Text => {
                s()?;
                fixed(out, text);
            }
            Self::Jsonb => {
                s()?;
                out.extend_from_slice(&(text.len() as i32 + 1).to_be_bytes());
                out.push(1);
                out.extend_from_slice(text);
            }
            Self::Uuid => fixed(out, &uuid(text)?),
            Self::Date => fixed(out, &date(s()?)?.to_be_bytes()),
            Self::Timestamp => fixed(out, &timestamp(s()?, false)?.to_be_bytes()),
            Self::Timestamptz => fixed(out, &timestamp(s()?, true)?.to_be_bytes()),
        }
        Ok(())
    }
}

fn int<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{s:?} is not an integer of its size"))
}

fn float(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')) =>
        {
            s.parse().map_err(|_| format!("{s:?} is not a number"))
        }
        _ => Err(format!("{s:?} is not a number")),
    }
}

/// `numeric`'s binary form: digit count, weight, sign, display scale, then
/// base-10000 digits, from its plain decimal text (PostgreSQL never writes
/// an exponent for numeric).
fn numeric(s: &str, out: &mut Vec<u8>) -> Result<(), String> {
    const POS: u16 = 0x0000;
    const NEG: u16 = 0x4000;
    let special = |sign: u16, out: &mut Vec<u8>| {
        for v in [0u16, 0, sign, 0] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    };
    match s {
        "NaN" => {
            special(0xC000, out);
            return Ok(());
        }
        "Infinity" => {
            special(0xD000, out);
            return Ok(());
        }
        "-Infinity" => {
            special(0xF000, out);
            return Ok(());
        }
        _ => {}
    }
    let bad = || format!("{s:?} is not a numeric");
    let (sign, digits) = match s.strip_prefix('-') {
        Some(rest) => (NEG, rest),
        None => (POS, s),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let dscale = u16::try_from(frac_part.len()).map_err(|_| bad())?;
    // Base-10000 groups aligned on the decimal point: the integer part padded
    // on the left, the fraction on the right, to multiples of four digits.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let mut all = Vec::with_capacity(int_pad + int_part.len() + frac_part.len() + frac_pad);
    all.extend(std::iter::repeat_n(b'0', int_pad));
    all.extend_from_slice(int_part.as_bytes());
    all.extend_from_slice(frac_part.as_bytes());
    all.extend(std::iter::repeat_n(b'0', frac_pad));
    let mut groups: Vec<i16> = all
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = ((int_pad + int_part.len()) / 4) as i32 - 1;
    let leading = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign = if groups.is_empty() { POS } else { sign };
    let ndigits = i16::try_from(groups.len()).map_err(|_| bad())?;
    let weight = i16::try_from(weight).map_err(|_| bad())?;
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(())
}

fn uuid(text: &[u8]) -> Result<[u8; 16], String> {
    let mut out = [0u8; 16];
    let mut n = 0;
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut high = None;
    for &b in text {
        if b == b'-' {
            continue;
        }
        let v = hex(b).ok_or("not a uuid")?;
        match high.take() {
            None => high = Some(v),
            Some(h) => {
                *out.get_mut(n).ok_or("not a uuid")? = h << 4 | v;
                n += 1;
            }
        }
    }
    if n != 16 || high.is_some() {
        return Err("not a uuid".into());
    }
    Ok(out)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (astronomical year).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i64 = 10_957;

/// `YYYY-MM-DD` (year of any length) with an optional ` BC` after the whole
/// value: days since 2000-01-01 and what follows the date.
fn date_part(s: &str) -> Result<(i64, &str, bool), String> {
    let bad = || format!("{s:?} is not an ISO date");
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let dash = s.find('-').ok_or_else(bad)?;
    let year: i64 = s[..dash].parse().map_err(|_| bad())?;
    let rest = &s[dash + 1..];
    if rest.len() < 5 || rest.as_bytes()[2] != b'-' {
        return Err(bad());
    }
    let month: i64 = rest[..2].parse().map_err(|_| bad())?;
    let day: i64 = rest[3..5].parse().map_err(|_| bad())?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let year = if bc { 1 - year } else { year };
    Ok((days_from_civil(year, month, day) - PG_EPOCH_DAYS, &rest[5..], bc))
}

fn date(s: &str) -> Result<i32, String> {
    match s {
        "infinity" => return Ok(i32::MAX),
        "-infinity" => return Ok(i32::MIN),
        _ => {}
    }
    let (days, rest, _) = date_part(s)?;
    if !rest.is_empty() {
        return Err(format!("{s:?} is not an ISO date"));
    }
    i32::try_from(days).map_err(|_| format!("{s:?} is out of range"))
}

/// `date HH:MM:SS[.ffffff][+HH[:MM[:SS]]][ BC]`: microseconds since
/// 2000-01-01 00:00:00 (UTC when `with_zone`).
fn timestamp(s: &str, with_zone: bool) -> Result<i64, String> {
    match s {
        "infinity" => return Ok(i64::MAX),
        "-infinity" => return Ok(i64::MIN),
        _ => {}
    }
    let bad = || format!("{s:?} is not an ISO timestamp");
    let (days, rest, _) = date_part(s)?;
    let time = rest.strip_prefix(' ').ok_or_else(bad)?;
    if time.len() < 8 || time.as_bytes()[2] != b':' || time.as_bytes()[5] != b':' {
        return Err(bad());
    }
    let num = |t: &str| t.parse::<i64>().map_err(|_| bad());
    let (h, m, sec) = (num(&time[..2])?, num(&time[3..5])?, num(&time[6..8])?);
    let mut rest = &time[8..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 6 {
            return Err(bad());
        }
        micros = num(&frac[..n])? * 10i64.pow(6 - n as u32);
        rest = &frac[n..];
    }
    let mut offset = 0i64;
    if with_zone {
        let sign = match rest.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(bad()),
        };
        let parts: Vec<&str> = rest[1..].split(':').collect();
        if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.len() != 2) {
            return Err(bad());
        }
        let mut secs = 0;
        for (k, p) in parts.iter().enumerate() {
            secs += num(p)? * [3600, 60, 1][k];
        }
        offset = sign * secs;
    } else if !rest.is_empty() {
        return Err(bad());
    }
    let seconds = days * 86_400 + h * 3600 + m * 60 + sec - offset;
    seconds.checked_mul(1_000_000).and_then(|v| v.checked_add(micros)).ok_or_else(bad)
}

/// A value from this size on is passed on in its own buffer.
const LARGE_VALUE: usize = 1 << 20;

/// The transcoder of one table's stream: CSV in, COPY binary out.
#[derive(Debug)]
pub struct CsvToBinary {
    kinds: Vec<BinaryKind>,
    fields: CsvFields,
    started: bool,
    /// The field of the current record about to be written.
    column: usize,
    /// The largest values of chosen integer columns, read on the way.
    max: Option<IntMax>,
}

impl CsvToBinary {
    /// A transcoder for a stream whose first record is a header, with one
    /// encoder per column, in the stream's order.
    pub fn new(kinds: Vec<BinaryKind>) -> Self {
        CsvToBinary { kinds, fields: CsvFields::new(true), started: false, column: 0, max: None }
    }

    /// Also keeps the largest value of the integer `columns` (stream indexes).
    pub fn keep_int_max(mut self, columns: &[usize]) -> Self {
        if !columns.is_empty() {
            self.max = Some(IntMax::new(columns));
        }
        self
    }

    /// Each kept column's largest value so far (see
    /// [`CsvToBinary::keep_int_max`]), unless one was not an integer.
    pub fn int_max(&self) -> Option<Vec<(usize, Option<i64>)>> {
        self.max.as_ref().and_then(IntMax::maxima)
    }

    /// Returns the binary form of `input` as chunks to send in order (the
    /// format's signature first; a large value in a chunk of its own).
    ///
    /// # Errors
    /// A value that is not its type's text, or a record with another number
    /// of fields than the table has columns.
    pub fn feed(&mut self, input: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut chunks = Vec::new();
        let mut out = Vec::new();
        self.feed_into(input, &mut out, &mut chunks)?;
        if !out.is_empty() {
            chunks.push(out);
        }
        Ok(chunks)
    }

    fn feed_into(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        chunks: &mut Vec<Vec<u8>>,
    ) -> Result<(), String> {
        if !self.started {
            self.started = true;
            out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
            out.extend_from_slice(&0i32.to_be_bytes());
            out.extend_from_slice(&0i32.to_be_bytes());
        }
        out.reserve(input.len() + input.len() / 8);
        let kinds = &self.kinds;
        let column = &mut self.column;
        let max = &mut self.max;
        self.fields.feed(input, |field| {
            if field == Field::EndOfRecord {
                if *column != kinds.len() {
                    return Err("a record has fewer fields than the table has columns".into());
                }
                *column = 0;
                return Ok(());
            }
            if *column == 0 {
                out.extend_from_slice(&(kinds.len() as i16).to_be_bytes());
            }
            let kind =
                kinds.get(*column).ok_or("a record has more fields than the table has columns")?;
            match field {
                Field::Null => out.extend_from_slice(&(-1i32).to_be_bytes()),
                Field::Value(v) => {
                    if let Some(max) = max.as_mut()
                        && max.tracks(*column)
                    {
                        match std::str::from_utf8(v).ok().and_then(|t| t.parse::<i64>().ok()) {
                            Some(n) => max.observe(*column, n),
                            None => max.lose(*column),
                        }
                    }
                    kind.encode_value(v, out, chunks)
                        .map_err(|e| format!("column {}: {e}", *column + 1))?
                }
                Field::EndOfRecord => {
                    if *column != kinds.len() {
                        return Err("a record has fewer fields than the table has columns".into());
                    }
                    *column = 0;
                    return Ok(());
                }
            }
            *column += 1;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        numeric(s, &mut out).unwrap();
        out
    }

    fn words(v: &[i16]) -> Vec<u8> {
        v.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn keeps_the_largest_of_an_integer_column_at_any_chunking() {
        let csv = b"id,name\n5,a\n,b\n12,\"c\"\n-3,d\n";
        for chunk in 1..=csv.len() {
            let mut t =
                CsvToBinary::new(vec![BinaryKind::Int8, BinaryKind::Text]).keep_int_max(&[0]);
            for piece in csv.chunks(chunk) {
                t.feed(piece).unwrap();
            }
            assert_eq!(t.int_max(), Some(vec![(0, Some(12))]), "chunk {chunk}");
        }
        let mut none = CsvToBinary::new(vec![BinaryKind::Int8]).keep_int_max(&[0]);
        none.feed(b"id\n\n").unwrap();
        assert_eq!(none.int_max(), Some(vec![(0, None)]));
    }

    #[test]
    fn numerics_as_numeric_send_writes_them() {
        // ndigits, weight, sign, dscale, digits.
        assert_eq!(num("0"), words(&[0, 0, 0, 0]));
        assert_eq!(num("0.00"), words(&[0, 0, 0, 2]));
        assert_eq!(num("123.45"), words(&[2, 0, 0, 2, 123, 4500]));
        assert_eq!(num("-10000"), words(&[1, 1, 0x4000, 0, 1]));
        assert_eq!(num("0.0001"), words(&[1, -1, 0, 4, 1]));
        assert_eq!(num("12345678.9"), words(&[3, 1, 0, 1, 1234, 5678, 9000]));
        assert_eq!(num("NaN"), words(&[0, 0, 0xC000u16 as i16, 0]));
        assert!(numeric("1e5", &mut Vec::new()).is_err());
    }

    #[test]
    fn dates_and_timestamps_count_from_2000() {
        assert_eq!(date("2000-01-01").unwrap(), 0);
        assert_eq!(date("1999-12-31").unwrap(), -1);
        assert_eq!(date("2000-03-01").unwrap(), 60);
        assert_eq!(date("4714-11-24 BC").unwrap(), -2_451_545);
        assert_eq!(date("infinity").unwrap(), i32::MAX);
        assert_eq!(timestamp("2000-01-01 00:00:01.5", false).unwrap(), 1_500_000);
        assert_eq!(timestamp("2000-01-01 01:00:00+01", true).unwrap(), 0);
        assert_eq!(timestamp("1999-12-31 23:59:59.999999-00:00:01", true).unwrap(), 999_999);
        assert!(timestamp("2000-01-01", false).is_err());
    }

    #[test]
    fn a_record_becomes_a_tuple() {
        let mut t = CsvToBinary::new(vec![BinaryKind::Int4, BinaryKind::Text, BinaryKind::Bool]);
        let out = t.feed(b"a,b,c\n7,,t\n").unwrap().concat();
        let mut want = b"PGCOPY\n\xff\r\n\0".to_vec();
        want.extend_from_slice(&[0; 8]);
        want.extend_from_slice(&3i16.to_be_bytes());
        want.extend_from_slice(&4i32.to_be_bytes());
        want.extend_from_slice(&7i32.to_be_bytes());
        want.extend_from_slice(&(-1i32).to_be_bytes());
        want.extend_from_slice(&1i32.to_be_bytes());
        want.push(1);
        assert_eq!(out, want);
        assert!(t.feed(b"1,x\n").is_err());
    }
}
