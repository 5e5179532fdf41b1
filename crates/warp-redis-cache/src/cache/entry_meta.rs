//! What is stored about a response beside its body ([`EntryMeta`]), and its encoding in the
//! entry's metadata section: a compact binary layout, written by this version, or the JSON
//! earlier versions wrote, still read. Decoding the binary layout costs a fraction of parsing
//! JSON on every Redis hit (issue 16); the JSON shape (the serde names below) is what the
//! operator's entry view shows either way.
//!
//! Binary layout (all integers little-endian): the byte [`BINARY_MARK`]; status `u16`;
//! `stored_at`, `ttl`, `stale_while_revalidate`, `stale_if_error`, `origin`, `initial_age`,
//! `keep_stale` as `u64` milliseconds; a flag byte (bit 0: `must_revalidate`); the ETag; a
//! `u16` count of headers, each a name and a value; a `u16` count of selecting fields, each a
//! name, a presence byte and (when present) a value. Texts are a `u16` length and UTF-8 bytes.

use serde::{Deserialize, Serialize};

/// The first byte of a binary metadata section (JSON starts with `{`).
pub(crate) const BINARY_MARK: u8 = 0xB1;

/// What is kept about a response besides its body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// HTTP status.
    #[serde(rename = "s")]
    pub status: u16,
    /// Representation headers worth replaying (content type, language, ...).
    #[serde(rename = "h")]
    pub headers: Vec<(String, String)>,
    /// When it was stored, in milliseconds since the Unix epoch.
    #[serde(rename = "t")]
    pub stored_at_ms: u64,
    /// How long it is fresh, in milliseconds.
    #[serde(rename = "l")]
    pub ttl_ms: u64,
    /// Its entity tag, quoted.
    #[serde(rename = "e")]
    pub etag: String,
    /// After its fresh lifetime, how long it may be served while a refresh runs (RFC 5861).
    #[serde(rename = "w", default)]
    pub stale_while_revalidate_ms: u64,
    /// After its fresh lifetime, how long it may be served when the origin fails (RFC 5861).
    #[serde(rename = "x", default)]
    pub stale_if_error_ms: u64,
    /// How long the origin took to compute it, in milliseconds (scales early refresh).
    #[serde(rename = "d", default)]
    pub origin_ms: u64,
    /// How old it already was when stored (RFC 9111 corrected initial age; zero in the policy
    /// mode), in milliseconds.
    #[serde(rename = "a", default, skip_serializing_if = "is_zero")]
    pub initial_age_ms: u64,
    /// Never served stale, not even on error (HTTP semantics: `must-revalidate`, `no-cache`,
    /// `s-maxage`, `proxy-revalidate`).
    #[serde(rename = "m", default, skip_serializing_if = "std::ops::Not::not")]
    pub must_revalidate: bool,
    /// Kept this long past every window so that it can be revalidated with its validator
    /// (HTTP semantics), in milliseconds.
    #[serde(rename = "k", default, skip_serializing_if = "is_zero")]
    pub keep_stale_ms: u64,
    /// The request fields its response varies on, with the values of the request that caused
    /// it (HTTP semantics, RFC 9111 section 4.1).
    #[serde(rename = "v", default, skip_serializing_if = "Vec::is_empty")]
    pub selecting: Vec<(String, Option<String>)>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl EntryMeta {
    /// The metadata section for this entry: binary, or JSON when a text is too long for the
    /// binary layout (over 64 KiB).
    pub(crate) fn encode(&self) -> Vec<u8> {
        self.encode_binary()
            .unwrap_or_else(|| serde_json::to_vec(self).unwrap_or_default())
    }

    fn encode_binary(&self) -> Option<Vec<u8>> {
        let texts: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
            + self.etag.len();
        let mut out = Vec::with_capacity(72 + texts);
        out.push(BINARY_MARK);
        out.extend_from_slice(&self.status.to_le_bytes());
        for number in [
            self.stored_at_ms,
            self.ttl_ms,
            self.stale_while_revalidate_ms,
            self.stale_if_error_ms,
            self.origin_ms,
            self.initial_age_ms,
            self.keep_stale_ms,
        ] {
            out.extend_from_slice(&number.to_le_bytes());
        }
        out.push(u8::from(self.must_revalidate));
        put_text(&mut out, &self.etag)?;
        put_count(&mut out, self.headers.len())?;
        for (name, value) in &self.headers {
            put_text(&mut out, name)?;
            put_text(&mut out, value)?;
        }
        put_count(&mut out, self.selecting.len())?;
        for (name, value) in &self.selecting {
            put_text(&mut out, name)?;
            out.push(u8::from(value.is_some()));
            if let Some(value) = value {
                put_text(&mut out, value)?;
            }
        }
        Some(out)
    }

    /// Reads a metadata section, binary or JSON; `None` when it is neither.
    pub(crate) fn decode(section: &[u8]) -> Option<Self> {
        match section.first() {
            Some(&BINARY_MARK) => Reader(&section[1..]).entry_meta(),
            Some(b'{') => serde_json::from_slice(section).ok(),
            _ => None,
        }
    }
}

fn put_count(out: &mut Vec<u8>, count: usize) -> Option<()> {
    out.extend_from_slice(&u16::try_from(count).ok()?.to_le_bytes());
    Some(())
}

fn put_text(out: &mut Vec<u8>, text: &str) -> Option<()> {
    put_count(out, text.len())?;
    out.extend_from_slice(text.as_bytes());
    Some(())
}

/// The unread rest of a binary section.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.0.len() < len {
            return None;
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(taken)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn text(&mut self) -> Option<String> {
        let len = usize::from(self.u16()?);
        std::str::from_utf8(self.take(len)?)
            .ok()
            .map(str::to_string)
    }

    fn entry_meta(mut self) -> Option<EntryMeta> {
        let status = self.u16()?;
        let mut numbers = [0u64; 7];
        for number in &mut numbers {
            *number = self.u64()?;
        }
        let must_revalidate = self.byte()? & 1 == 1;
        let etag = self.text()?;
        let headers = (0..self.u16()?)
            .map(|_| Some((self.text()?, self.text()?)))
            .collect::<Option<Vec<_>>>()?;
        let selecting = (0..self.u16()?)
            .map(|_| {
                let name = self.text()?;
                let value = match self.byte()? {
                    0 => None,
                    _ => Some(self.text()?),
                };
                Some((name, value))
            })
            .collect::<Option<Vec<_>>>()?;
        if !self.0.is_empty() {
            return None;
        }
        let [stored_at_ms, ttl_ms, stale_while_revalidate_ms, stale_if_error_ms, origin_ms, initial_age_ms, keep_stale_ms] =
            numbers;
        Some(EntryMeta {
            status,
            headers,
            stored_at_ms,
            ttl_ms,
            etag,
            stale_while_revalidate_ms,
            stale_if_error_ms,
            origin_ms,
            initial_age_ms,
            must_revalidate,
            keep_stale_ms,
            selecting,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> EntryMeta {
        EntryMeta {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            stored_at_ms: 1_700_000_000_000,
            ttl_ms: 60_000,
            etag: "\"abc\"".into(),
            stale_while_revalidate_ms: 1,
            stale_if_error_ms: 2,
            origin_ms: 3,
            initial_age_ms: 4,
            must_revalidate: true,
            keep_stale_ms: 5,
            selecting: vec![("foo".into(), Some("1".into())), ("bar".into(), None)],
        }
    }

    #[test]
    fn binary_sections_round_trip_and_json_ones_are_still_read() {
        let meta = sample();
        let section = meta.encode();
        assert_eq!(section[0], BINARY_MARK);
        assert_eq!(EntryMeta::decode(&section), Some(meta.clone()));
        let json = serde_json::to_vec(&meta).unwrap();
        assert_eq!(EntryMeta::decode(&json), Some(meta));
        assert_eq!(
            EntryMeta::decode(br#"{"s":200,"h":[],"t":1,"l":2,"e":"x"}"#).map(|m| m.ttl_ms),
            Some(2)
        );
    }

    #[test]
    fn damaged_sections_are_refused_and_long_texts_fall_back_to_json() {
        let section = sample().encode();
        for cut in 0..section.len() {
            assert_eq!(EntryMeta::decode(&section[..cut]), None, "cut at {cut}");
        }
        let mut long = sample();
        long.headers.push(("x-long".into(), "a".repeat(70_000)));
        let section = long.encode();
        assert_eq!(section[0], b'{');
        assert_eq!(EntryMeta::decode(&section), Some(long));
    }

    proptest! {
        #[test]
        fn any_meta_round_trips(
            status in any::<u16>(),
            numbers in any::<[u64; 7]>(),
            must_revalidate in any::<bool>(),
            etag in ".{0,20}",
            headers in proptest::collection::vec(("[a-z-]{1,12}", ".{0,30}"), 0..6),
            selecting in proptest::collection::vec(("[a-z-]{1,12}", proptest::option::of(".{0,10}")), 0..3),
        ) {
            let [stored_at_ms, ttl_ms, stale_while_revalidate_ms, stale_if_error_ms, origin_ms, initial_age_ms, keep_stale_ms] = numbers;
            let meta = EntryMeta { status, headers, stored_at_ms, ttl_ms, etag, stale_while_revalidate_ms, stale_if_error_ms, origin_ms, initial_age_ms, must_revalidate, keep_stale_ms, selecting };
            prop_assert_eq!(EntryMeta::decode(&meta.encode()), Some(meta));
        }
    }
}
