//! The key's structure, scheme, query rules and variant values.

use super::*;

fn key(uri: &str) -> PageKey {
    PageKey::from_uri(uri)
}

#[test]
fn query_order_is_canonical_but_repeats_keep_their_order() {
    assert_eq!(key("/s?b=2&a=1"), key("/s?a=1&b=2"));
    assert_ne!(key("/s?t=1&t=2"), key("/s?t=2&t=1"));
    assert_eq!(key("/s?a=1&&b=2"), key("/s?a=1&b=2"));
}

#[test]
fn parts_cannot_bleed_into_each_other() {
    let cases = [
        "/s?postcode=EC1&radius=15",
        "/s?postcode=EC11&radius=5",
        "/s?a=1=2",
        "/s?a=1&=2",
        "/s?a",
        "/s?a=",
        "/s",
        "/s?",
        "/s%3Fa=1",
    ];
    for (i, one) in cases.iter().enumerate() {
        for two in &cases[i + 1..] {
            let (one_key, two_key) = (key(one), key(two));
            if one_key != two_key {
                assert_ne!(one_key.to_bytes(), two_key.to_bytes(), "{one} vs {two}");
            }
        }
    }
    assert_ne!(
        key("/s?postcode=EC1&radius=15"),
        key("/s?postcode=EC11&radius=5")
    );
}

#[test]
fn host_and_vary_values_are_part_of_the_key() {
    let rules = KeyRules::default();
    let uri = Uri::from_static("/books/1");
    let mut english = HeaderMap::new();
    english.insert(HOST, HeaderValue::from_static("a.example"));
    english.insert("accept-language", HeaderValue::from_static("en"));
    let mut french = english.clone();
    french.insert("accept-language", HeaderValue::from_static("fr"));
    let mut other_host = english.clone();
    other_host.insert(HOST, HeaderValue::from_static("b.example"));
    let base = PageKey::for_request(&rules, &uri, &english);
    assert_eq!(base, PageKey::for_request(&rules, &uri, &french));
    assert_ne!(base, PageKey::for_request(&rules, &uri, &other_host));
    let names = [HeaderName::from_static("accept-language")];
    assert_ne!(
        base.variant(&names, &english, 1),
        base.variant(&names, &french, 1)
    );
    assert_eq!(
        base.variant(&names, &english, 1),
        base.variant(&names, &english.clone(), 1)
    );
    assert_ne!(
        base.variant(&names, &english, 1),
        base.variant(&names, &english, 2)
    );
    assert_ne!(base, base.variant(&names, &english, 0));
}

#[test]
fn a_page_owns_its_variants_of_every_generation_and_no_other_page() {
    let base = key("http://a.example/books/1?lang=en");
    let mut headers = HeaderMap::new();
    headers.insert("accept-language", HeaderValue::from_static("fr"));
    let names = [HeaderName::from_static("accept-language")];
    assert!(base.is_page_of(&base));
    assert!(base.variant(&names, &headers, 7).is_page_of(&base));
    for other in [
        "http://b.example/books/1?lang=en",
        "http://a.example/books/2?lang=en",
        "http://a.example/books/1?lang=fr",
        "http://a.example/books/1",
    ] {
        assert!(!key(other).is_page_of(&base), "{other}");
        assert!(
            !key(other).variant(&names, &headers, 7).is_page_of(&base),
            "{other}"
        );
    }
}
