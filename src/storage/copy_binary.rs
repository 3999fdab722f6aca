//! Rows in PostgreSQL's binary `COPY` format, for the bulk writes where
//! parsing text costs the server more than the rows themselves (a whole
//! base of scores: eight numbers a row). Hand-rolled: sqlx sends `COPY`
//! data as bytes but has no encoder for the binary format, and the format
//! is small and fixed (the header, then per row a field count and each
//! field as length + big-endian bytes; see the PostgreSQL docs, "COPY",
//! "Binary Format"). Only the types the callers write are here: scores
//! and ingest's new `transactions` and `customer_days` rows of large
//! batches.

use super::money::numeric_integer;

/// A binary `COPY ... FROM STDIN WITH (FORMAT binary)` stream being built.
pub(super) struct BinaryRows {
    buf: Vec<u8>,
}

/// PostgreSQL's epoch for dates and times: 2000-01-01, in Unix microseconds.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;
const POSTGRES_EPOCH_DAY: chrono::NaiveDate = match chrono::NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(day) => day,
    None => panic!("2000-01-01 is a date"),
};

/// The signature, flags (no OIDs) and header extension length (none).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

impl BinaryRows {
    /// A stream starting with the header.
    pub(super) fn new(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + HEADER.len());
        buf.extend_from_slice(HEADER);
        Self { buf }
    }

    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The bytes so far, leaving the stream empty (for the next chunk).
    pub(super) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Starts a row of `fields` fields.
    pub(super) fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        // Field lengths are i32; every caller's field is far below that.
        self.buf
            .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    pub(super) fn text(&mut self, s: &str) {
        self.field(s.as_bytes());
    }

    pub(super) fn int2(&mut self, v: i16) {
        self.field(&v.to_be_bytes());
    }

    /// A NULL field.
    pub(super) fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    /// A `timestamptz`: microseconds since 2000-01-01 00:00 UTC.
    pub(super) fn timestamptz(&mut self, at: chrono::DateTime<chrono::Utc>) {
        self.int8(at.timestamp_micros() - POSTGRES_EPOCH_MICROS);
    }

    /// A `date`: days since 2000-01-01.
    pub(super) fn date(&mut self, day: chrono::NaiveDate) {
        // Days between any two chrono dates fit in i32 (chrono's range is
        // about 262,000 years either side).
        let days = (day - POSTGRES_EPOCH_DAY).num_days() as i32;
        self.field(&days.to_be_bytes());
    }

    pub(super) fn int4(&mut self, v: i32) {
        self.field(&v.to_be_bytes());
    }

    pub(super) fn int8(&mut self, v: i64) {
        self.field(&v.to_be_bytes());
    }

    pub(super) fn float8(&mut self, v: f64) {
        self.field(&v.to_bits().to_be_bytes());
    }

    /// An integer as `numeric` (see [`numeric_integer`]).
    pub(super) fn numeric_integer(&mut self, v: i128) {
        let mut bytes = Vec::with_capacity(8 + 2 * 10);
        numeric_integer(v, &mut bytes);
        self.field(&bytes);
    }

    /// Ends the stream (the trailer); call once, after the last row.
    pub(super) fn finish(&mut self) {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::BinaryRows;

    fn numeric(v: i128) -> Vec<u8> {
        let mut rows = BinaryRows::new(0);
        let header = rows.len();
        rows.numeric_integer(v);
        rows.take()[header + 4..].to_vec()
    }

    fn words(b: &[u8]) -> Vec<i16> {
        b.chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn integers_encode_as_postgres_numeric() {
        // ndigits, weight, sign, dscale, digits.
        assert_eq!(words(&numeric(0)), vec![0, 0, 0, 0]);
        assert_eq!(words(&numeric(7)), vec![1, 0, 0, 0, 7]);
        assert_eq!(words(&numeric(10_000)), vec![1, 1, 0, 0, 1]);
        assert_eq!(
            words(&numeric(-123_456_789)),
            vec![3, 2, 0x4000, 0, 1, 2345, 6789]
        );
        assert_eq!(words(&numeric(1_000_000_000_000)), vec![1, 3, 0, 0, 1]);
    }
}
