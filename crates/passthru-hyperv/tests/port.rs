//! The real PowerShell transports, driven by stand-ins: a shell script that speaks the stdin
//! protocol (decodes the base64 line, answers, echoes the sentinel), and a fake command runner.

use std::io;
use std::time::Duration;

use passthru_core::runner::{CommandOutput, CommandRunner, CommandSpec};
use passthru_hyperv::client::{HostError, HyperVHost};
use passthru_hyperv::error::ErrorKind;
use passthru_hyperv::ps::envelope::Answer;
use passthru_hyperv::ps::oneshot::OneShot;
use passthru_hyperv::ps::{POWERSHELL_ARGS, PortError, Script};
use passthru_hyperv::query::Query;

#[cfg(unix)]
mod stand_in {
    use std::time::Duration;

    use passthru_hyperv::ops::Op;
    use passthru_hyperv::ps::{PortError, PowerShell, Script};
    use passthru_hyperv::query::Query;

    /// Reads the two lines per script; answers with the byte length of the decoded script, so the
    /// test can check that the script arrived intact; echoes the sentinel; `Stop-VM` makes it
    /// print to stderr and exit, `Start-VM` makes it hang.
    const STAND_IN: &str = r#"
    while IFS= read -r line; do
      case "$line" in
        "& ([ScriptBlock]"*)
          encoded=${line#*FromBase64String(\'}
          encoded=${encoded%%\'*}
          script=$(printf '%s' "$encoded" | base64 -d)
          case "$script" in
            *Stop-VM*) echo "PowerShell died" >&2; exit 3 ;;
            *Start-VM*) sleep 5 ;;
          esac
          bytes=$(printf '%s' "$encoded" | base64 -d | wc -c)
          echo "WARNING: noise before the answer"
          echo "{\"passthru\":\"answer/1\",\"ok\":true,\"data\":[$bytes],\"warnings\":[]}"
          ;;
        "'"*) line=${line#\'}; echo "${line%\'}" ;;
      esac
    done
    "#;

    fn stand_in(timeout: Duration) -> passthru_hyperv::ps::process::PowerShellProcess {
        passthru_hyperv::ps::process::PowerShellProcess::spawn("sh", &["-c", STAND_IN], timeout)
            .unwrap()
    }

    #[test]
    fn one_process_answers_many_scripts_intact() {
        let mut powershell = stand_in(Duration::from_secs(20));
        for query in [
            Query::Survey,
            Query::Policy,
            Query::Vm {
                name: "Gäste's VM".into(),
            },
        ] {
            let script = Script::query(query);
            let stdout = powershell.run(&script).unwrap();
            let answer = passthru_hyperv::ps::envelope::parse(&stdout).unwrap();
            assert_eq!(answer.data, vec![serde_json::json!(script.wire().len())]);
        }
    }

    #[test]
    fn a_dying_powershell_is_reported_with_its_last_words() {
        let mut powershell = stand_in(Duration::from_secs(20));
        let error = powershell
            .run(&Script::op(Op::StopVm {
                vm: "x".into(),
                turn_off: false,
            }))
            .unwrap_err();
        match error {
            PortError::Exited { status, stderr } => {
                assert_eq!(status, Some(3));
                assert!(stderr.contains("PowerShell died"), "{stderr}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_hung_script_times_out() {
        let mut powershell = stand_in(Duration::from_millis(300));
        let error = powershell
            .run(&Script::op(Op::StartVm { vm: "x".into() }))
            .unwrap_err();
        assert!(matches!(error, PortError::TimedOut { .. }), "{error:?}");
    }
}

#[test]
fn a_missing_powershell_is_a_spawn_error() {
    let error = passthru_hyperv::ps::process::PowerShellProcess::spawn(
        "passthru-no-such-powershell",
        &POWERSHELL_ARGS,
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert!(matches!(error, PortError::Spawn { .. }), "{error:?}");
}

/// Answers every command with a canned stdout and records what it was asked.
#[derive(Debug, Default)]
struct FakeRunner {
    seen: Vec<CommandSpec>,
    stdout: Vec<u8>,
}

impl CommandRunner for FakeRunner {
    fn run(&mut self, command: &CommandSpec) -> io::Result<CommandOutput> {
        self.seen.push(command.clone());
        Ok(CommandOutput {
            status: Some(0),
            stdout: self.stdout.clone(),
            stderr: Vec::new(),
            timed_out: false,
        })
    }
}

#[test]
fn one_shot_starts_windows_powershell_exactly_so() {
    let failure = Answer::failure(
        passthru_hyperv::error::ErrorRecord::virtualization(
            "Get-VM",
            "InvalidParameter",
            "InvalidArgument",
            "Hyper-V was unable to find a virtual machine with name \"Nope\".",
        ),
        Vec::new(),
    );
    let runner = FakeRunner {
        stdout: format!("{}\r\n", failure.to_line()).into_bytes(),
        ..FakeRunner::default()
    };
    let powershell = OneShot::new(
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        runner,
    );
    let script = Script::query(Query::Vm {
        name: "Nope".into(),
    });
    let command = powershell.command(&script);
    assert_eq!(
        command.program,
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"
    );
    assert_eq!(
        command.args,
        vec!["-NoProfile", "-NonInteractive", "-Command", "-"]
    );
    assert!(command.timeout.is_some());
    let stdin = String::from_utf8(command.stdin.clone().unwrap()).unwrap();
    assert!(
        stdin.is_ascii(),
        "the script travels as base64, whatever the VM name"
    );
    let mut host = HyperVHost::new(Box::new(powershell), None);
    match host.vm("Nope") {
        Err(HostError::HyperV(error)) => assert_eq!(error.kind, ErrorKind::VmNotFound),
        other => panic!("{other:?}"),
    }
}

/// Another crate's request (driver provisioning will mount VHDs this way), taught to the
/// simulator by an extension; unknown requests fail like an unknown command.
#[test]
fn other_crates_extend_the_port_and_the_simulator() {
    use passthru_hyperv::error::ErrorRecord;
    use passthru_hyperv::sim::{Extension, SimState, Simulator};

    struct MountVhd {
        mounted: Vec<String>,
    }
    impl Extension for MountVhd {
        fn handles(&self, kind: &str) -> bool {
            kind == "driver.mount-vhd"
        }
        fn execute(
            &mut self,
            _kind: &str,
            payload: &serde_json::Value,
            state: &mut SimState,
        ) -> Result<Vec<serde_json::Value>, Box<ErrorRecord>> {
            let path = payload["path"].as_str().unwrap_or_default().to_owned();
            state.log.push(format!("Mount-VHD -Path '{path}'"));
            self.mounted.push(path);
            Ok(vec![serde_json::json!({"driveLetter": "F"})])
        }
    }

    let state: SimState = serde_json::from_str(
        &fs_err::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fixtures/hyperv/simulator/win11-laptop-gpu-pv.state.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let simulator = Simulator::new(state).with_extension(Box::new(MountVhd {
        mounted: Vec::new(),
    }));
    let mut host = HyperVHost::new(Box::new(simulator), None);
    let script = Script::extension(
        "driver.mount-vhd",
        serde_json::json!({"path": r"C:\VMs\win11.vhdx"}),
        r"Mount-VHD -Path 'C:\VMs\win11.vhdx' -PassThru | Get-Disk | Get-Partition | Get-Volume | ForEach-Object { [ordered]@{ driveLetter = [string]$_.DriveLetter } }",
    );
    let answer = host.run(&script).unwrap();
    assert_eq!(answer.data, vec![serde_json::json!({"driveLetter": "F"})]);
    let unknown = Script::extension("driver.unknown", serde_json::Value::Null, "Do-Nothing");
    match host.run(&unknown) {
        Err(HostError::HyperV(error)) => {
            assert!(
                matches!(error.kind, ErrorKind::CommandNotFound { .. }),
                "{error:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}
