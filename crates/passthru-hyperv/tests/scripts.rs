//! The PowerShell passthru generates: snapshots of every script and op, the envelope, the
//! stdin framing, an exported plan; and a structural check (balanced brackets and quotes) of
//! everything generated, since no PowerShell runs in these tests.

use passthru_core::plan::Plan;
use passthru_hyperv::model::{PolicyValue, StopAction};
use passthru_hyperv::ops::Op;
use passthru_hyperv::plan::HyperVStep;
use passthru_hyperv::plan::export::powershell_script;
use passthru_hyperv::ps::{Script, envelope, stdin_lines};
use passthru_hyperv::query::Query;

/// Checks that brackets balance outside strings and comments, and that strings close. This is
/// not a PowerShell parser; it catches the mistakes code generation makes (an unescaped quote
/// in a name, a format string that lost a brace).
fn assert_balanced(script: &str) {
    let mut stack: Vec<char> = Vec::new();
    let mut chars = script.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' => {
                while chars.peek().is_some_and(|next| *next != '\n') {
                    chars.next();
                }
            }
            '\'' => loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                    }
                    Some('\'') => break,
                    Some('\n') => line += 1,
                    Some(_) => {}
                    None => panic!("unterminated single-quoted string from line {line}:\n{script}"),
                }
            },
            '"' => {
                let mut depth = 0;
                loop {
                    match chars.next() {
                        Some('`') => {
                            chars.next();
                        }
                        Some('$') if chars.peek() == Some(&'(') => {
                            chars.next();
                            depth += 1;
                        }
                        Some(')') if depth > 0 => depth -= 1,
                        Some('"') if depth == 0 => break,
                        Some('\n') => line += 1,
                        Some(_) => {}
                        None => {
                            panic!("unterminated double-quoted string from line {line}:\n{script}")
                        }
                    }
                }
            }
            '(' | '{' | '[' => stack.push(c),
            ')' | '}' | ']' => {
                let open = stack
                    .pop()
                    .unwrap_or_else(|| panic!("unmatched {c} on line {line}:\n{script}"));
                let expected = match open {
                    '(' => ')',
                    '{' => '}',
                    _ => ']',
                };
                assert_eq!(
                    c, expected,
                    "mismatched {open}...{c} on line {line}:\n{script}"
                );
            }
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}:\n{script}");
}

fn all_ops() -> Vec<Op> {
    let vm = "Win 11 (GPU) — Gäste's";
    let gpu = r"\\?\PCI#VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1#4&296b7397&0&0008#{064092b3-625e-43bf-9eb5-dc845897dd59}\GPUPARAV";
    let location = "PCIROOT(0)#PCI(0301)#PCI(0000)";
    let id = r"PCI\VEN_10DE&DEV_1B06&SUBSYS_36021462&REV_A1\4&1D81E16&0&0019";
    vec![
        Op::StopVm { vm: vm.into(), turn_off: false },
        Op::StopVm { vm: vm.into(), turn_off: true },
        Op::StartVm { vm: vm.into() },
        Op::SetCacheTypes { vm: vm.into(), enabled: true },
        Op::SetMmio { vm: vm.into(), low: Some(3 << 30), high: Some(33280 << 20) },
        Op::SetMmio { vm: vm.into(), low: None, high: Some(8 << 30) },
        Op::SetStopAction { vm: vm.into(), action: StopAction::TurnOff },
        Op::SetMemoryMinimum { vm: vm.into(), minimum: 4 << 30 },
        Op::AddGpuAdapter { vm: vm.into(), instance_path: Some(gpu.into()) },
        Op::AddGpuAdapter { vm: vm.into(), instance_path: None },
        Op::RemoveGpuAdapter { vm: vm.into(), adapter_id: r"Microsoft:9ABB95E2-D12D-43C3-B840-6F4A9CFB217B\929890BC-BB33-4687-BC1A-F72A4F1B3B3F".into() },
        Op::SetPartitionCount { gpu: gpu.into(), count: 8 },
        Op::SetPolicy { value: PolicyValue::RequireSecureDeviceAssignment, data: Some(0) },
        Op::SetPolicy { value: PolicyValue::RequireSupportedDeviceAssignment, data: None },
        Op::DisableDevice { instance_id: id.into() },
        Op::EnableDevice { instance_id: id.into() },
        Op::DismountDevice { location_path: location.into(), force: true },
        Op::DismountDevice { location_path: location.into(), force: false },
        Op::MountDevice { location_path: location.into() },
        Op::AddAssignableDevice { vm: vm.into(), location_path: location.into() },
        Op::RemoveAssignableDevice { vm: vm.into(), location_path: location.into() },
    ]
}

#[test]
fn every_op_renders_exact_powershell() {
    let rendered: Vec<String> = all_ops().iter().map(Op::powershell).collect();
    for script in &rendered {
        assert_balanced(script);
        assert_balanced(&Script::op(all_ops()[0].clone()).wire());
    }
    insta::assert_snapshot!("ops", rendered.join("\n"));
}

#[test]
fn read_scripts() {
    let queries = [
        Query::Vm {
            name: "Win11".into(),
        },
        Query::Device {
            location_path: "PCIROOT(0)#PCI(0301)#PCI(0000)".into(),
            instance_id: Some(
                r"PCI\VEN_10DE&DEV_1B06&SUBSYS_36021462&REV_A1\4&1D81E16&0&0019".into(),
            ),
        },
        Query::Device {
            location_path: "PCIROOT(40)#PCI(0200)#PCI(0000)".into(),
            instance_id: None,
        },
        Query::Policy,
        Query::PartitionableGpus,
        Query::Survey,
    ];
    for query in &queries {
        let script = Script::query(query.clone());
        assert_balanced(&script.body);
        assert_balanced(&script.wire());
    }
    insta::assert_snapshot!(
        "query_vm",
        Query::Vm {
            name: "it's".into()
        }
        .powershell()
    );
    insta::assert_snapshot!("query_device", queries[1].powershell());
    insta::assert_snapshot!("query_policy", Query::Policy.powershell());
    insta::assert_snapshot!("query_survey", Query::Survey.powershell());
}

#[test]
fn the_envelope_and_its_framing() {
    insta::assert_snapshot!("envelope", envelope::wrap("Get-VM -Name 'Win11'"));
    let script = Script::op(Op::StartVm { vm: "Win11".into() });
    let lines = stdin_lines(&script, "@@end@@");
    let mut parts = lines.lines();
    let first = parts.next().unwrap();
    assert!(first.starts_with(
        "& ([ScriptBlock]::Create([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('"
    ));
    let encoded = first.split('\'').nth(1).unwrap();
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), script.wire());
    assert_eq!(parts.next(), Some("'@@end@@'"));
    assert_eq!(parts.next(), None);
    assert_balanced(first);
}

#[test]
fn exported_plan_script() {
    let mut plan: Plan<HyperVStep> = Plan::new("assign NVIDIA GeForce GTX 1080 Ti to VM 'Win11'");
    plan.notes.push("Dismount uses -Force, as Microsoft's GPU guide does: without it Hyper-V refuses every device whose vendor ships no \"mitigation driver\".".into());
    plan.steps = vec![
        HyperVStep::StopVm {
            vm: "Win11".into(),
            turn_off: false,
        },
        HyperVStep::SetStopAction {
            vm: "Win11".into(),
            to: StopAction::TurnOff,
            from: Some(StopAction::Save),
        },
        HyperVStep::SetMmio {
            vm: "Win11".into(),
            low_to: None,
            low_from: None,
            high_to: Some(817 << 20),
            high_from: Some(512 << 20),
        },
        HyperVStep::SetPolicy {
            value: PolicyValue::RequireSecureDeviceAssignment,
            to: 0,
            from: None,
        },
        HyperVStep::DisableDevice {
            instance_id: r"PCI\VEN_10DE&DEV_1B06&SUBSYS_36021462&REV_A1\4&1D81E16&0&0019".into(),
            location_path: "PCIROOT(0)#PCI(0301)#PCI(0000)".into(),
            name: "NVIDIA GeForce GTX 1080 Ti".into(),
        },
        HyperVStep::DismountDevice {
            location_path: "PCIROOT(0)#PCI(0301)#PCI(0000)".into(),
            instance_id: r"PCI\VEN_10DE&DEV_1B06&SUBSYS_36021462&REV_A1\4&1D81E16&0&0019".into(),
            name: "NVIDIA GeForce GTX 1080 Ti".into(),
            force: true,
        },
        HyperVStep::AddAssignableDevice {
            vm: "Win11".into(),
            location_path: "PCIROOT(0)#PCI(0301)#PCI(0000)".into(),
            instance_id: r"PCI\VEN_10DE&DEV_1B06&SUBSYS_36021462&REV_A1\4&1D81E16&0&0019".into(),
            name: "NVIDIA GeForce GTX 1080 Ti".into(),
        },
    ];
    let script = powershell_script(&plan);
    assert_balanced(&script);
    let versionless = script.replace(env!("CARGO_PKG_VERSION"), "VERSION");
    insta::assert_snapshot!("exported_plan", versionless);
}
