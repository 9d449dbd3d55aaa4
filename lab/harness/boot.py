"""Boots one topology under QEMU (TCG) and collects what the guest reported."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .assets import Kernel
from .channel import BootRecord, parse
from .initramfs import build_boot
from .topology import Topology

QEMU = "qemu-system-x86_64"

# The console on the first serial port, ACPI poweroff ends QEMU, a panic ends it too (-no-reboot).
# no_timer_check: on a loaded host the emulated guest can miss the IO-APIC timer test, and with
# interrupt remapping the kernel then panics ("timer doesn't work through Interrupt-remapped
# IO-APIC"); the test proves nothing about an emulated timer.
BASE_CMDLINE = "console=ttyS0 panic=-1 rdinit=/init no_timer_check"


@dataclass
class BootResult:
    topology: Topology
    scenarios: list[str]
    out: Path  # console.log, channel.log, files/
    record: BootRecord
    seconds: float
    timed_out: bool
    qemu_status: int | None
    qemu_stderr: str

    @property
    def console(self) -> str:
        return (self.out / "console.log").read_text(errors="replace")


def qemu_machine(topology: Topology) -> list:
    """QEMU and the topology's machine, without a kernel or serial ports."""
    # KVM is not used: on the machines this runs on, guests hang under /dev/kvm (docs/vm-lab.md).
    return [
        QEMU, "-accel", "tcg", "-nodefaults", "-no-user-config", "-display", "none",
        "-no-reboot", "-smp", "1",
        *topology.qemu_args(),
    ]  # fmt: skip


def qemu_command(topology: Topology, kernel: Kernel, initrd: Path, extra_cmdline: str = "") -> list:
    """The QEMU command line, without the serial ports (the caller decides where they go)."""
    cmdline = " ".join(filter(None, [BASE_CMDLINE, topology.kernel_cmdline, extra_cmdline]))
    kernel_args = ["-kernel", str(kernel.boot_image), "-initrd", str(initrd), "-append", cmdline]
    return qemu_machine(topology) + kernel_args


def safe_name(name: str) -> str:
    """A file name the guest chose, reduced to one harmless path component."""
    base = Path(name).name
    return base if base not in ("", ".", "..") else "unnamed"


def boot_files(topology: Topology, scenarios: list[str]) -> dict[str, str]:
    """The per-boot part of the initramfs: the topology's facts and the scenarios to run."""
    return {
        "/lab/topology.tsv": topology.facts_table(),
        "/lab/topology.env": topology.guest_env(),
        "/lab/plan": "\n".join(scenarios) + "\n",
    }


def run(
    topology: Topology,
    scenarios: list[str],
    kernel: Kernel,
    common: Path,
    out: Path,
    timeout: float,
) -> BootResult:
    # Keep the run before this one: a flaky failure's evidence survives one re-run.
    previous = out.with_name(out.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if out.exists():
        out.rename(previous)
    out.mkdir(parents=True)
    initrd = out / "initrd.cpio"
    build_boot(common, boot_files(topology, scenarios), initrd)
    console, channel = out / "console.log", out / "channel.log"
    command = qemu_command(topology, kernel, initrd)
    command += ["-chardev", f"file,id=console,path={console}", "-serial", "chardev:console"]
    command += ["-chardev", f"file,id=lab,path={channel}", "-serial", "chardev:lab"]
    (out / "qemu-command").write_text(" ".join(command) + "\n")

    started = time.monotonic()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    try:
        stderr, _ = process.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        process.kill()
        stderr, _ = process.communicate()
        timed_out = True
    seconds = time.monotonic() - started
    initrd.unlink()

    record = parse(channel.read_text(errors="replace") if channel.exists() else "")
    for scenario in record.scenarios.values():
        for blob in scenario.blobs:
            folder = out / ("logs" if blob.kind == "log" else "files") / scenario.name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / safe_name(blob.name)).write_bytes(blob.data)
    if not console.exists():
        console.write_text("")
    return BootResult(
        topology, scenarios, out, record, seconds, timed_out, process.returncode, stderr
    )
