//! serde for [`CachedPage`] and [`PageKey`] (feature `serde`, on with `redis`,
//! `memcached`, `disk` and `postgres`), so that pages live in a store outside the
//! process and every instance of an application answers from the same cache.
//!
//! The wire form is a private mirror of the page: names and values of headers as bytes,
//! times as milliseconds since the Unix epoch (a page stored by one host is judged fresh
//! or stale by another's clock). Anything that does not rebuild a valid page (a bad
//! status, a header name with a space) is a decoding error, which the stores report as
//! [`StoreError::Corrupt`](crate::StoreError::Corrupt): a miss that gets overwritten.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::cache_control::ResponseDirectives;
use super::entry::{CachedPage, Page, Stored};
use super::freshness::{Freshness, StaleWindows};
use super::key::PageKey;

#[derive(Serialize, Deserialize)]
enum WireEntry<'a> {
    Page(#[serde(borrow)] WirePage<'a>),
    Variants {
        names: Vec<Cow<'a, str>>,
        generation: u64,
    },
}

#[derive(Serialize, Deserialize)]
struct WirePage<'a> {
    status: u16,
    #[serde(borrow)]
    headers: Vec<WireHeader<'a>>,
    #[serde(with = "serde_bytes", borrow)]
    body: Cow<'a, [u8]>,
    #[serde(borrow)]
    etag: Option<WireBytes<'a>>,
    response_time_ms: u64,
    initial_age_ms: u64,
    lifetime_ms: u64,
    must_revalidate: bool,
    public: bool,
    stamps: bool,
    #[serde(borrow)]
    vary: Vec<WireVary<'a>>,
}

#[derive(Serialize, Deserialize)]
struct WireHeader<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(with = "serde_bytes", borrow)]
    value: Cow<'a, [u8]>,
}

#[derive(Serialize, Deserialize)]
struct WireVary<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    values: Vec<WireBytes<'a>>,
}

#[derive(Serialize, Deserialize)]
struct WireBytes<'a>(#[serde(with = "serde_bytes", borrow)] Cow<'a, [u8]>);

fn millis_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

fn header_pairs(headers: &HeaderMap) -> Vec<WireHeader<'_>> {
    headers
        .iter()
        .map(|(name, value)| WireHeader {
            name: Cow::Borrowed(name.as_str()),
            value: Cow::Borrowed(value.as_bytes()),
        })
        .collect()
}

impl Serialize for CachedPage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entry = match &self.0 {
            Stored::Page(page) => WireEntry::Page(WirePage {
                status: page.status.as_u16(),
                headers: header_pairs(&page.stored),
                body: Cow::Borrowed(&page.body),
                etag: page
                    .etag
                    .as_ref()
                    .map(|etag| WireBytes(Cow::Borrowed(etag.as_bytes()))),
                response_time_ms: millis_since_epoch(page.freshness.response_time),
                initial_age_ms: page.freshness.initial_age.as_millis() as u64,
                lifetime_ms: page.freshness.lifetime.as_millis() as u64,
                must_revalidate: page.freshness.must_revalidate,
                public: page.public,
                stamps: page.stamps,
                vary: page
                    .vary
                    .iter()
                    .map(|(name, values)| WireVary {
                        name: Cow::Borrowed(name.as_str()),
                        values: values
                            .iter()
                            .map(|value| WireBytes(Cow::Borrowed(value.as_bytes())))
                            .collect(),
                    })
                    .collect(),
            }),
            Stored::Variants { names, generation } => WireEntry::Variants {
                names: names
                    .iter()
                    .map(|name| Cow::Borrowed(name.as_str()))
                    .collect(),
                generation: *generation,
            },
            Stored::Pass => {
                return Err(S::Error::custom(
                    "a single-flight pass marker is never stored",
                ))
            }
        };
        entry.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CachedPage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        fn name<E: serde::de::Error>(name: &str) -> Result<HeaderName, E> {
            HeaderName::from_bytes(name.as_bytes()).map_err(E::custom)
        }
        fn value<E: serde::de::Error>(value: &[u8]) -> Result<HeaderValue, E> {
            HeaderValue::from_bytes(value).map_err(E::custom)
        }
        let stored = match WireEntry::deserialize(deserializer)? {
            WireEntry::Page(wire) => {
                let mut headers = HeaderMap::with_capacity(wire.headers.len());
                for header in &wire.headers {
                    headers.append(name(&header.name)?, value(&header.value)?);
                }
                let vary = wire
                    .vary
                    .iter()
                    .map(|vary| {
                        let values = vary
                            .values
                            .iter()
                            .map(|bytes| value(&bytes.0))
                            .collect::<Result<_, _>>()?;
                        Ok((name(&vary.name)?, values))
                    })
                    .collect::<Result<_, D::Error>>()?;
                let etag = match &wire.etag {
                    Some(etag) => Some(value(&etag.0)?),
                    None => None,
                };
                let freshness = Freshness {
                    response_time: UNIX_EPOCH + Duration::from_millis(wire.response_time_ms),
                    initial_age: Duration::from_millis(wire.initial_age_ms),
                    lifetime: Duration::from_millis(wire.lifetime_ms),
                    must_revalidate: wire.must_revalidate,
                    // Read again from the stored `Cache-Control`, which the wire keeps.
                    stale: StaleWindows::of(&ResponseDirectives::parse(&headers)),
                };
                Stored::Page(Arc::new(Page::new(
                    StatusCode::from_u16(wire.status).map_err(D::Error::custom)?,
                    headers,
                    Bytes::from(wire.body.into_owned()),
                    etag,
                    freshness,
                    wire.public,
                    wire.stamps,
                    vary,
                )))
            }
            WireEntry::Variants { names, generation } => Stored::Variants {
                names: names
                    .iter()
                    .map(|one| name(one))
                    .collect::<Result<_, D::Error>>()?,
                generation,
            },
        };
        Ok(CachedPage(stored))
    }
}

/// A key serializes as the bytes of [`PageKey::to_bytes`]: injective, so two pages never
/// share a remote key. Keys are only ever written, never read back, so there is no
/// `Deserialize`.
impl Serialize for PageKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(headers: &[(&str, &str)], body: &'static str) -> CachedPage {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let freshness = Freshness {
            response_time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            initial_age: Duration::from_secs(7),
            lifetime: Duration::from_secs(900),
            must_revalidate: true,
            stale: StaleWindows::of(&ResponseDirectives::parse(&map)),
        };
        CachedPage(Stored::Page(Arc::new(Page::new(
            StatusCode::OK,
            map,
            Bytes::from_static(body.as_bytes()),
            Some(HeaderValue::from_static("\"abc\"")),
            freshness,
            true,
            true,
            vec![(
                HeaderName::from_static("accept-language"),
                vec![
                    HeaderValue::from_static("en"),
                    HeaderValue::from_static("fr"),
                ],
            )],
        ))))
    }

    #[test]
    fn a_page_round_trips_with_every_part() {
        let original = page(
            &[
                ("content-type", "text/html"),
                ("set-x", "1"),
                ("set-x", "2"),
                (
                    "cache-control",
                    "max-age=900, stale-while-revalidate=30, stale-if-error=600",
                ),
            ],
            "<h1>Books</h1>",
        );
        let bytes = rmp_serde::to_vec(&original).unwrap();
        let back: CachedPage = rmp_serde::from_slice(&bytes).unwrap();
        let (Stored::Page(a), Stored::Page(b)) = (&original.0, &back.0) else {
            panic!("expected pages");
        };
        assert_eq!(a.status, b.status);
        assert_eq!(a.stored, b.stored);
        assert_eq!(a.headers, b.headers);
        assert_eq!(a.body, b.body);
        assert_eq!(a.etag, b.etag);
        assert_eq!(a.freshness, b.freshness);
        assert_eq!(
            b.freshness.stale,
            StaleWindows {
                while_revalidate: Some(Duration::from_secs(30)),
                if_error: Duration::from_secs(600),
            },
            "the stale windows come back from the stored Cache-Control"
        );
        assert_eq!((a.public, a.stamps), (b.public, b.stamps));
        assert_eq!(a.vary, b.vary);
    }

    #[test]
    fn a_variant_index_round_trips() {
        let index = CachedPage(Stored::Variants {
            names: Arc::from([HeaderName::from_static("accept-language")]),
            generation: 42,
        });
        let back: CachedPage = rmp_serde::from_slice(&rmp_serde::to_vec(&index).unwrap()).unwrap();
        match back.0 {
            Stored::Variants { names, generation } => {
                assert_eq!(&*names, &[HeaderName::from_static("accept-language")]);
                assert_eq!(generation, 42);
            }
            _ => panic!("expected a variant index"),
        }
    }

    #[test]
    fn invalid_parts_are_decoding_errors_not_panics() {
        let bad = WireEntry::Page(WirePage {
            status: 1000,
            headers: Vec::new(),
            body: Cow::Borrowed(b""),
            etag: None,
            response_time_ms: 0,
            initial_age_ms: 0,
            lifetime_ms: 0,
            must_revalidate: false,
            public: false,
            stamps: false,
            vary: Vec::new(),
        });
        let bytes = rmp_serde::to_vec(&bad).unwrap();
        assert!(rmp_serde::from_slice::<CachedPage>(&bytes).is_err());
        let bad_name = WireEntry::Variants {
            names: vec![Cow::Borrowed("not a header")],
            generation: 1,
        };
        let bytes = rmp_serde::to_vec(&bad_name).unwrap();
        assert!(rmp_serde::from_slice::<CachedPage>(&bytes).is_err());
        assert!(rmp_serde::from_slice::<CachedPage>(b"\xc1garbage").is_err());
        assert!(rmp_serde::to_vec(&CachedPage(Stored::Pass)).is_err());
    }

    #[test]
    fn keys_serialize_as_their_injective_bytes() {
        let one = PageKey::from_uri("/stores?postcode=EC1&radius=15");
        let two = PageKey::from_uri("/stores?postcode=EC11&radius=5");
        assert_ne!(
            rmp_serde::to_vec(&one).unwrap(),
            rmp_serde::to_vec(&two).unwrap()
        );
        assert_eq!(
            rmp_serde::to_vec(&one).unwrap(),
            rmp_serde::to_vec(&PageKey::from_uri("/stores?radius=15&postcode=EC1")).unwrap()
        );
    }
}
