//! Prometheus' text format, read as a scraper reads it: what `/metrics` must parse as.

use std::collections::HashMap;

/// Parses Prometheus text as a scraper would, failing on any line that is not a comment or
/// `name{labels} value`, on a sample of a family with no `# TYPE`, and on a histogram whose
/// buckets do not grow or do not end with `le="+Inf"` equal to its `_count`. Returns each
/// sample (`name{labels}` as written) with its value.
pub fn exposition(text: &str) -> HashMap<String, f64> {
    let mut typed = HashMap::new();
    let mut samples = HashMap::new();
    let mut buckets: HashMap<String, Vec<(String, f64)>> = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not `name value`: {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number in {line:?}"));
        let (name, labels) = split_series(series);
        assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad name in {line:?}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"));
        assert!(typed.contains_key(family.unwrap_or(name)), "no # TYPE for {line:?}");
        if name.ends_with("_bucket") {
            let le = labels.iter().find(|(k, _)| k == "le").map(|(_, v)| v.clone()).expect("a bucket has le");
            let rest: Vec<String> = labels.iter().filter(|(k, _)| k != "le").map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            buckets.entry(format!("{}{{{}}}", family.unwrap_or(name), rest.join(","))).or_default().push((le, value));
        }
        assert!(samples.insert(series.to_string(), value).is_none(), "sample twice: {line:?}");
    }
    assert!(!buckets.is_empty(), "no histogram in {text}");
    for (series, list) in &buckets {
        assert!(list.windows(2).all(|w| w[0].1 <= w[1].1), "buckets of {series} are not cumulative: {list:?}");
        let (le, last) = list.last().expect("a bucket");
        assert_eq!(le, "+Inf", "the last bucket of {series}");
        let count = series.replacen('{', "_count{", 1);
        assert_eq!(samples.get(&count), Some(last), "{count} equals the +Inf bucket");
    }
    samples
}

/// `name{a="x",b="y"}` as the name and its labels.
fn split_series(series: &str) -> (&str, Vec<(String, String)>) {
    let Some((name, labels)) = series.split_once('{') else { return (series, Vec::new()) };
    let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {series:?}"));
    let pairs = labels
        .split(',')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("bad label {pair:?} in {series:?}"));
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or_else(|| panic!("unquoted label in {series:?}"));
            (key.to_string(), value.to_string())
        })
        .collect();
    (name, pairs)
}
