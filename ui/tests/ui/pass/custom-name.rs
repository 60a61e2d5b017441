use cachemacro_runtime::memoize;

#[memoize(name = "geo.nearby_stores", ttl = "15m", capacity = 100)]
fn nearby_stores(postcode: &str) -> Vec<String> {
    vec![format!("{postcode} high street")]
}

fn main() {
    assert_eq!(nearby_stores("N1"), ["N1 high street"]);
    assert_eq!(nearby_stores("N1"), ["N1 high street"]);
    assert_eq!(nearby_stores::stats().hits, 1);
}
