//! Property tests of every parser of host input: no panics on anything, and round trips where
//! passthru also writes the format.

use passthru_hyperv::model::HostAnswers;
use passthru_hyperv::ps::{envelope, quote};
use passthru_hyperv::snapshot::WindowsSnapshot;
use passthru_hyperv::survey::{Source, analyze};
use passthru_hyperv::text::format_list;
use passthru_hyperv::text::instance::{GpuInterfacePath, InstanceId};
use passthru_hyperv::text::location::LocationPath;
use passthru_hyperv::text::survey_dda;
use passthru_hyperv::text::wmi_path::WmiPath;
use proptest::prelude::*;
use serde_json::Value;

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("PCIROOT(0)#PCI(0301)#PCI(0000)"),
            Just(r"PCI\VEN_10DE&DEV_1B06\4&1"),
            Just(r"PCIP\VEN_10DE&DEV_1B06\4&1"),
            Just("Off"),
            Just("Running"),
            Just("ServerNT"),
        ]
        .prop_map(|text| Value::String(text.to_owned())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("host"),
                        Just("vms"),
                        Just("pnpDevices"),
                        Just("instanceId"),
                        Just("locationPaths"),
                        Just("name"),
                        Just("state"),
                        Just("memory"),
                        Just("assignedDevices"),
                        Just("gpuAdapters"),
                        Just("partitionableGpus"),
                        Just("allocatedResources"),
                        Just("antecedent"),
                        Just("dependent"),
                        Just("memoryRanges"),
                        Just("start"),
                        Just("end"),
                        Just("disks"),
                        Just("ancestors"),
                        Just("productType"),
                        Just("pciDeviceType"),
                        Just("acsUp"),
                        Just("reservedMemory"),
                        Just("problem"),
                        Just("present"),
                    ],
                    inner,
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(
                pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #[test]
    fn format_list_never_panics(text in "(?s).{0,400}") {
        for record in format_list::parse(&text) {
            let _ = passthru_hyperv::model::PartitionableGpu::from_list_record(&record);
            let _ = passthru_hyperv::model::PnpDevice::from_list_record(&record);
        }
        let _ = format_list::parse_number(&text);
        let _ = format_list::parse_list(&text);
    }

    #[test]
    fn format_list_reads_what_format_list_writes(
        fields in prop::collection::vec(("[A-Z][A-Za-z]{0,15}", "[!-~]([ -~]{0,60}[!-~])?"), 1..8),
        width in 40usize..120,
        indent in 0usize..4,
    ) {
        let mut seen = std::collections::HashSet::new();
        let fields: Vec<(String, String)> = fields.into_iter().filter(|(key, _)| seen.insert(key.to_lowercase())).collect();
        let pad = fields.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
        let mut text = String::new();
        for (key, value) in &fields {
            // Format-List: padded key, " : ", value wrapped at the console width onto lines
            // indented to the value column.
            let prefix = format!("{}{key:<pad$} : ", " ".repeat(indent));
            let room = width.saturating_sub(prefix.len()).max(8);
            let chars: Vec<char> = value.chars().collect();
            let mut chunks = chars.chunks(room);
            text.push_str(&prefix);
            text.push_str(&chunks.next().unwrap_or(&[]).iter().collect::<String>());
            text.push('\n');
            for chunk in chunks {
                text.push_str(&" ".repeat(prefix.len()));
                text.push_str(&chunk.iter().collect::<String>());
                text.push('\n');
            }
        }
        let records = format_list::parse(&text);
        prop_assert_eq!(records.len(), 1, "{}", text);
        // Wrapping drops spaces that fall at a line end; compare without them.
        let squash = |value: &str| value.replace(' ', "");
        for ((key, value), (got_key, got_value)) in fields.iter().zip(&records[0].fields) {
            prop_assert_eq!(key, got_key);
            prop_assert_eq!(squash(value), squash(got_value));
        }
    }

    #[test]
    fn location_paths_round_trip(root in 0u32..0x1_0000, hops in prop::collection::vec((0u8..32, 0u8..8), 1..7)) {
        let path = LocationPath { root, hops };
        prop_assert_eq!(LocationPath::parse(&path.to_string()).unwrap(), path);
    }

    #[test]
    fn path_and_id_parsers_never_panic(text in "(?s).{0,200}") {
        let _ = LocationPath::parse(&text);
        let _ = InstanceId::parse(&text);
        let _ = GpuInterfacePath::parse(&text);
        let _ = passthru_hyperv::text::instance::interface_path_to_instance_id(&text);
        let _ = WmiPath::parse(&text);
        let _ = survey_dda::parse(&text);
    }

    #[test]
    fn instance_ids_round_trip(enumerator in "PCIP?", hardware in "[A-Z0-9_&]{1,40}", instance in "[A-Za-z0-9&]{1,30}") {
        let text = format!("{enumerator}\\{hardware}\\{instance}");
        prop_assert_eq!(InstanceId::parse(&text).unwrap().to_string(), text);
    }

    #[test]
    fn wmi_keys_survive_escaping(value in "(?s).{0,60}") {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        let path = format!("\\\\HOST\\root\\cimv2:Win32_PnPEntity.DeviceID=\"{escaped}\"");
        let parsed = WmiPath::parse(&path).unwrap();
        prop_assert_eq!(parsed.key("DeviceID"), Some(value.as_str()));
    }

    #[test]
    fn quoted_strings_unquote_to_themselves(value in "(?s).{0,60}") {
        let quoted = quote::string(&value);
        let inner = &quoted[1..quoted.len() - 1];
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
                prop_assert_eq!(chars.next(), Some(c), "lone quote in {}", quoted);
            }
            out.push(c);
        }
        prop_assert_eq!(out, value);
    }

    #[test]
    fn answers_and_snapshots_never_panic(value in json()) {
        let answers = HostAnswers::from_value(&value);
        let survey = analyze(&answers, Source::default());
        let _ = passthru_hyperv::plan::dda::plan_assign(&survey, &passthru_hyperv::plan::dda::AssignRequest {
            devices: vec!["PCIROOT(0)#PCI(0301)#PCI(0000)".into()],
            vm: "Off".into(),
            stop_vm: true,
            force: true,
        });
        let _ = passthru_hyperv::plan::gpu_p::plan_add(&survey, &passthru_hyperv::plan::gpu_p::AddRequest {
            vm: "Running".into(),
            ..Default::default()
        });
        let snapshot = serde_json::json!({
            "format": "passthru-snapshot", "platform": "windows", "version": 1, "answers": value,
        });
        if let Ok(loaded) = WindowsSnapshot::load(snapshot.to_string().as_bytes()) {
            let _ = analyze(&loaded.answers(), Source::default());
        }
    }

    #[test]
    fn envelope_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = envelope::parse(&bytes);
        let mut tagged = b"{\"passthru\":\"answer/1\"".to_vec();
        tagged.extend_from_slice(&bytes);
        let _ = envelope::parse(&tagged);
    }
}
