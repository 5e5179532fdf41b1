//! Properties that must hold for any input: the codec, the key builder and namespace
//! validation. Bad input is an error or a miss, never a panic.

use crate::cache::codec::{decode, Codec, Decoded, Sections};
use crate::cache::key::{escape_glob, KeyLayout};
use crate::cache::Namespace;
use crate::RequestParts;
use bytes::Bytes;
use proptest::prelude::*;

fn is_namespace_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_payload_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..4096),
                               threshold in 0usize..2048,
                               generation in proptest::option::of(any::<u64>()),
                               clock in proptest::option::of(any::<u64>()),
                               tags in proptest::option::of("[a-z0-9:]{1,12}(\n[a-z0-9:]{1,12}){0,20}"),
                               meta in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))) {
        let codec = Codec::new(threshold, 6);
        let sections = Sections { generation, clock, tags: tags.as_deref().map(str::as_bytes), meta: meta.as_deref() };
        let encoded = codec.encode_with(sections, &payload);
        let decoded = decode(&encoded.bytes).expect("our own encoding decodes");
        prop_assert_eq!(decoded.generation, generation);
        prop_assert_eq!(decoded.clock, clock);
        prop_assert_eq!(&decoded.tags[..], tags.as_deref().unwrap_or_default().as_bytes());
        prop_assert_eq!(&decoded.meta[..], meta.as_deref().unwrap_or_default());
        prop_assert_eq!(decoded.into_plain().expect("inflates"), Bytes::from(payload));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(stored in proptest::collection::vec(any::<u8>(), 0..512)) {
        let stored = Bytes::from(stored);
        if let Ok(decoded) = decode(&stored) {
            let _ = decoded.clone().into_plain();
            let _ = Decoded::into_json::<serde_json::Value>(decoded);
        }
    }

    #[test]
    fn namespaces_are_exactly_the_documented_alphabet(
        name in prop_oneof!["[A-Za-z0-9_.-]{0,70}", "[A-Za-z0-9_.:*?-]{1,70}", "\\PC{0,80}"]
    ) {
        let valid = (1..=64).contains(&name.len()) && name.chars().all(is_namespace_char);
        prop_assert_eq!(Namespace::new(&name).is_ok(), valid);
    }

    #[test]
    fn namespace_keys_never_reach_another_namespace(a in "[A-Za-z0-9_.-]{1,16}", b in "[A-Za-z0-9_.-]{1,16}", key in "\\PC{0,40}") {
        prop_assume!(a != b);
        let layout = KeyLayout::new("wrc");
        let (na, nb) = (Namespace::new(&a).expect("valid"), Namespace::new(&b).expect("valid"));
        let full = layout.full_key(&nb, &key);
        prop_assert!(!full.starts_with(&layout.namespace_start(&na)));
        prop_assert_eq!(layout.split(&full), Some((b.as_str(), key.as_str())));
    }

    #[test]
    fn escaped_text_has_no_unescaped_glob_characters(text in "\\PC{0,60}") {
        let escaped = escape_glob(&text);
        let mut chars = escaped.chars();
        let mut unescaped = String::new();
        while let Some(c) = chars.next() {
            if c == '\\' {
                let next = chars.next();
                prop_assert!(next.is_some_and(|n| matches!(n, '*' | '?' | '[' | ']' | '\\')));
                unescaped.extend(next);
            } else {
                prop_assert!(!matches!(c, '*' | '?' | '[' | ']'));
                unescaped.push(c);
            }
        }
        prop_assert_eq!(unescaped, text);
    }

    #[test]
    fn query_parameter_order_never_changes_the_key(params in proptest::collection::vec("[a-z]{1,4}=[a-z0-9]{0,4}", 0..6), seed in any::<u64>()) {
        let mut shuffled = params.clone();
        let len = shuffled.len();
        if len > 1 {
            shuffled.rotate_left((seed as usize) % len);
            shuffled.swap(0, len - 1);
        }
        prop_assert_eq!(
            RequestParts::get_key_for("/items", &params.join("&")),
            RequestParts::get_key_for("/items", &shuffled.join("&"))
        );
    }
}
