//! Parser tests on the real INF files in `fixtures/inf/`, on re-encoded copies of them, and on
//! damaged input.

use proptest::prelude::*;

use super::*;

const NV_DISPI: &[u8] = include_bytes!("../../../../fixtures/inf/nvidia_nv_dispi_470.05.inf");
const NVHDA: &[u8] = include_bytes!("../../../../fixtures/inf/nvidia_nvhda_470.05.inf");
const KMDOD: &[u8] = include_bytes!("../../../../fixtures/inf/microsoft_kmdod_sampledisplay.inf");
const IDD: &[u8] = include_bytes!("../../../../fixtures/inf/microsoft_IddSampleDriver.inf");
const MTTVDD: &[u8] = include_bytes!("../../../../fixtures/inf/mttvdd_virtual_display.inf");
const INTEL: &[u8] = include_bytes!("../../../../fixtures/inf/intel_igdlh64_modded.inf");

const ALL: [(&str, &[u8]); 6] = [
    ("nv_dispi", NV_DISPI),
    ("nvhda", NVHDA),
    ("kmdod", KMDOD),
    ("idd", IDD),
    ("mttvdd", MTTVDD),
    ("intel", INTEL),
];

fn parse(bytes: &[u8]) -> Inf {
    Inf::parse(bytes).expect("fixture parses")
}

fn dest(dirid: u32, subdir: Option<&str>) -> Option<DestDir> {
    Some(DestDir {
        dirid,
        subdir: subdir.map(str::to_owned),
    })
}

#[test]
fn nvidia_display_inf() {
    let inf = parse(NV_DISPI);
    assert_eq!(inf.encoding(), TextEncoding::Utf8);
    // NVIDIA's own file has two AddReg lines with an odd number of quotes
    // (`"StereoVisionServer.SetUp"StereoVision.1"`); they are read to the end of the line.
    let lines: Vec<usize> = inf.warnings().iter().map(|w| w.line).collect();
    assert_eq!(lines, [6410, 6412]);
    let version = inf.version("amd64");
    assert_eq!(version.class.as_deref(), Some("Display"));
    assert_eq!(
        version.class_guid.as_deref(),
        Some("{4D36E968-E325-11CE-BFC1-08002BE10318}")
    );
    assert_eq!(version.provider.as_deref(), Some("NVIDIA"));
    assert_eq!(version.catalog_file.as_deref(), Some("NV_DISP.CAT"));
    let driver_ver = version.driver_ver.unwrap();
    assert_eq!(driver_ver.to_string(), "27.21.14.7005 (2021-02-26)");

    // RTX 3090: `%NVIDIA_DEV.2204% = Section090, PCI\VEN_10DE&DEV_2204` (with trailing blanks).
    let install = inf
        .install_section("pci\\ven_10de&dev_2204", "amd64")
        .unwrap();
    assert_eq!(install.name, "Section090");
    assert_eq!(
        install.models_section,
        "NVIDIA_Devices.NTamd64.10.0...17098"
    );
    assert_eq!(install.description, "NVIDIA GeForce RTX 3090");

    let (ops, warnings) = inf.copy_files(&install.name);
    assert!(warnings.is_empty(), "{warnings:?}");
    let find = |dest_name: &str, dirid: u32| {
        ops.iter()
            .find(|op| op.dest_name == dest_name && op.dest_dir.as_ref().unwrap().dirid == dirid)
            .unwrap_or_else(|| panic!("{dest_name} to dirid {dirid}"))
    };
    // The rename form: System32\nvcuda.dll comes from nvcuda_loader64.dll in the package.
    let nvcuda = find("nvcuda.dll", 11);
    assert_eq!(nvcuda.source_name, "nvcuda_loader64.dll");
    assert_eq!(nvcuda.flags, 0x4000);
    assert_eq!(find("nvcuda.dll", 10).dest_dir, dest(10, Some("SysWow64")));
    assert_eq!(find("nvcuda.dll", 10).source_name, "nvcuda_loader32.dll");
    assert_eq!(
        find("nvlddmkm.sys", 13).section.as_deref(),
        Some("nv_sysDrivers_RS_copyfiles")
    );
    assert_eq!(
        find("libcuda.so.1.1", 11).dest_dir,
        dest(11, Some("lxss\\lib"))
    );
    assert_eq!(
        find("NvcDispCorePlugin.dll", 13).dest_dir,
        dest(13, Some("Display.NvContainer\\plugins\\LocalSystem"))
    );

    // Section090 names both companions (checked with awk); the Kepler Section002 only nvhda.
    assert_eq!(
        inf.copy_infs(Some(&install.name)),
        ["nvhda.inf", "nvppc.inf"]
    );
    assert_eq!(inf.copy_infs(Some("Section002")), ["nvhda.inf"]);
    assert_eq!(inf.copy_infs(None), ["nvhda.inf", "nvppc.inf", "nvpcf.inf"]);
    assert_eq!(
        inf.service_binaries(&install.name)[0],
        ("nvlddmkm".to_owned(), "%13%\\nvlddmkm.sys".to_owned())
    );

    // 308 `[SourceDisksFiles]` lines (counted with awk), plus the INF and the catalog.
    let (files, warnings) = inf.package_files("amd64", "nv_dispi.inf");
    assert!(warnings.is_empty(), "{warnings:?}");
    let paths: Vec<&str> = files.iter().map(|f| f.relative_path.as_str()).collect();
    // nv_dispi.inf is itself listed in SourceDisksFiles, so it is counted once.
    assert_eq!(files.len(), 308 + 1);
    assert!(paths.contains(&"NV_DISP.CAT"));
    assert!(paths.contains(&"NvCamera\\Color.fx"));
    assert!(paths.contains(&"Display.NvContainer\\plugins\\LocalSystem\\NvXDCore.dll"));
    assert!(paths.contains(&"nvlddmkm.sys"));
}

#[test]
fn nvidia_audio_inf() {
    let inf = parse(NVHDA);
    let version = inf.version("amd64");
    assert_eq!(version.signature.as_deref(), Some("$CHICAGO$"));
    assert_eq!(version.class.as_deref(), Some("MEDIA"));
    assert_eq!(version.driver_ver.unwrap().version_string(), "1.3.38.40");
    let (files, warnings) = inf.package_files("amd64", "nvhda.inf");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(files.len(), 2 + 6);
}

#[test]
fn kmdod_sample() {
    let inf = parse(KMDOD);
    let version = inf.version("amd64");
    assert_eq!(version.provider.as_deref(), Some("TODO-Set-Provider"));
    assert_eq!(version.driver_ver.unwrap().version, Some([0, 3, 15, 11]));
    let install = inf.install_section("PCI\\CC_0300", "amd64").unwrap();
    assert_eq!(install.models_section, "Standard.NTamd64");
    assert_eq!(install.name, "KDODSamp_Inst");
    let (ops, warnings) = inf.copy_files(&install.name);
    assert!(warnings.is_empty());
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].dest_name, "SampleDisplay.sys");
    assert_eq!(ops[0].dest_dir, dest(12, None));
    assert_eq!(
        inf.service_binaries(&install.name),
        [("KDODSamp".to_owned(), "%12%\\SampleDisplay.sys".to_owned())]
    );
    // `%%SystemRoot%%` is a literal `%SystemRoot%`.
    let event_log = inf.section("KDODSamp_EventLog_Inst.AddReg").unwrap();
    assert_eq!(
        event_log.entries[0].values[4],
        "%SystemRoot%\\System32\\IoLogMsg.dll"
    );
}

#[test]
fn indirect_display_templates() {
    for (bytes, expected_encoding) in [(IDD, TextEncoding::Utf8), (MTTVDD, TextEncoding::Utf16Le)] {
        let inf = parse(bytes);
        assert_eq!(inf.encoding(), expected_encoding);
        let version = inf.version("amd64");
        assert_eq!(version.class.as_deref(), Some("Display"));
        // Unstamped templates: `DriverVer= ; TODO ...`.
        assert!(version.driver_ver.is_none());
        assert!(version.driver_ver_problem.unwrap().contains("empty"));
    }
    let inf = parse(MTTVDD);
    let install = inf.install_section("Root\\MttVDD", "amd64").unwrap();
    assert_eq!(install.models_section, "Standard.NT$ARCH$");
    assert_eq!(install.name, "MyDevice_Install.NT");
    let (ops, _) = inf.copy_files(&install.name);
    assert_eq!(ops[0].dest_name, "MttVDD.dll");
    assert_eq!(ops[0].dest_dir, dest(12, Some("UMDF")));
    assert_eq!(
        inf.version("amd64").provider.as_deref(),
        Some("MikeTheTech")
    );
}

#[test]
fn intel_crlf_lists_and_default_dest_dir() {
    let inf = parse(INTEL);
    assert_eq!(
        inf.version("amd64").driver_ver.unwrap().to_string(),
        "8.15.10.2622 (2012-01-10)"
    );
    let install = inf
        .install_section("PCI\\VEN_8086&DEV_0116", "amd64")
        .unwrap();
    assert_eq!(install.models_section, "IntelGfx.NTamd64.6.0");
    assert_eq!(install.name, "iSNBM0");
    let (ops, _) = inf.copy_files(&install.name);
    let miniport = ops
        .iter()
        .find(|op| op.dest_name == "igdkmd64.sys")
        .unwrap();
    assert_eq!(miniport.dest_dir, dest(12, None));
    // Opm.Copy has no DestinationDirs entry: DefaultDestDir (11) applies.
    let opm = ops.iter().find(|op| op.dest_name == "iglhxs64.vp").unwrap();
    assert_eq!(opm.dest_dir, dest(11, None));
    let wow = ops
        .iter()
        .find(|op| op.dest_name == "igdumd32.dll")
        .unwrap();
    assert_eq!(wow.dest_dir, dest(10, Some("SysWow64")));
    let (files, warnings) = inf.package_files("amd64", "igdlh64.inf");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(files.len(), 112 + 2);
}

fn to_utf16(bytes: &[u8], big_endian: bool) -> Vec<u8> {
    let text = std::str::from_utf8(bytes).unwrap();
    let mut out = if big_endian {
        vec![0xFE, 0xFF]
    } else {
        vec![0xFF, 0xFE]
    };
    for unit in text.encode_utf16() {
        out.extend(if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        });
    }
    out
}

#[test]
fn utf16_copies_parse_identically() {
    for (name, bytes) in ALL {
        if name == "mttvdd" {
            continue;
        }
        let original = parse(bytes);
        for big_endian in [false, true] {
            let converted = parse(&to_utf16(bytes, big_endian));
            let expected = if big_endian {
                TextEncoding::Utf16Be
            } else {
                TextEncoding::Utf16Le
            };
            assert_eq!(converted.encoding(), expected, "{name}");
            assert_eq!(converted.sections(), original.sections(), "{name}");
        }
    }
}

#[test]
fn ansi_strings_are_decoded_as_windows_1252() {
    let text = std::str::from_utf8(KMDOD).unwrap().replace(
        "SampleDisk = \"Sample Disk\"",
        "SampleDisk = \"Gerätetreiber™\"",
    );
    let (ansi, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
    assert!(!unmappable);
    let inf = parse(&ansi);
    assert_eq!(inf.encoding(), TextEncoding::Windows1252);
    let disks = inf.section("SourceDisksNames").unwrap();
    assert_eq!(disks.entries[0].values, ["Gerätetreiber™"]);
}

#[test]
fn not_an_inf() {
    for bytes in [
        &b""[..],
        b"\xFF\xFE",
        b"just text\nno sections\n",
        b"\x00\x01\x02\x03",
    ] {
        assert!(
            matches!(Inf::parse(bytes), Err(InfError::NoSections { .. })),
            "{bytes:?}"
        );
    }
    let message = Inf::parse(b"hello").unwrap_err().to_string();
    assert!(message.starts_with("this is not an INF file"), "{message}");
}

#[test]
fn damaged_files_keep_what_is_readable() {
    let text = concat!(
        "[Version]\nDriverVer = 13/45/2021, 1.2\nCatalogFile = x.cat\n",
        "[Install]\nCopyFiles = Missing, Files, @solo.sys\n",
        "[Files]\na.dll\nname = odd\n,\n",
        "[DestinationDirs]\nFiles = notanumber\n",
        "[SourceDisksFiles]\nfile.dll = 9\n",
    );
    let inf = parse(text.as_bytes());
    assert!(
        inf.version("amd64")
            .driver_ver_problem
            .unwrap()
            .contains("out of range")
    );
    let (ops, warnings) = inf.copy_files("Install");
    assert_eq!(ops.len(), 2); // a.dll (no destination) and @solo.sys
    assert!(ops.iter().all(|op| op.dest_dir.is_none()));
    let messages: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 5, "{messages:#?}");
    let (_, warnings) = inf.package_files("amd64", "x.inf");
    assert!(warnings[0].message.contains("disk `9`"));
}

#[test]
fn truncated_fixtures_never_panic() {
    for (_, bytes) in ALL {
        for cut in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
            if let Ok(inf) = Inf::parse(&bytes[..cut]) {
                let _ = inf.version("amd64");
                let _ = inf.package_files("amd64", "x.inf");
            }
        }
    }
}

#[test]
fn driver_ver_forms() {
    let ver = |values: &[&str]| {
        DriverVer::parse(&values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>())
    };
    assert_eq!(ver(&["1/2/2020"]).unwrap().to_string(), "2020-01-02");
    assert_eq!(
        ver(&["01/02/2020", "31.0.15.3623"]).unwrap().version,
        Some([31, 0, 15, 3623])
    );
    assert_eq!(
        ver(&["01/02/2020", "1.2"]).unwrap().version,
        Some([1, 2, 0, 0])
    );
    assert!(ver(&["2020/01/02"]).is_err());
    assert!(ver(&["01/02/2020", "1.2.3.4.5"]).is_err());
    assert!(ver(&["01/02/2020", "1.x"]).is_err());
    assert!(ver(&[]).is_err());
}

/// Renders a value so that the parser must read it back unchanged.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(inf) = Inf::parse(&bytes) {
            let _ = inf.version("amd64");
            let _ = inf.copy_files("x");
            let _ = inf.package_files("amd64", "x.inf");
            let _ = inf.install_section("pci\\ven_1", "amd64");
        }
    }

    #[test]
    fn quoted_values_round_trip(
        values in proptest::collection::vec("[ -~äß™]{0,12}", 1..6),
        key in "[A-Za-z][A-Za-z0-9_.]{0,10}",
    ) {
        // `%` would be substituted; everything else must come back as written.
        let values: Vec<String> = values.into_iter().map(|v| v.replace('%', "")).collect();
        let line = format!("{key} = {}", values.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", "));
        let inf = Inf::parse(format!("[S]\n{line}\n").as_bytes()).unwrap();
        let entry = &inf.section("s").unwrap().entries[0];
        prop_assert_eq!(entry.key.as_deref(), Some(key.as_str()));
        prop_assert_eq!(&entry.values, &values);
    }

    #[test]
    fn continuations_equal_one_line(parts in proptest::collection::vec("[a-z0-9_.]{1,8}", 1..6)) {
        let joined = format!("[S]\nCopyFiles = {}\n", parts.join(", "));
        let continued = format!("[S]\nCopyFiles = {}\n", parts.join(", \\\n  "));
        let a = Inf::parse(joined.as_bytes()).unwrap();
        let b = Inf::parse(continued.as_bytes()).unwrap();
        prop_assert_eq!(&a.sections()[0].entries[0].values, &b.sections()[0].entries[0].values);
    }
}

#[test]
fn decorated_source_disks_sections_and_disk_paths() {
    let inf = parse(
        concat!(
            "[Version]\nCatalogFile=generic.cat\nCatalogFile.NTamd64=amd64.cat\n",
            "[SourceDisksNames]\n1 = \"Disk\",,,\\common\n",
            "[SourceDisksNames.amd64]\n2 = \"x64 disk\",,,x64\n",
            "[SourceDisksFiles]\nshared.dll = 1\nkmd.sys = 1\n",
            "[SourceDisksFiles.amd64]\nkmd.sys = 2,drivers\numd.dll = 2\n",
            "[SourceDisksFiles.x86]\nkmd32.sys = 1\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        inf.version("amd64").catalog_file.as_deref(),
        Some("amd64.cat")
    );
    assert_eq!(
        inf.version("x86").catalog_file.as_deref(),
        Some("generic.cat")
    );
    let (files, warnings) = inf.package_files("amd64", "x.inf");
    assert!(warnings.is_empty(), "{warnings:?}");
    let paths: Vec<&str> = files.iter().map(|f| f.relative_path.as_str()).collect();
    // The decorated line wins for kmd.sys; the x86 section is ignored.
    assert_eq!(
        paths,
        [
            "x.inf",
            "amd64.cat",
            "common\\shared.dll",
            "x64\\drivers\\kmd.sys",
            "x64\\umd.dll"
        ]
    );
}
