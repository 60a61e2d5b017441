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

fn with_headers(uri: &str, headers: &[(&str, &str)]) -> PageKey {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    PageKey::for_request(&KeyRules::default(), &uri.parse().unwrap(), &map)
}

#[test]
fn the_scheme_comes_from_the_uri_else_the_proxy_headers_else_is_http() {
    let scheme =
        |uri: &str, headers: &[(&str, &str)]| with_headers(uri, headers).scheme().to_owned();
    assert_eq!(scheme("/a", &[]), "http");
    assert_eq!(scheme("HTTPS://a.example/a", &[]), "https");
    assert_eq!(
        scheme("http://a.example/a", &[("x-forwarded-proto", "https")]),
        "http"
    );
    assert_eq!(scheme("/a", &[("x-forwarded-proto", "HTTPS")]), "https");
    assert_eq!(
        scheme("/a", &[("x-forwarded-proto", "https, http")]),
        "https"
    );
    assert_eq!(
        scheme("/a", &[("x-forwarded-proto", " http ,https")]),
        "http"
    );
    assert_eq!(scheme("/a", &[("x-forwarded-proto", "gopher")]), "http");
    assert_eq!(
        scheme(
            "/a",
            &[(
                "forwarded",
                "for=192.0.2.60;Proto=\"https\";by=203.0.113.43, proto=http"
            )]
        ),
        "https"
    );
    assert_eq!(
        scheme("/a", &[("forwarded", "for=192.0.2.60, proto=https")]),
        "http"
    );
    assert_eq!(
        scheme(
            "/a",
            &[("x-forwarded-proto", "http"), ("forwarded", "proto=https")]
        ),
        "http"
    );
    assert_ne!(
        with_headers("/a", &[("x-forwarded-proto", "https")]),
        with_headers("/a", &[])
    );
    assert_eq!(
        with_headers("/a", &[("x-forwarded-proto", "ftp")]),
        with_headers("/a", &[])
    );
}

#[test]
fn the_scheme_is_a_delimited_part_of_the_bytes() {
    let https = key("https://a.example/a");
    let http = key("http://a.example/a");
    assert_ne!(https.to_bytes(), http.to_bytes());
    assert!(!https.is_page_of(&http));
    let [plain, secure] =
        PageKey::for_every_scheme(&KeyRules::default(), &"/a?x=1".parse().unwrap());
    assert_eq!(plain, key("/a?x=1"));
    assert_eq!((plain.scheme(), secure.scheme()), ("http", "https"));
    assert_eq!(secure.path(), "/a");
}

#[test]
fn ignored_parameters_stay_out_of_the_key() {
    let rules = KeyRules {
        ignore_query: IgnoredParameters::default().with(["utm_*", "fbclid"]),
        ..KeyRules::default()
    };
    let key = |uri: &str| PageKey::for_request(&rules, &uri.parse().unwrap(), &HeaderMap::new());
    assert_eq!(key("/s?utm_source=x&id=1"), key("/s?id=1"));
    assert_eq!(key("/s?id=1&fbclid=abc&utm_medium=mail"), key("/s?id=1"));
    assert_eq!(key("/s?utm_source"), key("/s"));
    assert_ne!(key("/s?id=2&utm_source=x"), key("/s?id=1"));
    assert_ne!(key("/s?fbclid2=x"), key("/s"));
    assert_ne!(key("/s?utm=x"), key("/s"));
}

fn vary(name: &'static str, lines: &[&str]) -> Vec<HeaderValue> {
    let mut headers = HeaderMap::new();
    for line in lines {
        headers.append(name, HeaderValue::from_str(line).unwrap());
    }
    vary_value(&HeaderName::from_static(name), &headers)
}

#[test]
fn vary_values_are_normalised() {
    let language = vary("accept-language", &["en-GB,fr;q=0.5"]);
    assert_eq!(language, [HeaderValue::from_static("en-gb,fr;q=0.5")]);
    assert_eq!(vary("accept-language", &["EN-gb , fr ; q=0.5"]), language);
    assert_eq!(
        vary("accept-language", &["en-GB", " fr;q = 0.5 "]),
        language
    );
    assert_ne!(vary("accept-language", &["fr;q=0.5,en-GB"]), language);
    assert_eq!(
        vary("accept", &["Text/HTML,  application/xml;Q=0.9"]),
        [HeaderValue::from_static("text/html,application/xml;q=0.9")]
    );
    // Case-sensitive headers keep their case; runs of spaces become one.
    assert_eq!(
        vary("cookie", &["Theme=Dark ;  Session=AbC"]),
        [HeaderValue::from_static("Theme=Dark;Session=AbC")]
    );
    assert_eq!(
        vary("x-tenant", &["Big   Corp"]),
        [HeaderValue::from_static("Big Corp")]
    );
    // Quoted strings are kept as sent.
    assert_eq!(
        vary("accept", &["text/html;x=\"A , B\""]),
        [HeaderValue::from_static("text/html;x=\"A , B\"")]
    );
    // Absent and empty differ.
    assert!(vary("accept", &[]).is_empty());
    assert_eq!(vary("accept", &[""]), [HeaderValue::from_static("")]);
}

#[test]
fn equivalent_vary_spellings_are_one_variant() {
    let base = key("/books/1");
    let names = [HeaderName::from_static("accept-language")];
    let mut tidy = HeaderMap::new();
    tidy.insert(
        "accept-language",
        HeaderValue::from_static("en-GB,fr;q=0.5"),
    );
    let mut loose = HeaderMap::new();
    loose.insert(
        "accept-language",
        HeaderValue::from_static("EN-gb , fr ; q=0.5"),
    );
    assert_eq!(
        base.variant(&names, &tidy, 3),
        base.variant(&names, &loose, 3)
    );
    assert_eq!(
        base.variant(&names, &tidy, 3).request_hash(),
        base.variant(&names, &loose, 4).request_hash()
    );
    assert_ne!(
        base.variant(&names, &tidy, 3).request_hash(),
        base.request_hash()
    );
}
