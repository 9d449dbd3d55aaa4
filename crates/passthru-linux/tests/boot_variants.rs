//! Detection of what is in use, and the less common layouts: GRUB values that are not plain
//! literals, `grub.d` overrides, booster, conflicts with the user's own parameters.

#![cfg(unix)]

mod support;

use passthru_core::hostfs::RealFs;
use passthru_core::plan::journal::Journal;
use passthru_linux::boot::BootError;
use passthru_linux::boot::detect::{self, BootloaderKind, DetectOptions, GeneratorKind};
use passthru_linux::boot::execute::{self, Prepared};
use passthru_linux::boot::facts;
use passthru_linux::boot::planner::Request;
use passthru_linux::boot::step::BootHost;
use support::{FakeTools, NOW, Root, apply, assert_unchanged};

fn debian() -> Root {
    let root = Root::copy("debian-12");
    root.add_pci(
        "0000:03:00.0",
        (0x1002, 0x73ff),
        0x030000,
        Some(("amdgpu", Some("amdgpu"))),
        false,
    );
    root
}

fn detect_with(root: &Root, options: DetectOptions) -> Result<detect::Detection, BootError> {
    let fs = RealFs::new(root.path());
    let facts = facts::read_host_facts(&fs);
    detect::detect(&fs, &facts, options)
}

fn assign(root: &Root) -> Result<Prepared, BootError> {
    let fs = RealFs::new(root.path());
    let target = facts::read_target(&fs, "0000:03:00.0".parse().unwrap()).unwrap();
    execute::prepare(
        &fs,
        &Request::Assign(vec![target]),
        DetectOptions::default(),
        NOW,
    )
}

fn run(tools: &FakeTools, program: &str, args: &[&str]) {
    use passthru_core::runner::{CommandRunner, CommandSpec};
    let output = tools
        .clone()
        .run(&CommandSpec::new(program, args.iter().copied()))
        .unwrap();
    assert!(output.success(), "{}", output.stderr_text());
}

fn add_systemd_boot(root: &Root) {
    root.write("/boot/efi/loader/loader.conf", "default debian.conf\n");
    root.write(
        "/boot/efi/loader/entries/debian.conf",
        "title Debian\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=/dev/vda1 ro quiet\n",
    );
}

#[test]
fn grub_files_and_a_grub_boot_beat_a_stray_systemd_boot_install() {
    let root = debian();
    add_systemd_boot(&root);
    let detection = detect_with(&root, DetectOptions::default()).unwrap();
    assert_eq!(detection.bootloader.kind(), BootloaderKind::Grub);
}

#[test]
fn without_evidence_of_this_boot_two_boot_loaders_are_ambiguous_and_explained() {
    let root = debian();
    add_systemd_boot(&root);
    root.write("/proc/cmdline", "root=/dev/vda1 ro quiet\n");
    let error = detect_with(&root, DetectOptions::default()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("cannot tell which boot loader"), "{text}");
    assert!(
        text.contains("- grub: /etc/default/grub and /boot/grub/grub.cfg exist"),
        "{text}"
    );
    assert!(
        text.contains("- systemd-boot: /boot/efi/loader/loader.conf with 1 entries"),
        "{text}"
    );
    assert!(error.help().unwrap().contains("--bootloader"));
    let chosen = detect_with(
        &root,
        DetectOptions {
            bootloader: Some(BootloaderKind::SystemdBoot),
            ..DetectOptions::default()
        },
    )
    .unwrap();
    assert_eq!(chosen.bootloader.kind(), BootloaderKind::SystemdBoot);
}

#[test]
fn the_loader_info_efi_variable_proves_systemd_boot() {
    let root = debian();
    add_systemd_boot(&root);
    root.write("/proc/cmdline", "root=/dev/vda1 ro quiet\n");
    // 4 attribute bytes, then "systemd-boot 252" in UTF-16LE, NUL-terminated.
    let mut bytes = vec![6u8, 0, 0, 0];
    for unit in "systemd-boot 252".encode_utf16().chain([0]) {
        bytes.extend(unit.to_le_bytes());
    }
    let path =
        root.real("/sys/firmware/efi/efivars/LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f");
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(path, bytes).unwrap();
    let detection = detect_with(&root, DetectOptions::default()).unwrap();
    assert_eq!(detection.bootloader.kind(), BootloaderKind::SystemdBoot);
    assert!(
        detection
            .bootloader_evidence
            .iter()
            .any(|e| e.contains("systemd-boot 252"))
    );
}

#[test]
fn the_images_the_boot_entries_load_decide_between_generators() {
    let root = Root::copy("arch");
    root.write("/usr/bin/booster", "#!/bin/sh\nexit 1\n");
    root.write("/boot/booster-linux.img", "./init\n");
    let detection = detect_with(&root, DetectOptions::default()).unwrap();
    assert_eq!(detection.generator.kind, GeneratorKind::Mkinitcpio);
    root.write(
        "/boot/loader/entries/arch.conf",
        "title Arch\nlinux /vmlinuz-linux\ninitrd /booster-linux.img\noptions root=/dev/sda2 rw\n",
    );
    root.write(
        "/boot/loader/entries/arch-fallback.conf",
        "title Arch\nlinux /vmlinuz-linux\ninitrd /booster-linux.img\noptions root=/dev/sda2 rw\n",
    );
    let detection = detect_with(&root, DetectOptions::default()).unwrap();
    assert_eq!(detection.generator.kind, GeneratorKind::Booster);
}

#[test]
fn nothing_supported_is_a_clear_error() {
    let root = Root::copy("debian-12");
    fs_err::remove_file(root.real("/etc/default/grub")).unwrap();
    let error = detect_with(&root, DetectOptions::default()).unwrap_err();
    assert!(
        matches!(
            error,
            BootError::NotFound {
                what: "boot loader",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_grub_value_with_expansions_gets_passthrus_own_block_and_round_trips() {
    let root = debian();
    let original_grub = root.read("/etc/default/grub").replace(
        "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"",
        "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet $EXTRA\"",
    );
    root.write("/etc/default/grub", &original_grub);
    let tools = FakeTools::new(root.path());
    run(&tools, "update-grub", &[]);
    let original = root.snapshot();
    let journal_dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(journal_dir.path()).unwrap();
    let prepared = assign(&root).unwrap();
    apply(&root, &mut journal, &prepared, &tools);
    let grub = root.read("/etc/default/grub");
    assert!(
        grub.contains("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet $EXTRA\"\n"),
        "{grub}"
    );
    assert!(grub.ends_with(
        "# BEGIN passthru (managed; `passthru release DEVICE --persistent` removes this block)\nGRUB_CMDLINE_LINUX_DEFAULT=\"${GRUB_CMDLINE_LINUX_DEFAULT} intel_iommu=on iommu=pt vfio-pci.ids=1002:73ff\"\n# END passthru\n"
    ), "{grub}");
    // The fake update-grub evaluates the file with the real shell: the menu got the parameters.
    assert!(
        root.read("/boot/grub/grub.cfg")
            .contains("ro  quiet  intel_iommu=on iommu=pt vfio-pci.ids=1002:73ff")
    );
    let release = execute::prepare(
        &RealFs::new(root.path()),
        &Request::Release(vec!["0000:03:00.0".parse().unwrap()]),
        DetectOptions::default(),
        NOW,
    )
    .unwrap();
    apply(&root, &mut journal, &release, &tools);
    assert_unchanged(&original, &root);
}

#[test]
fn an_override_in_grub_d_is_where_the_parameters_go() {
    let root = debian();
    // Ubuntu's cloud images override the default in a grub.d file.
    root.write(
        "/etc/default/grub.d/50-cloudimg-settings.cfg",
        "# Cloud Image specific Grub settings for Generic Cloud Images\nGRUB_CMDLINE_LINUX_DEFAULT=\"console=tty1 console=ttyS0\"\n",
    );
    let prepared = assign(&root).unwrap();
    let text = execute::describe(&prepared);
    assert!(
        text.contains("Change /etc/default/grub.d/50-cloudimg-settings.cfg"),
        "{text}"
    );
    assert!(!text.contains("Change /etc/default/grub "), "{text}");
}

#[test]
fn the_users_own_binding_is_not_overridden() {
    let root = debian();
    let grub = root.read("/etc/default/grub").replace(
        "GRUB_CMDLINE_LINUX=\"\"",
        "GRUB_CMDLINE_LINUX=\"vfio_pci.ids=10de:1b80\"",
    );
    root.write("/etc/default/grub", &grub);
    let error = assign(&root).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("already has vfio-pci.ids=10de:1b80"),
        "{error}"
    );
}

#[test]
fn booster_takes_the_modules_into_its_yaml_and_refuses_binding_by_address() {
    let root = Root::copy("arch");
    fs_err::remove_file(root.real("/usr/bin/mkinitcpio")).unwrap();
    root.write("/usr/bin/booster", "#!/bin/sh\nexit 1\n");
    root.write("/boot/booster-linux.img", "./init\n");
    root.write(
        "/etc/booster.yaml",
        "universal: false\nmodules_force_load: nvme\n",
    );
    root.add_pci(
        "0000:01:00.0",
        (0x10de, 0x1b80),
        0x030000,
        Some(("nvidia", Some("nvidia"))),
        false,
    );
    let tools = FakeTools::new(root.path());
    // The image as booster built it from this configuration.
    run(
        &tools,
        "booster",
        &[
            "build",
            "--force",
            "--kernel-version",
            "6.12.10-arch1-1",
            "/boot/booster-linux.img",
        ],
    );
    let original = root.snapshot();
    let fs = RealFs::new(root.path());
    let target = facts::read_target(&fs, "0000:01:00.0".parse().unwrap()).unwrap();
    let prepared = execute::prepare(
        &fs,
        &Request::Assign(vec![target]),
        DetectOptions::default(),
        NOW,
    )
    .unwrap();
    let journal_dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(journal_dir.path()).unwrap();
    apply(&root, &mut journal, &prepared, &tools);
    assert_eq!(
        root.read("/etc/booster.yaml"),
        "universal: false\nmodules_force_load: nvme,vfio_pci,vfio,vfio_iommu_type1\n"
    );
    assert!(
        root.read("/boot/booster-linux.img")
            .contains("./usr/lib/modules/vfio_pci.ko.zst")
    );
    let operation = journal.last_undoable().unwrap().unwrap();
    let mut host = BootHost::new(root.path(), tools.boxed(), journal.blobs());
    execute::undo(&mut journal, &operation, &mut host, &mut |_| {}).unwrap();
    assert_unchanged(&original, &root);

    // A second identical card: binding must be by address, which booster cannot do.
    root.add_pci(
        "0000:02:00.0",
        (0x10de, 0x1b80),
        0x030000,
        Some(("nvidia", Some("nvidia"))),
        false,
    );
    let target = facts::read_target(&fs, "0000:02:00.0".parse().unwrap()).unwrap();
    let error = execute::prepare(
        &fs,
        &Request::Assign(vec![target]),
        DetectOptions::default(),
        NOW,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("booster images run no udev rules"),
        "{error}"
    );
}
