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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(10 * 1024 * 1024 + 17), "10.0 MiB");
        assert_eq!(rate(2048, Duration::from_secs(2)), "1.0 KiB/s");
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
    }
}
