//! The snapshot format: round trips, clear errors on damaged files, replay semantics.

use std::io;
use std::path::Path;

use passthru_core::hostfs::{EntryKind, HostFs};
use proptest::prelude::*;

use super::*;

fn sample() -> Snapshot {
    Snapshot::new(vec![
        Entry::Dir {
            path: "/sys/bus/pci/devices".into(),
            entries: vec![ListedEntry {
                name: "0000:00:01.0".into(),
                kind: ListedKind::Link,
            }],
        },
        Entry::Link {
            path: "/sys/bus/pci/devices/0000:00:01.0".into(),
            target: "../../../devices/pci0000:00/0000:00:01.0".into(),
        },
        Entry::file(
            Path::new("/sys/devices/pci0000:00/0000:00:01.0/vendor"),
            b"0x1af4\n",
            false,
        ),
        Entry::file(
            Path::new("/sys/devices/pci0000:00/0000:00:01.0/config"),
            &[0xf4, 0x1a, 0, 0x10, 0xff],
            false,
        ),
        Entry::Error {
            path: "/sys/devices/pci0000:00/0000:00:01.0/rom".into(),
            op: Operation::Read,
            kind: "PermissionDenied".into(),
            message: "Permission denied (os error 13)".into(),
        },
        Entry::Exists {
            path: "/dev/kvm".into(),
            kind: ListedKind::Special,
        },
    ])
}

#[test]
fn round_trips_through_json_and_gzip() {
    let snapshot = sample();
    assert_eq!(Snapshot::from_bytes(&snapshot.to_json()).unwrap(), snapshot);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("host.json.gz");
    snapshot.save(&file).unwrap();
    assert_eq!(&fs_err::read(&file).unwrap()[..2], &[0x1f, 0x8b]);
    assert_eq!(Snapshot::load(&file).unwrap(), snapshot);
}

#[test]
fn binary_content_is_base64_and_text_stays_text() {
    let json = String::from_utf8(sample().to_json()).unwrap();
    assert!(json.contains("\"text\": \"0x1af4\\n\""));
    assert!(json.contains("\"base64\": \"9BoAEP8=\""));
}

#[test]
fn replay_follows_links_in_the_middle_of_paths_and_reproduces_errors() {
    let fs = SnapshotFs::new(&sample());
    assert_eq!(
        fs.read(Path::new("/sys/bus/pci/devices/0000:00:01.0/vendor"))
            .unwrap(),
        b"0x1af4\n"
    );
    assert_eq!(
        fs.kind(Path::new("/sys/bus/pci/devices/0000:00:01.0")),
        Some(EntryKind::Symlink)
    );
    assert_eq!(fs.kind(Path::new("/dev/kvm")), Some(EntryKind::Other));
    assert_eq!(
        fs.read_prefix(Path::new("/sys/devices/pci0000:00/0000:00:01.0/config"), 2)
            .unwrap(),
        [0xf4, 0x1a]
    );
    let error = fs
        .read(Path::new("/sys/devices/pci0000:00/0000:00:01.0/rom"))
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(error.to_string(), "Permission denied (os error 13)");
    assert_eq!(
        fs.read(Path::new("/nope")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        fs.read_dir(Path::new("/sys/bus/pci/devices"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        fs.read(Path::new("/sys/bus/pci/devices"))
            .unwrap_err()
            .kind(),
        io::ErrorKind::IsADirectory
    );
}

#[test]
fn link_loops_are_an_error_not_a_hang() {
    let snapshot = Snapshot::new(vec![
        Entry::Link {
            path: "/a".into(),
            target: "b".into(),
        },
        Entry::Link {
            path: "/b".into(),
            target: "a".into(),
        },
    ]);
    let fs = SnapshotFs::new(&snapshot);
    assert!(
        fs.read(Path::new("/a/x"))
            .unwrap_err()
            .to_string()
            .contains("symbolic links")
    );
}

#[test]
fn truncated_files_say_so() {
    let json = sample().to_json();
    let error = Snapshot::from_bytes(&json[..json.len() / 2]).unwrap_err();
    assert!(matches!(error, SnapshotError::Truncated { .. }), "{error}");
    assert!(error.to_string().contains("truncated"));
}

#[test]
fn damaged_gzip_says_so() {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, &sample().to_json()).unwrap();
    let bytes = encoder.finish().unwrap();
    let error = Snapshot::from_bytes(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(matches!(error, SnapshotError::Gzip(_)), "{error}");
}

#[test]
fn garbage_wrong_format_and_newer_versions_are_explained() {
    assert!(matches!(
        Snapshot::from_bytes(b"hello"),
        Err(SnapshotError::Malformed { .. })
    ));
    assert!(matches!(
        Snapshot::from_bytes(b""),
        Err(SnapshotError::Truncated { .. })
    ));
    let wrong = br#"{"format": "something-else", "version": 1, "created_by": "x", "entries": []}"#;
    assert!(matches!(
        Snapshot::from_bytes(wrong),
        Err(SnapshotError::WrongFormat(_))
    ));
    let newer = br#"{"format": "passthru-snapshot", "version": 2, "created_by": "x", "entries": [{"type": "hologram"}]}"#;
    let error = Snapshot::from_bytes(newer).unwrap_err();
    assert!(
        matches!(error, SnapshotError::UnsupportedVersion { found: 2 }),
        "{error}"
    );
}

#[test]
fn invalid_entries_name_the_entry() {
    let cases = [
        (
            r#"{"type": "file", "path": "relative", "text": ""}"#,
            "absolute",
        ),
        (
            r#"{"type": "file", "path": "/a/../b", "text": ""}"#,
            "normalized",
        ),
        (
            r#"{"type": "file", "path": "/a", "base64": "!!!"}"#,
            "base64",
        ),
        (
            r#"{"type": "file", "path": "/a", "text": "x", "base64": "eA=="}"#,
            "exactly one",
        ),
        (
            r#"{"type": "dir", "path": "/a", "entries": [{"name": "x/y", "kind": "file"}]}"#,
            "file name",
        ),
        (r#"{"type": "link", "path": "/a", "target": ""}"#, "empty"),
    ];
    for (entry, expected) in cases {
        let json = format!(
            r#"{{"format": "passthru-snapshot", "version": 1, "created_by": "t", "entries": [{entry}]}}"#
        );
        let error = Snapshot::from_bytes(json.as_bytes()).unwrap_err();
        assert!(
            matches!(error, SnapshotError::InvalidEntry { index: 0, .. })
                && error.to_string().contains(expected),
            "{entry}: {error}"
        );
    }
    let duplicate = r#"{"format": "passthru-snapshot", "version": 1, "created_by": "t", "entries": [{"type": "file", "path": "/a", "text": ""}, {"type": "file", "path": "/a", "text": "x"}]}"#;
    assert!(
        Snapshot::from_bytes(duplicate.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("twice")
    );
}

fn path_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec("[a-z0-9:._-]{1,8}", 1..5).prop_map(|parts| {
        let path = format!("/{}", parts.join("/"));
        passthru_core::hostfs::normalize(Path::new(&path))
            .display()
            .to_string()
    })
}

fn entry_strategy() -> impl Strategy<Value = Entry> {
    prop_oneof![
        (
            path_strategy(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(path, bytes)| Entry::file(Path::new(&path), &bytes, false)),
        (
            path_strategy(),
            proptest::collection::vec("[a-z0-9:]{1,6}", 0..4)
        )
            .prop_map(|(path, names)| Entry::Dir {
                path,
                entries: names
                    .into_iter()
                    .map(|name| ListedEntry {
                        name,
                        kind: ListedKind::File
                    })
                    .collect(),
            }),
        (path_strategy(), "[a-z./]{1,20}").prop_map(|(path, target)| Entry::Link { path, target }),
        (path_strategy(), "[A-Za-z ()0-9]{0,30}").prop_map(|(path, message)| Entry::Error {
            path,
            op: Operation::Read,
            kind: "PermissionDenied".into(),
            message,
        }),
    ]
}

proptest! {
    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Snapshot::from_bytes(&bytes);
    }

    #[test]
    fn valid_snapshots_round_trip(entries in proptest::collection::vec(entry_strategy(), 0..12)) {
        let mut seen = std::collections::HashSet::new();
        let entries: Vec<Entry> = entries.into_iter().filter(|entry| seen.insert(entry.path().to_owned())).collect();
        let snapshot = Snapshot::new(entries);
        let parsed = Snapshot::from_bytes(&snapshot.to_json()).unwrap();
        prop_assert_eq!(&parsed, &snapshot);
        // Replaying never panics, whatever links point at.
        let fs = SnapshotFs::new(&parsed);
        for entry in &parsed.entries {
            let path = Path::new(entry.path());
            let _ = fs.read(path);
            let _ = fs.read_dir(path);
            let _ = fs.kind(path);
        }
    }

    #[test]
    fn every_cut_of_a_valid_snapshot_is_an_error(cut in 0usize..400) {
        let json = sample().to_json();
        let cut = cut.min(json.len().saturating_sub(3));
        prop_assert!(Snapshot::from_bytes(&json[..cut]).is_err());
    }

    #[test]
    fn damaged_json_never_panics(position in 0usize..600, byte in any::<u8>()) {
        let mut json = sample().to_json();
        let position = position % json.len();
        json[position] = byte;
        let _ = Snapshot::from_bytes(&json);
    }
}
