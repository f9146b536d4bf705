//! Human-readable sizes, rates and durations for messages and tables.

use std::time::Duration;

/// `bytes` in binary units: `512 B`, `1.5 KiB`, `10.0 MiB`.
pub fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Mean rate of `bytes` over `elapsed`: `123.4 MiB/s`.
pub fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    format!("{}/s", self::bytes((bytes as f64 / secs) as u64))
}

/// A duration for people: `850 ms`, `2.35 s`.
pub fn duration(elapsed: Duration) -> String {
    if elapsed < Duration::from_secs(1) { format!("{} ms", elapsed.as_millis()) } else { format!("{:.2} s", elapsed.as_secs_f64()) }
}

/// A wait or a timeout as people say it, to the second: `45 s`, `2 min`, `1 min 30 s`,
/// `1 h 5 min`.
pub fn span(wait: Duration) -> String {
    let secs = wait.as_secs_f64().round() as u64;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_like_people_say_them() {
        let s = Duration::from_secs;
        assert_eq!(
            [span(s(45)), span(s(120)), span(s(90)), span(s(3600)), span(s(3900))],
            ["45 s", "2 min", "1 min 30 s", "1 h", "1 h 5 min"]
        );
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(10 * 1024 * 1024 + 17), "10.0 MiB");
        assert_eq!(rate(2048, Duration::from_secs(2)), "1.0 KiB/s");
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
    }
}
