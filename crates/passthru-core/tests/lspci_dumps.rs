//! `pci::dump::parse_dump` on real whole-machine `lspci` listings
//! (`fixtures/pci-config/machines/`), checked against pciutils' own reader: `lspci -F FILE
//! -xxxx` prints the bytes lspci read from the file in its canonical form, and passthru must
//! have read the same bytes for every device.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use passthru_core::pci::PciAddress;
use passthru_core::pci::dump::{DumpError, DumpedDevice, parse_dump};

fn machines() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pci-config/machines")
}

fn read(name: &str) -> String {
    fs_err::read_to_string(machines().join(name)).unwrap()
}

fn lspci_available() -> bool {
    let found = Command::new("lspci")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        let why = "lspci (pciutils) is not installed; install pciutils to compare dump reading \
                   with lspci's";
        if std::env::var_os("PASSTHRU_REQUIRE_LSPCI").is_some() {
            panic!("{why}");
        }
        // Written to stderr directly: libtest does not capture that, so it shows.
        let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {why} ***\n");
    }
    found
}

/// Reads lspci's canonical `-xxxx` output (a header line per device, rows of 16 bytes) with a
/// reader of its own, so that a bug in `parse_dump` cannot hide on both sides.
fn lspci_blocks(output: &str) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut blocks: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut current: Option<(String, Vec<u8>)> = None;
    let mut finish = |block: Option<(String, Vec<u8>)>| {
        if let Some((address, bytes)) = block {
            blocks.entry(address).or_default().push(bytes);
        }
    };
    for line in output.lines() {
        let first = line.split(' ').next().unwrap_or("");
        if first.contains('.') && first.contains(':') && !first.ends_with(':') {
            finish(current.take());
            current = Some((normalise(first), Vec::new()));
        } else if let (Some((_, bytes)), true) = (current.as_mut(), is_row_offset(first)) {
            let row = line.split_once(": ").map_or("", |(_, row)| row);
            bytes.extend(
                row.split(' ')
                    .map(|byte| u8::from_str_radix(byte, 16).expect("lspci prints hex bytes")),
            );
        }
    }
    finish(current.take());
    for configs in blocks.values_mut() {
        configs.retain(|config| !config.is_empty());
        configs.sort();
    }
    blocks
}

/// `00:` .. `ff0:`; not `WARNING:`.
fn is_row_offset(token: &str) -> bool {
    token
        .strip_suffix(':')
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn normalise(address: &str) -> String {
    PciAddress::parse_lenient(address).unwrap().to_string()
}

/// What lspci shows of an image: 64 bytes (128 for CardBus), 256 when present, 4096 when
/// present (`show_hex_dump` in lspci.c).
fn visible(config: &[u8]) -> Vec<u8> {
    let cardbus = config.get(0x0e).is_some_and(|t| t & 0x7f == 2);
    let length = match config.len() {
        4096.. => 4096,
        256.. => 256,
        128.. if cardbus => 128,
        length => length.min(64),
    };
    config[..length].to_vec()
}

fn our_blocks(devices: &[DumpedDevice]) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut blocks: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for device in devices {
        let configs = blocks.entry(device.address.to_string()).or_default();
        if !device.config.is_empty() {
            configs.push(visible(&device.config));
        }
    }
    for configs in blocks.values_mut() {
        configs.sort();
    }
    blocks
}

fn lspci_hex(file: &Path) -> std::process::Output {
    Command::new("lspci")
        .env("LC_ALL", "C")
        .arg("-F")
        .arg(file)
        .arg("-xxxx")
        .output()
        .expect("lspci runs")
}

fn assert_same_bytes_as_lspci(file: &Path, devices: &[DumpedDevice]) {
    let output = lspci_hex(file);
    assert!(output.status.success(), "{}: {output:?}", file.display());
    let theirs = lspci_blocks(&String::from_utf8_lossy(&output.stdout));
    let ours = our_blocks(devices);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{}: device addresses",
        file.display()
    );
    for (address, configs) in &ours {
        assert!(
            *configs == theirs[address],
            "{}: {address}: passthru read {:?} bytes, lspci {:?} bytes, or different values",
            file.display(),
            configs.iter().map(Vec::len).collect::<Vec<_>>(),
            theirs[address].iter().map(Vec::len).collect::<Vec<_>>()
        );
    }
}

/// Listings lspci reads; each is (file, devices with hex rows, blocks in all).
const READABLE: [(&str, usize, usize); 13] = [
    ("e6430_lspci-nnvvvxxxx.txt", 22, 22),
    ("h310_lspci-nnvvvxxxx.txt", 14, 14),
    ("hp-omen15_gtx1060m_lspci-v-nonroot.txt", 0, 22),
    ("m11x_lspci-nnvvvxxxx.txt", 23, 23),
    ("np350v5c_lspci-nnvvvxxxx.txt", 16, 16),
    ("nvbug-4x1080ti_lspci-sections.txt", 14, 116),
    ("nvbug-4x2080ti_lspci-sections.txt", 16, 213),
    ("nvbug-k2200_lspci-sections.txt", 2, 16),
    ("nvbug-titanx_lspci-sections.txt", 2, 84),
    ("pciutils-tree-asus-p6t6_lspci-vvvxxxx.txt", 53, 53),
    ("power9-talos_lspci-vvxxx.txt", 16, 16),
    ("x99qd4_lspci-nnvvvxxxx.txt", 87, 87),
    ("acer_lspci-nnvvvxxxx.txt", 25, 25),
];

#[test]
fn whole_machine_listings_read_like_lspci_reads_them() {
    let check_lspci = lspci_available();
    for (name, with_rows, blocks) in READABLE {
        let devices = parse_dump(&read(name)).unwrap_or_else(|error| panic!("{name}: {error}"));
        let counted = devices
            .iter()
            .filter(|device| !device.config.is_empty())
            .count();
        assert_eq!((counted, devices.len()), (with_rows, blocks), "{name}");
        if !check_lspci {
            continue;
        }
        if name.starts_with("acer") {
            // lspci refuses this listing for its 256-character name line (its line buffer is
            // 256 bytes); with that one line shortened it reads the rest, which must match.
            let shortened: String = read(name)
                .lines()
                .map(|line| format!("{}\n", line.chars().take(200).collect::<String>()))
                .collect();
            let directory = tempfile::tempdir().unwrap();
            let copy = directory.path().join(name);
            fs_err::write(&copy, shortened).unwrap();
            let refused = lspci_hex(&machines().join(name));
            assert!(!refused.status.success(), "lspci now reads {name}");
            assert_same_bytes_as_lspci(&copy, &devices);
        } else {
            assert_same_bytes_as_lspci(&machines().join(name), &devices);
        }
    }
}

#[test]
fn nvidia_bug_report_sections_list_devices_twice() {
    let devices = parse_dump(&read("nvbug-4x1080ti_lspci-sections.txt")).unwrap();
    let gpu = PciAddress::parse_lenient("04:00.0").unwrap();
    let blocks: Vec<&DumpedDevice> = devices.iter().filter(|d| d.address == gpu).collect();
    assert_eq!(blocks.len(), 2, "once in -v -xxx, once in -nn");
    assert_eq!(blocks[0].config.len(), 256);
    assert_eq!(&blocks[0].config[..4], &[0xde, 0x10, 0x06, 0x1b]);
    assert!(blocks[1].config.is_empty());
}

#[test]
fn domains_are_kept() {
    let devices = parse_dump(&read("power9-talos_lspci-vvxxx.txt")).unwrap();
    let domains: std::collections::BTreeSet<u32> =
        devices.iter().map(|d| d.address.domain).collect();
    let expected = vec![0, 1, 2, 3, 4, 5, 0x30, 0x31, 0x32, 0x33];
    assert_eq!(domains.into_iter().collect::<Vec<_>>(), expected);
    assert!(devices.iter().all(|device| device.config.len() == 256));
}

#[test]
fn a_message_printed_into_a_hex_row_is_an_error_that_names_the_line() {
    let name = "x99bd4_lspci-nnvvvxxxx.txt";
    let error = parse_dump(&read(name)).unwrap_err();
    let DumpError::MalformedRow {
        line, device, text, ..
    } = &error
    else {
        panic!("unexpected error: {error}");
    };
    assert_eq!(*line, 5123);
    assert_eq!(device.to_string(), "0000:05:00.1");
    assert!(text.starts_with("f10: 00 00"), "{text}");
    let message = error.to_string();
    assert!(message.contains("`pcilib:` is not a byte"), "{message}");
    if lspci_available() {
        let output = lspci_hex(&machines().join(name));
        assert!(!output.status.success(), "lspci refuses it too");
        assert!(String::from_utf8_lossy(&output.stderr).contains("Malformed line"));
    }
}
