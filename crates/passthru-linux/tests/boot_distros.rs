//! Persistent assignment on four distributions' real configuration files: the plan
//! (`--dry-run` text), the files after applying it, undo back to the exact bytes, release, and
//! idempotence.

#![cfg(unix)]

mod support;

use std::path::Path;

use passthru_core::hostfs::RealFs;
use passthru_core::pci::PciAddress;
use passthru_core::plan::journal::Journal;
use passthru_linux::boot::detect::DetectOptions;
use passthru_linux::boot::execute;
use passthru_linux::boot::facts;
use passthru_linux::boot::planner::Request;
use passthru_linux::boot::step::{ImageEntry, listing_contains};
use passthru_linux::boot::{postboot, state};
use support::{FakeTools, NOW, Root, apply, assert_unchanged, differences, prepare, undo_last};

/// A distribution scenario: the fixture, its PCI devices, and the devices to assign.
struct Scenario {
    fixture: &'static str,
    targets: &'static [&'static str],
    setup: fn(&Root),
}

const DEBIAN: Scenario = Scenario {
    fixture: "debian-12",
    targets: &["0000:03:00.0", "0000:03:00.1"],
    setup: |root| {
        root.add_pci(
            "0000:00:02.0",
            (0x8086, 0x4680),
            0x030000,
            Some(("i915", Some("i915"))),
            true,
        );
        root.add_pci(
            "0000:00:14.0",
            (0x8086, 0x7ae0),
            0x0c0330,
            Some(("xhci_hcd", Some("xhci_pci"))),
            false,
        );
        root.add_pci(
            "0000:00:1f.3",
            (0x8086, 0x7ad0),
            0x040380,
            Some(("snd_hda_intel", Some("snd_hda_intel"))),
            false,
        );
        root.add_pci(
            "0000:03:00.0",
            (0x1002, 0x73ff),
            0x030000,
            Some(("amdgpu", Some("amdgpu"))),
            false,
        );
        root.add_pci(
            "0000:03:00.1",
            (0x1002, 0xab28),
            0x040300,
            Some(("snd_hda_intel", Some("snd_hda_intel"))),
            false,
        );
    },
};

/// Two identical GPUs (the ids of the real 4x RTX 2080 Ti machine in the shared fixtures):
/// the host keeps the first, the second goes to a VM, so binding must be by address.
const FEDORA: Scenario = Scenario {
    fixture: "fedora-41",
    targets: &["0000:02:00.0", "0000:02:00.1"],
    setup: |root| {
        root.add_pci(
            "0000:01:00.0",
            (0x10de, 0x1e07),
            0x030000,
            Some(("nouveau", Some("nouveau"))),
            true,
        );
        root.add_pci(
            "0000:01:00.1",
            (0x10de, 0x10f7),
            0x040300,
            Some(("snd_hda_intel", Some("snd_hda_intel"))),
            false,
        );
        root.add_pci(
            "0000:02:00.0",
            (0x10de, 0x1e07),
            0x030000,
            Some(("nouveau", Some("nouveau"))),
            false,
        );
        root.add_pci(
            "0000:02:00.1",
            (0x10de, 0x10f7),
            0x040300,
            Some(("snd_hda_intel", Some("snd_hda_intel"))),
            false,
        );
    },
};

/// An NVIDIA card on the proprietary driver (a module no modules.alias knows).
const ARCH: Scenario = Scenario {
    fixture: "arch",
    targets: &["0000:01:00.0", "0000:01:00.1"],
    setup: |root| {
        root.add_pci(
            "0000:00:02.0",
            (0x8086, 0xa780),
            0x030000,
            Some(("i915", Some("i915"))),
            true,
        );
        root.add_pci(
            "0000:01:00.0",
            (0x10de, 0x1b80),
            0x030000,
            Some(("nvidia", Some("nvidia"))),
            false,
        );
        root.add_pci(
            "0000:01:00.1",
            (0x10de, 0x10f0),
            0x040300,
            Some(("snd_hda_intel", Some("snd_hda_intel"))),
            false,
        );
    },
};

const POPOS: Scenario = Scenario {
    fixture: "popos-22.04",
    targets: &["0000:0b:00.0", "0000:0b:00.1"],
    setup: |root| {
        root.add_pci(
            "0000:0b:00.0",
            (0x1002, 0x731f),
            0x030000,
            Some(("amdgpu", Some("amdgpu"))),
            false,
        );
        root.add_pci(
            "0000:0b:00.1",
            (0x1002, 0xab38),
            0x040300,
            Some(("snd_hda_intel", Some("snd_hda_intel"))),
            false,
        );
        root.add_pci(
            "0000:0c:00.0",
            (0x10de, 0x2484),
            0x030000,
            Some(("nvidia", Some("nvidia"))),
            true,
        );
    },
};

impl Scenario {
    fn root(&self) -> Root {
        let root = Root::copy(self.fixture);
        (self.setup)(&root);
        root
    }

    fn addresses(&self) -> Vec<PciAddress> {
        self.targets.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn assign(&self, root: &Root) -> Request {
        let fs = RealFs::new(root.path());
        Request::Assign(
            self.addresses()
                .into_iter()
                .map(|address| facts::read_target(&fs, address).unwrap())
                .collect(),
        )
    }
}

/// The changed files, as text, for a snapshot of "what passthru did to the system".
fn changes_as_text(
    root: &Root,
    before: &std::collections::BTreeMap<String, (Vec<u8>, u32)>,
) -> String {
    let after = root.snapshot();
    let mut text = String::new();
    for line in differences(before, &after) {
        let path = line
            .split_once(": ")
            .map(|(_, p)| p)
            .unwrap_or(&line)
            .to_owned();
        text.push_str(&format!("== {line}\n"));
        let image = ["boot/initrd", "boot/initramfs", "boot/booster"]
            .iter()
            .any(|prefix| path.starts_with(prefix));
        if path.ends_with('/') || image {
            if let Some((bytes, _)) = after.get(&path) {
                for added in String::from_utf8_lossy(bytes).lines() {
                    let was = before.get(&path).is_some_and(|(old, _)| {
                        String::from_utf8_lossy(old).lines().any(|l| l == added)
                    });
                    if !was {
                        text.push_str(&format!("+ {added}\n"));
                    }
                }
            }
            continue;
        }
        let old = before
            .get(&path)
            .map(|(b, _)| String::from_utf8_lossy(b).into_owned());
        let new = after
            .get(&path)
            .map(|(b, _)| String::from_utf8_lossy(b).into_owned());
        let lines = passthru_linux::boot::diff::unified(
            Path::new(&format!("/{path}")),
            old.as_deref().map(str::as_bytes),
            new.as_deref().map(str::as_bytes),
        );
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

fn full_cycle(scenario: &Scenario, name: &str) {
    let root = scenario.root();
    let original = root.snapshot();
    let journal_dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(journal_dir.path()).unwrap();
    let tools = FakeTools::new(root.path());

    // The plan, as --dry-run shows it.
    let request = scenario.assign(&root);
    let prepared = prepare(&root, &request);
    insta::assert_snapshot!(format!("{name}_assign_plan"), execute::describe(&prepared));

    // Apply: every image carries vfio-pci; the files are as snapshotted.
    apply(&root, &mut journal, &prepared, &tools);
    insta::assert_snapshot!(
        format!("{name}_assign_files"),
        changes_as_text(&root, &original)
    );
    insta::assert_snapshot!(
        format!("{name}_assign_commands"),
        tools.log.borrow().join("\n")
    );
    for image in &prepared.detection.generator.images {
        let listing =
            fs_err::read_to_string(root.path().join(image.image.strip_prefix("/").unwrap()))
                .unwrap();
        let builtin = prepared.facts.kernels.iter().any(|k| {
            k.release == image.kernel
                && k.modules.status("vfio_pci")
                    == passthru_linux::boot::kernels::ModuleStatus::Builtin
        });
        assert!(
            builtin || listing_contains(&listing, &ImageEntry::Module("vfio_pci".into())),
            "{}",
            image.image.display()
        );
    }
    let applied = root.snapshot();

    // The same assign again plans nothing.
    let again = prepare(&root, &scenario.assign(&root));
    assert!(again.plan.is_empty(), "{}", execute::describe(&again));

    // The record says what the post-boot check must expect; before a reboot it is pending
    // for devices still on their host driver.
    let fs = RealFs::new(root.path());
    let record = state::load(&fs).unwrap().unwrap();
    assert_eq!(record.devices.len(), scenario.targets.len());
    let report = postboot::check(&fs).unwrap().unwrap();
    assert!(!report.all_effective());

    // Undo restores every byte, every mode, and removes every directory passthru created.
    undo_last(&root, &mut journal, &tools);
    let after_undo = root.snapshot();
    assert_eq!(differences(&original, &after_undo), Vec::<String>::new());

    // Assign again, then release: the system is back as it was.
    let prepared = prepare(&root, &scenario.assign(&root));
    apply(&root, &mut journal, &prepared, &tools);
    assert_unchanged(&applied, &root);
    let release = prepare(&root, &Request::Release(scenario.addresses()));
    insta::assert_snapshot!(format!("{name}_release_plan"), execute::describe(&release));
    apply(&root, &mut journal, &release, &tools);
    let released = root.snapshot();
    let left: Vec<String> = differences(&original, &released)
        .into_iter()
        .filter(|line| !tool_rewritten(line))
        .collect();
    assert_eq!(left, Vec::<String>::new());

    // Undoing the release brings the assignment back exactly.
    undo_last(&root, &mut journal, &tools);
    assert_unchanged(&applied, &root);
}

/// Files a boot loader's own tool rewrites in its own format (kernelstub saves its JSON with
/// sorted keys): a release through the tool restores their content, not their bytes. Undo
/// restores the bytes.
fn tool_rewritten(line: &str) -> bool {
    line == "changed: etc/kernelstub/configuration"
}

#[test]
fn debian_grub_and_initramfs_tools() {
    full_cycle(&DEBIAN, "debian");
}

#[test]
fn fedora_grubby_and_dracut_with_identical_gpus() {
    full_cycle(&FEDORA, "fedora");
}

#[test]
fn arch_systemd_boot_and_mkinitcpio() {
    full_cycle(&ARCH, "arch");
}

#[test]
fn popos_kernelstub_and_initramfs_tools() {
    full_cycle(&POPOS, "popos");
}

#[test]
fn kernelstub_release_restores_the_options_themselves() {
    let root = POPOS.root();
    let journal_dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(journal_dir.path()).unwrap();
    let tools = FakeTools::new(root.path());
    let options = |root: &Root| {
        let json: serde_json::Value =
            serde_json::from_str(&root.read("/etc/kernelstub/configuration")).unwrap();
        json["user"]["kernel_options"].clone()
    };
    let before = options(&root);
    let prepared = prepare(&root, &POPOS.assign(&root));
    apply(&root, &mut journal, &prepared, &tools);
    assert_ne!(options(&root), before);
    let release = prepare(&root, &Request::Release(POPOS.addresses()));
    apply(&root, &mut journal, &release, &tools);
    assert_eq!(options(&root), before);
}

#[test]
fn assigning_one_more_device_extends_the_ids_and_releasing_it_shrinks_them_back() {
    let root = DEBIAN.root();
    let original = root.snapshot();
    let journal_dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(journal_dir.path()).unwrap();
    let tools = FakeTools::new(root.path());
    let fs = RealFs::new(root.path());
    let gpu: PciAddress = "0000:03:00.0".parse().unwrap();
    let audio: PciAddress = "0000:03:00.1".parse().unwrap();
    let first = prepare(
        &root,
        &Request::Assign(vec![facts::read_target(&fs, gpu).unwrap()]),
    );
    apply(&root, &mut journal, &first, &tools);
    assert!(
        root.read("/etc/default/grub")
            .contains("vfio-pci.ids=1002:73ff\"")
    );
    let second = prepare(
        &root,
        &Request::Assign(vec![facts::read_target(&fs, audio).unwrap()]),
    );
    apply(&root, &mut journal, &second, &tools);
    assert!(
        root.read("/etc/default/grub")
            .contains("vfio-pci.ids=1002:73ff,1002:ab28\"")
    );
    let release_audio = prepare(&root, &Request::Release(vec![audio]));
    apply(&root, &mut journal, &release_audio, &tools);
    assert!(root.read("/etc/default/grub").contains(
        "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on iommu=pt vfio-pci.ids=1002:73ff\""
    ));
    let release_gpu = prepare(&root, &Request::Release(vec![gpu]));
    apply(&root, &mut journal, &release_gpu, &tools);
    assert_unchanged(&original, &root);
}

#[test]
fn releasing_a_device_that_was_never_assigned_is_refused_with_the_reason() {
    let root = DEBIAN.root();
    let fs = RealFs::new(root.path());
    let error = execute::prepare(
        &fs,
        &Request::Release(vec!["0000:03:00.0".parse().unwrap()]),
        DetectOptions::default(),
        NOW,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("has no persistent assignment made by passthru"),
        "{error}"
    );
}
