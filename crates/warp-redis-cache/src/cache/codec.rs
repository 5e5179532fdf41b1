//! The stored format of a cache value: a 3-byte header, optional sections, then the payload,
//! gzip-compressed when it is larger than the threshold.
//!
//! Header: magic byte `0xC7`, format version `1`, flags. Sections follow in this order, each
//! present when its flag is set:
//! - bit 1: the namespace generation, 8 bytes big-endian;
//! - bit 3: the namespace's invalidation clock, 8 bytes big-endian;
//! - bit 4: tag names, a 2-byte big-endian length and that many bytes of names separated by
//!   `\n` (the Redis read script parses this section, so its place and shape are fixed);
//! - bit 2: metadata, a 4-byte big-endian length and that many bytes.
//!
//! Bit 0 says the payload is gzip; bit 5 marks an entry soft-purged (set in place by a Lua
//! script, see [`crate::cache::scripts`]). The generation, clock and tags let a reader tell, in
//! the same round trip, whether the entry was invalidated after it was written; metadata
//! (an HTTP status and headers, say) is never compressed, so it can be read without touching
//! the payload. A reader that finds
//! anything else (a foreign value under our key, an old format, a truncated body) gets
//! [`CodecError`] and treats the entry as a miss. Decoding never copies an uncompressed payload
//! and never decompresses unless asked ([`Decoded::into_plain`]), so a compressed HTTP body can be
//! sent to a gzip-accepting client exactly as stored.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use flate2::write::GzEncoder;
use flate2::Compression;

const MAGIC: u8 = 0xC7;
const VERSION: u8 = 1;
const FLAG_GZIP: u8 = 0b0000_0001;
const FLAG_GENERATION: u8 = 0b0000_0010;
const FLAG_META: u8 = 0b0000_0100;
const FLAG_CLOCK: u8 = 0b0000_1000;
const FLAG_TAGS: u8 = 0b0001_0000;
/// The flag a soft purge of single keys sets in place.
pub const FLAG_SOFT_PURGED: u8 = 0b0010_0000;
const KNOWN_FLAGS: u8 =
    FLAG_GZIP | FLAG_GENERATION | FLAG_META | FLAG_CLOCK | FLAG_TAGS | FLAG_SOFT_PURGED;
/// Length of the header in front of every stored value.
pub const HEADER_LEN: usize = 3;
/// Refuse to inflate a payload past this size: a corrupt or hostile entry cannot exhaust memory.
const MAX_INFLATED_BYTES: u64 = 256 * 1024 * 1024;

/// Why stored bytes could not be decoded; the entry is then treated as a miss.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// Not written by this codec (wrong magic, too short).
    #[error("not a warp-redis-cache value")]
    Foreign,
    /// Written by another format version.
    #[error("unsupported format version {0}")]
    Version(u8),
    /// Flags this version does not know.
    #[error("unknown flags {0:#04x}")]
    Flags(u8),
    /// A section is cut short.
    #[error("truncated value")]
    Truncated,
    /// The gzip stream is damaged.
    #[error("damaged gzip payload: {0}")]
    Gzip(String),
    /// The JSON inside does not match the expected type.
    #[error("payload is not the expected JSON: {0}")]
    Json(String),
}

/// How a payload is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadEncoding {
    /// As is.
    Identity,
    /// gzip-compressed.
    Gzip,
}

/// Compression policy: threshold and level, from settings.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    threshold: usize,
    level: Compression,
}

/// Stored bytes, checked and split: every part is a zero-copy slice of what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// How [`Self::payload`] is encoded.
    pub encoding: PayloadEncoding,
    /// The namespace generation the value was written under, if any.
    pub generation: Option<u64>,
    /// The namespace's invalidation clock when the value's request started, if recorded.
    pub clock: Option<u64>,
    /// Tag names separated by `\n` (empty when there are none).
    pub tags: Bytes,
    /// Whether a soft purge marked the value stale.
    pub soft_purged: bool,
    /// The metadata section (empty when there is none).
    pub meta: Bytes,
    /// The payload as stored (compressed when `encoding` is gzip).
    pub payload: Bytes,
}

/// What goes into a frame besides the payload.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sections<'a> {
    /// The namespace generation to record.
    pub generation: Option<u64>,
    /// The invalidation clock to record.
    pub clock: Option<u64>,
    /// Tag names separated by `\n`, at most 65,535 bytes.
    pub tags: Option<&'a [u8]>,
    /// Metadata stored uncompressed in front of the payload.
    pub meta: Option<&'a [u8]>,
}

/// The result of encoding: the bytes to store and their sizes, for statistics.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Header plus payload, ready to store.
    pub bytes: Bytes,
    /// Payload size before compression.
    pub plain_len: usize,
}

impl Codec {
    /// Compresses payloads larger than `threshold` bytes at gzip `level` (1 to 9).
    pub fn new(threshold: usize, level: u32) -> Self {
        Self {
            threshold,
            level: Compression::new(level.clamp(1, 9)),
        }
    }

    /// Wraps `payload` in the header, compressing it when it is over the threshold and
    /// compression actually makes it smaller.
    pub fn encode(&self, payload: &[u8]) -> Encoded {
        self.encode_with(Sections::default(), payload)
    }

    /// Like [`Self::encode`], with a generation and/or metadata section in front.
    pub fn encode_with(&self, sections: Sections<'_>, payload: &[u8]) -> Encoded {
        if self.should_compress(payload.len()) {
            let compressed = self.gzip(payload);
            if compressed.len() < payload.len() {
                return Encoded {
                    bytes: frame(FLAG_GZIP, sections, &compressed),
                    plain_len: payload.len(),
                };
            }
        }
        Encoded {
            bytes: frame(0, sections, payload),
            plain_len: payload.len(),
        }
    }

    /// Like [`Self::encode_with`], never compressing `payload`.
    pub fn encode_verbatim(&self, sections: Sections<'_>, payload: &[u8]) -> Encoded {
        Encoded {
            bytes: frame(0, sections, payload),
            plain_len: payload.len(),
        }
    }

    /// Wraps a payload that is already gzip-compressed, without compressing it again.
    pub fn encode_precompressed(
        &self,
        sections: Sections<'_>,
        gzip_payload: &[u8],
        plain_len: usize,
    ) -> Encoded {
        Encoded {
            bytes: frame(FLAG_GZIP, sections, gzip_payload),
            plain_len,
        }
    }

    /// Whether a payload of `len` bytes is over the compression threshold.
    pub fn should_compress(&self, len: usize) -> bool {
        len > self.threshold
    }

    /// gzip-compresses `payload` at the configured level.
    pub fn gzip(&self, payload: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::with_capacity(payload.len() / 2), self.level);
        encoder
            .write_all(payload)
            .expect("writing to a Vec cannot fail");
        encoder.finish().expect("writing to a Vec cannot fail")
    }

    /// Serialises `value` as JSON and encodes it.
    pub fn encode_json<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<Encoded, CodecError> {
        let json = serde_json::to_vec(value).map_err(|e| CodecError::Json(e.to_string()))?;
        Ok(self.encode(&json))
    }
}

fn frame(mut flags: u8, sections: Sections<'_>, payload: &[u8]) -> Bytes {
    let meta_len = sections.meta.map_or(0, |meta| 4 + meta.len());
    let tags_len = sections.tags.map_or(0, |tags| 2 + tags.len());
    let stamp_len =
        8 * (usize::from(sections.generation.is_some()) + usize::from(sections.clock.is_some()));
    let mut out =
        BytesMut::with_capacity(HEADER_LEN + stamp_len + tags_len + meta_len + payload.len());
    for (present, flag) in [
        (sections.generation.is_some(), FLAG_GENERATION),
        (sections.clock.is_some(), FLAG_CLOCK),
        (sections.tags.is_some(), FLAG_TAGS),
        (sections.meta.is_some(), FLAG_META),
    ] {
        if present {
            flags |= flag;
        }
    }
    out.put_u8(MAGIC);
    out.put_u8(VERSION);
    out.put_u8(flags);
    if let Some(generation) = sections.generation {
        out.put_u64(generation);
    }
    if let Some(clock) = sections.clock {
        out.put_u64(clock);
    }
    if let Some(tags) = sections.tags {
        let len = u16::try_from(tags.len()).expect("tag names are capped far below 64 KiB");
        out.put_u16(len);
        out.put_slice(tags);
    }
    if let Some(meta) = sections.meta {
        let len = u32::try_from(meta.len()).expect("metadata is far below 4 GiB");
        out.put_u32(len);
        out.put_slice(meta);
    }
    out.put_slice(payload);
    out.freeze()
}

/// Checks the header of `stored` and returns its payload without copying it.
pub fn decode(stored: &Bytes) -> Result<Decoded, CodecError> {
    if stored.len() < HEADER_LEN || stored[0] != MAGIC {
        return Err(CodecError::Foreign);
    }
    if stored[1] != VERSION {
        return Err(CodecError::Version(stored[1]));
    }
    let flags = stored[2];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(CodecError::Flags(flags));
    }
    let encoding = if flags & FLAG_GZIP != 0 {
        PayloadEncoding::Gzip
    } else {
        PayloadEncoding::Identity
    };
    let mut at = HEADER_LEN;
    let mut generation = None;
    if flags & FLAG_GENERATION != 0 {
        let bytes = stored.get(at..at + 8).ok_or(CodecError::Truncated)?;
        generation = Some(u64::from_be_bytes(bytes.try_into().expect("8 bytes")));
        at += 8;
    }
    let mut clock = None;
    if flags & FLAG_CLOCK != 0 {
        let bytes = stored.get(at..at + 8).ok_or(CodecError::Truncated)?;
        clock = Some(u64::from_be_bytes(bytes.try_into().expect("8 bytes")));
        at += 8;
    }
    let mut tags = Bytes::new();
    if flags & FLAG_TAGS != 0 {
        let bytes = stored.get(at..at + 2).ok_or(CodecError::Truncated)?;
        let len = u16::from_be_bytes(bytes.try_into().expect("2 bytes")) as usize;
        at += 2;
        if stored.len() < at + len {
            return Err(CodecError::Truncated);
        }
        tags = stored.slice(at..at + len);
        at += len;
    }
    let mut meta = Bytes::new();
    if flags & FLAG_META != 0 {
        let bytes = stored.get(at..at + 4).ok_or(CodecError::Truncated)?;
        let len = u32::from_be_bytes(bytes.try_into().expect("4 bytes")) as usize;
        at += 4;
        if stored.len() < at + len {
            return Err(CodecError::Truncated);
        }
        meta = stored.slice(at..at + len);
        at += len;
    }
    Ok(Decoded {
        encoding,
        generation,
        clock,
        tags,
        soft_purged: flags & FLAG_SOFT_PURGED != 0,
        meta,
        payload: stored.slice(at..),
    })
}

impl Decoded {
    /// The payload uncompressed: the same bytes when stored as is, else inflated.
    pub fn into_plain(self) -> Result<Bytes, CodecError> {
        match self.encoding {
            PayloadEncoding::Identity => Ok(self.payload),
            PayloadEncoding::Gzip => gunzip(&self.payload).map(Bytes::from),
        }
    }

    /// The payload parsed as JSON of type `T`.
    pub fn into_json<T: serde::de::DeserializeOwned>(self) -> Result<T, CodecError> {
        let plain = self.into_plain()?;
        serde_json::from_slice(&plain).map_err(|e| CodecError::Json(e.to_string()))
    }
}

/// Inflates a gzip payload, refusing damaged streams and anything larger than 256 MiB.
pub fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, CodecError> {
    gunzip_limited(compressed, MAX_INFLATED_BYTES as usize)
}

/// Inflates a gzip payload of at most `limit` bytes; a larger one is an error, never a
/// silently shortened body.
///
/// This runs on every hit of a compressed entry by a client that does not accept gzip, so it
/// avoids per-call setup: the whole stream is at hand and the gzip trailer says how long the
/// output is, so it inflates in one call into a buffer of exactly that size (no sliding
/// dictionary to zero, no buffer regrowth), with the decompressor's tables kept per thread.
/// The CRC-32 and length in the trailer are checked.
pub fn gunzip_limited(compressed: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    use miniz_oxide::inflate::core::decompress;
    use miniz_oxide::inflate::core::inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    use miniz_oxide::inflate::TINFLStatus;
    let member = GzipMember::parse(compressed)?;
    let claimed = member.plain_len as usize;
    if claimed > limit {
        return Err(CodecError::Gzip(format!(
            "inflates to more than {limit} bytes"
        )));
    }
    let mut plain = vec![0u8; claimed];
    let (status, _, written) = INFLATER.with(|inflater| {
        let mut inflater = inflater.borrow_mut();
        inflater.init();
        decompress(
            &mut inflater,
            member.deflate,
            &mut plain,
            0,
            TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
        )
    });
    if status != TINFLStatus::Done || written != claimed {
        return Err(CodecError::Gzip(format!(
            "damaged or mislabelled deflate stream ({status:?}, {written} of {claimed} bytes)"
        )));
    }
    let mut crc = flate2::Crc::new();
    crc.update(&plain);
    if crc.sum() != member.crc {
        return Err(CodecError::Gzip("checksum mismatch".into()));
    }
    Ok(plain)
}

thread_local! {
    static INFLATER: std::cell::RefCell<Box<miniz_oxide::inflate::core::DecompressorOxide>> =
        std::cell::RefCell::new(Box::default());
}

/// One gzip member: its deflate data and its trailer.
struct GzipMember<'a> {
    deflate: &'a [u8],
    crc: u32,
    plain_len: u32,
}

impl<'a> GzipMember<'a> {
    /// Splits a gzip stream (RFC 1952): header (with its optional fields), deflate data, and
    /// the trailer's CRC-32 and length.
    fn parse(bytes: &'a [u8]) -> Result<Self, CodecError> {
        const FHCRC: u8 = 0x02;
        const FEXTRA: u8 = 0x04;
        const FNAME: u8 = 0x08;
        const FCOMMENT: u8 = 0x10;
        let bad = |why: &str| CodecError::Gzip(why.to_string());
        if bytes.len() < 18 || bytes[0] != 0x1f || bytes[1] != 0x8b || bytes[2] != 8 {
            return Err(bad("not a gzip stream"));
        }
        let flags = bytes[3];
        let mut at = 10;
        if flags & FEXTRA != 0 {
            let len = bytes
                .get(at..at + 2)
                .ok_or_else(|| bad("truncated header"))?;
            at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
        }
        for flag in [FNAME, FCOMMENT] {
            if flags & flag != 0 {
                let rest = bytes.get(at..).ok_or_else(|| bad("truncated header"))?;
                let end = rest
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or_else(|| bad("truncated header"))?;
                at += end + 1;
            }
        }
        if flags & FHCRC != 0 {
            at += 2;
        }
        let trailer_at = bytes.len() - 8;
        if at > trailer_at {
            return Err(bad("truncated gzip stream"));
        }
        let word =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Ok(Self {
            deflate: &bytes[at..trailer_at],
            crc: word(trailer_at),
            plain_len: word(trailer_at + 4),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> Codec {
        Codec::new(64, 6)
    }

    #[test]
    fn small_payload_round_trips_uncompressed() {
        let encoded = codec().encode(b"{\"a\":1}");
        assert_eq!(encoded.bytes.len(), HEADER_LEN + 7);
        let decoded = decode(&encoded.bytes).expect("decodes");
        assert_eq!(decoded.encoding, PayloadEncoding::Identity);
        assert_eq!(decoded.into_plain().expect("plain"), &b"{\"a\":1}"[..]);
    }

    #[test]
    fn large_payload_is_compressed_and_round_trips() {
        let payload = "hello cache ".repeat(100);
        let encoded = codec().encode(payload.as_bytes());
        assert!(encoded.bytes.len() < payload.len() / 2);
        let decoded = decode(&encoded.bytes).expect("decodes");
        assert_eq!(decoded.encoding, PayloadEncoding::Gzip);
        assert_eq!(decoded.into_plain().expect("plain"), payload.as_bytes());
    }

    #[test]
    fn incompressible_payload_is_stored_as_is() {
        let payload: Vec<u8> = (0..512u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut noise = payload.clone();
        noise.extend_from_slice(&codec().gzip(&payload));
        let encoded = codec().encode(&codec().gzip(&noise));
        let decoded = decode(&encoded.bytes).expect("decodes");
        assert_eq!(decoded.encoding, PayloadEncoding::Identity);
    }

    #[test]
    fn sections_round_trip_and_stay_uncompressed() {
        let payload = "body ".repeat(100);
        let sections = Sections {
            generation: Some(0xDEAD_BEEF_0102_0304),
            clock: Some(41),
            tags: Some(b"item:1\nitem:2"),
            meta: Some(b"{\"status\":200}"),
        };
        let encoded = codec().encode_with(sections, payload.as_bytes());
        let decoded = decode(&encoded.bytes).expect("decodes");
        assert_eq!(decoded.generation, Some(0xDEAD_BEEF_0102_0304));
        assert_eq!(decoded.clock, Some(41));
        assert_eq!(decoded.tags, &b"item:1\nitem:2"[..]);
        assert!(!decoded.soft_purged);
        assert_eq!(decoded.meta, &b"{\"status\":200}"[..]);
        assert_eq!(decoded.encoding, PayloadEncoding::Gzip);
        assert_eq!(decoded.into_plain().expect("plain"), payload.as_bytes());
    }

    #[test]
    fn inflating_past_the_limit_is_an_error() {
        let compressed = codec().gzip(&[b'a'; 10_000]);
        assert_eq!(
            gunzip_limited(&compressed, 10_000).map(|p| p.len()),
            Ok(10_000)
        );
        assert!(matches!(
            gunzip_limited(&compressed, 9_999),
            Err(CodecError::Gzip(_))
        ));
    }

    #[test]
    fn gzip_with_optional_header_fields_inflates() {
        let mut encoder = flate2::GzBuilder::new()
            .filename("body.json")
            .comment("made elsewhere")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), Compression::default());
        encoder
            .write_all(&b"origin body ".repeat(50))
            .expect("write");
        let compressed = encoder.finish().expect("finish");
        assert_eq!(
            gunzip(&compressed).expect("inflates"),
            b"origin body ".repeat(50)
        );
        let mut corrupted = compressed.clone();
        let len = corrupted.len();
        corrupted[len - 8] ^= 0xff;
        assert!(gunzip(&corrupted).is_err(), "a wrong CRC must be refused");
        assert!(
            gunzip(&compressed[..len - 3]).is_err(),
            "a cut stream must be refused"
        );
    }

    #[test]
    fn json_round_trips() {
        let value = serde_json::json!({"id": 7, "tags": vec!["x"; 40]});
        let encoded = codec().encode_json(&value).expect("encodes");
        let back: serde_json::Value = decode(&encoded.bytes)
            .and_then(Decoded::into_json)
            .expect("decodes");
        assert_eq!(back, value);
    }

    #[test]
    fn corrupt_values_are_errors() {
        assert_eq!(decode(&Bytes::from_static(b"")), Err(CodecError::Foreign));
        assert_eq!(
            decode(&Bytes::from_static(b"plain")),
            Err(CodecError::Foreign)
        );
        assert_eq!(
            decode(&Bytes::from_static(&[MAGIC, 9, 0])),
            Err(CodecError::Version(9))
        );
        assert_eq!(
            decode(&Bytes::from_static(&[MAGIC, VERSION, 0x80])),
            Err(CodecError::Flags(0x80))
        );
        assert_eq!(
            decode(&Bytes::from_static(&[
                MAGIC,
                VERSION,
                FLAG_GENERATION,
                1,
                2
            ])),
            Err(CodecError::Truncated)
        );
        assert_eq!(
            decode(&Bytes::from_static(&[
                MAGIC, VERSION, FLAG_META, 0, 0, 0, 9, 1
            ])),
            Err(CodecError::Truncated)
        );
        let damaged = Bytes::from_static(&[MAGIC, VERSION, FLAG_GZIP, 1, 2, 3]);
        let result = decode(&damaged).and_then(Decoded::into_plain);
        assert!(matches!(result, Err(CodecError::Gzip(_))));
        let not_json = codec().encode(b"{not json");
        let result = decode(&not_json.bytes).and_then(Decoded::into_json::<serde_json::Value>);
        assert!(matches!(result, Err(CodecError::Json(_))));
    }
}
