"""Boots an installed system's own kernel and initramfs on a lab topology and looks inside the
initramfs before it mounts the root file system.

The system is a root file system tree on the host (such as the Debian root of
tools/stages/45-boot-e2e.sh). Its GRUB menu (`boot/grub/grub.cfg`) says which kernel, which
initramfs and which command line the first entry boots; QEMU boots exactly those, with three
additions: `console=ttyS0` (the serial console the harness talks to), `no_timer_check` (see
docs/vm-lab.md) and `break=mount`. With `break=mount`, initramfs-tools' /init stops after udev
has handled every device and the initramfs's modules are loaded, right before it mounts the
root file system, and gives a shell on the console (`maybe_break` in
/usr/share/initramfs-tools/init). The harness types a probe into that shell that prints, for
every PCI device, the driver bound to it, then the loaded modules, the mounts and the kernel
log, and powers off. Nothing is added to the image: what is booted is what the system would
boot.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .assets import cache_dir, unpack_vmlinux
from .boot import qemu_machine
from .errors import LabUnavailable
from .topology import Topology

LAB_ARGS = ["console=ttyS0", "no_timer_check", "break=mount"]
PROMPT = "(initramfs) "

# Typed into the initramfs shell (klibc's or busybox's sh, with no grep or sed): one record per
# line. `"@@""` keeps the echo of the typed line from looking like a record.
PROBE = r"""
for d in /sys/bus/pci/devices/*; do
  v=-; g=-
  [ -e $d/driver ] && v=$(readlink $d/driver)
  [ -e $d/iommu_group ] && g=$(readlink $d/iommu_group)
  echo "@@""device ${d##*/} ${v##*/} ${g##*/} $(cat $d/driver_override)"
done
while read m rest; do echo "@@""module $m"; done </proc/modules
while read d m rest; do echo "@@""mount $m $d"; done </proc/mounts
echo "@@""uptime $(cat /proc/uptime)"
echo "@@""cmdline $(cat /proc/cmdline)"
echo "@@""vfio-nodes" /dev/vfio/*
echo "@@""kernel-log"; dmesg; echo "@@""end"
"""
# The shell's prompts (PS1, and PS2 for the loop's lines) can precede a record on its line.
_PROMPTS = re.compile(r"^(?:\(initramfs\) |> )*")


class RootBootError(Exception):
    """The system could not be booted or looked into; the message says why."""


@dataclass
class BootEntry:
    """The first entry of a GRUB menu."""

    title: str
    kernel: str  # as GRUB names it, e.g. /boot/vmlinuz-6.1.0-50-amd64
    initrd: str
    args: list[str]


@dataclass
class Probe:
    """What the initramfs showed at the break."""

    drivers: dict[str, str | None] = field(default_factory=dict)  # address -> driver
    groups: dict[str, str | None] = field(default_factory=dict)  # address -> IOMMU group
    overrides: dict[str, str | None] = field(default_factory=dict)
    modules: set[str] = field(default_factory=set)
    mounts: dict[str, str] = field(default_factory=dict)  # mount point -> device
    uptime: float | None = None
    cmdline: str = ""
    vfio_nodes: list[str] = field(default_factory=list)
    kernel_log: list[str] = field(default_factory=list)

    def root_mounted(self) -> bool:
        """Whether the root file system is mounted yet (initramfs-tools mounts it on /root)."""
        return "/root" in self.mounts


def first_entry(grub_cfg: str) -> BootEntry:
    """The first `menuentry` at the top level of a GRUB configuration (the default entry of
    Debian's menu), with its `linux` and `initrd` lines."""
    depth, entry = 0, None
    for raw in grub_cfg.splitlines():
        line = raw.strip()
        if entry is None and depth == 0 and line.startswith("menuentry "):
            title = shlex.split(line[len("menuentry ") :].rstrip("{").strip())[0]
            entry = BootEntry(title, "", "", [])
        elif entry is not None and line.split()[:1] in (["linux"], ["linuxefi"]):
            words = shlex.split(line)
            entry.kernel, entry.args = words[1], words[2:]
        elif entry is not None and line.split()[:1] in (["initrd"], ["initrdefi"]):
            entry.initrd = line.split()[1]
        depth += line.count("{") - line.count("}")
        if entry is not None and depth == 0:
            break
    if entry is None or not entry.kernel or not entry.initrd:
        raise RootBootError("the GRUB menu has no top-level menuentry with `linux` and `initrd`")
    return entry


def parse_probe(text: str) -> Probe:
    """Reads the probe's records out of the console text."""
    probe = Probe()
    lines = iter(text.replace("\r", "").splitlines())
    for line in lines:
        line = _PROMPTS.sub("", line)
        if not line.startswith("@@"):
            continue
        kind, _, rest = line[2:].partition(" ")
        if kind == "device":
            address, driver, group, override = (rest.split(" ") + ["", "", ""])[:4]
            probe.drivers[address] = None if driver in ("-", "") else driver
            probe.groups[address] = None if group in ("-", "") else group
            probe.overrides[address] = None if override in ("(null)", "") else override
        elif kind == "module":
            probe.modules.add(rest)
        elif kind == "mount":
            point, _, device = rest.partition(" ")
            probe.mounts[point] = device
        elif kind == "uptime":
            probe.uptime = float(rest.split()[0]) if rest else None
        elif kind == "cmdline":
            probe.cmdline = rest
        elif kind == "vfio-nodes":
            probe.vfio_nodes = [n for n in rest.split() if n != "/dev/vfio/*"]
        elif kind == "kernel-log":
            for log_line in lines:
                if log_line.startswith("@@end"):
                    break
                probe.kernel_log.append(log_line)
    return probe


class _Console:
    """QEMU's first serial port on its standard input and output, copied to a log file."""

    def __init__(self, command: list[str], log: Path):
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.text = ""
        self._lock = threading.Lock()
        self._log = log.open("w")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := self.process.stdout.read1(4096):
            text = chunk.decode(errors="replace").replace("\r", "")
            with self._lock:
                self.text += text
            self._log.write(text)
            self._log.flush()

    def wait_for(self, pattern: str, since: int, deadline: float) -> int | None:
        """The end of the first match of `pattern` after offset `since`, or None at the deadline
        or when QEMU ended."""
        regex = re.compile(pattern, re.MULTILINE)
        while time.monotonic() < deadline:
            with self._lock:
                match = regex.search(self.text, since)
            if match:
                return match.end()
            if self.process.poll() is not None and not self._reader.is_alive():
                return None
            time.sleep(0.1)
        return None

    def type(self, text: str) -> None:
        self.process.stdin.write(text.encode())
        self.process.stdin.flush()

    def stop(self, grace: float) -> int | None:
        try:
            return self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
        finally:
            self._reader.join(timeout=5)
            self._log.close()


def _elf_kernel(vmlinuz: Path) -> Path:
    """The ELF kernel inside `vmlinuz`, unpacked once into the lab's cache (it boots without
    decompressing itself under emulation, docs/vm-lab.md), or `vmlinuz` when it has none."""
    digest = hashlib.sha256(vmlinuz.read_bytes()).hexdigest()[:16]
    vmlinux = cache_dir() / f"{vmlinuz.name.replace('vmlinuz', 'vmlinux', 1)}-{digest}"
    if vmlinux.is_file() or unpack_vmlinux(vmlinuz, vmlinux):
        return vmlinux
    return vmlinuz


def boot_and_probe(
    root: Path, topology: Topology, out: Path, timeout: float
) -> tuple[BootEntry, Probe, float]:
    """Boots `root`'s default GRUB entry on `topology` and returns the entry, what the initramfs
    showed at `break=mount`, and the seconds the boot took (QEMU start to the probe's end)."""
    grub_cfg = root / "boot/grub/grub.cfg"
    if not grub_cfg.is_file():
        raise RootBootError(f"{grub_cfg} does not exist: this root has no GRUB menu to boot from")
    entry = first_entry(grub_cfg.read_text())
    kernel, initrd = root / entry.kernel.lstrip("/"), root / entry.initrd.lstrip("/")
    for path in (kernel, initrd):
        if not path.is_file():
            raise RootBootError(f"the GRUB menu boots {path}, which does not exist")
    out.mkdir(parents=True, exist_ok=True)
    boot_image = _elf_kernel(kernel)
    cmdline = " ".join([f"BOOT_IMAGE={entry.kernel}", *entry.args, *LAB_ARGS])
    command = qemu_machine(topology) + [
        "-kernel", str(boot_image), "-initrd", str(initrd), "-append", cmdline,
        "-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
    ]  # fmt: skip
    (out / "qemu-command").write_text(shlex.join(command) + "\n")
    started = time.monotonic()
    try:
        console = _Console(command, out / "console.log")
    except FileNotFoundError as error:
        raise LabUnavailable(f"{command[0]} is not installed") from error
    deadline = started + timeout
    try:
        at = console.wait_for(re.escape(PROMPT), 0, deadline)
        if at is None:
            raise RootBootError(
                f"no initramfs shell appeared on the console within {timeout:.0f} s "
                f"(see {out / 'console.log'})"
            )
        for line in PROBE.strip().splitlines():
            console.type(line + "\n")
        end = console.wait_for(r"^@@end$", at, deadline)
        if end is None:
            raise RootBootError(f"the probe did not finish (see {out / 'console.log'})")
        seconds = time.monotonic() - started
        console.type("poweroff -f\n")
    finally:
        console.stop(grace=15)
    return entry, parse_probe(console.text[at:]), seconds


def judge(probe: Probe, expected: dict[str, str | None], cmdline: str) -> list[tuple[bool, str]]:
    """Checks: each expected driver (None: no driver), the command line the kernel got, and that
    the root file system was not mounted yet."""
    checks = [
        (probe.cmdline == cmdline, f"the kernel booted with the menu's command line: {cmdline!r}"),
        (not probe.root_mounted(), "the root file system is not mounted yet (nothing on /root)"),
    ]
    for address, driver in expected.items():
        if address not in probe.drivers:
            checks.append((False, f"{address} exists (the topology has no such device)"))
            continue
        actual, wanted = probe.drivers[address] or "no driver", driver or "no driver"
        what = f"{address} is on {actual}" + ("" if actual == wanted else f", not {wanted}")
        checks.append((actual == wanted, what))
        if driver == "vfio-pci":
            # VFIO made the group's device node: a VM could open the device now.
            node = f"/dev/vfio/{probe.groups.get(address)}"
            checks.append((node in probe.vfio_nodes, f"{node} exists (the group of {address})"))
    return checks


_REPORTED_LOG = re.compile(r"vfio|VFIO|DMAR: IOMMU enabled|AMD-Vi: Interrupt remapping")


def vfio_log_lines(probe: Probe) -> list[str]:
    """The kernel log lines about VFIO and the IOMMU, for the report (the command line, which
    mentions vfio too, is in the checks already)."""
    return [
        line
        for line in probe.kernel_log
        if _REPORTED_LOG.search(line) and "command line" not in line.lower()
    ]
