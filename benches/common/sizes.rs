//! Sizes as the benches print them.

/// A size as `128MiB`, `2.5MiB`, `512KiB`.
pub fn mib(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        let mib = bytes as f64 / (1u64 << 20) as f64;
        if mib.fract() == 0.0 { format!("{mib}MiB") } else { format!("{mib:.1}MiB") }
    } else {
        format!("{}KiB", bytes >> 10)
    }
}
