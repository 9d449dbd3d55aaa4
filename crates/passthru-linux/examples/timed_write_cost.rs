//! What the forked, time-limited sysfs write costs compared with a plain write.
//!
//! `cargo run -p passthru-linux --example timed_write_cost [WRITES]` writes a short value to a
//! file in a temp dir WRITES times (default 2000) both ways and prints the mean per write.
//! An assign makes about a dozen writes, so the cost that matters is per write, not total.

#[cfg(target_os = "linux")]
fn main() {
    use std::time::{Duration, Instant};

    use passthru_linux::sys::linux::timed_write;

    let writes: u32 = std::env::args()
        .nth(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("driver_override");
    fs_err::write(&path, b"(null)\n").expect("the test file");

    let started = Instant::now();
    for _ in 0..writes {
        fs_err::write(&path, b"vfio-pci\n").expect("plain write");
    }
    let plain = started.elapsed() / writes;

    let started = Instant::now();
    for _ in 0..writes {
        timed_write(&path, b"vfio-pci\n", Duration::from_secs(10)).expect("timed write");
    }
    let forked = started.elapsed() / writes;

    println!("writes: {writes}");
    println!(
        "plain write:             {:>8.1} µs",
        plain.as_secs_f64() * 1e6
    );
    println!(
        "forked timed write:      {:>8.1} µs",
        forked.as_secs_f64() * 1e6
    );
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("timed writes exist on Linux only");
}
