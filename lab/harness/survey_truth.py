"""What `passthru survey` must say about a lab guest, worked out without passthru.

The truth comes from the kernel: the table of PCI devices the guest read from sysfs with shell
builtins just before survey ran (`pci_table` in lab/guest/lab.sh), a few facts of the boot
(kernel release, command line, IOMMU units, loaded modules), and the topology file. From those,
the rules below say what survey's JSON and human output must contain; `check_*` return the
problems found (empty: it agrees) and count what they compared.

The rules, with their sources:

- An IOMMU group is viable when every member is unbound or bound to a driver that manages DMA
  ownership itself: vfio-pci, pci-stub, or pcieport for ports (`driver_managed_dma` in
  drivers/vfio/pci/vfio_pci.c, drivers/pci/pci-stub.c, drivers/pci/pcie/portdrv_pci.c; the
  group check is `iommu_device_use_default_domain()` in drivers/iommu/iommu.c, Linux 5.19+).
- Class 0x0600 is a host bridge, 0x0604 and 0x0609 are PCI-to-PCI bridges (the PCI Code and
  ID Assignment specification); every other function is an endpoint, ISA bridges included.
- Functions of one slot (same domain, bus and device number) belong to one card and go to a VM
  together; in an IOMMU group they are companions, not "other devices". (Without an IOMMU
  survey names no companions: nothing can be assigned then, and the rule follows it.)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

DMA_MANAGING_DRIVERS = {None, "vfio-pci", "pci-stub", "pcieport"}
VFIO_DRIVERS = {"vfio-pci", "pci-stub"}

# Verdict reasons whose presence the kernel's table decides, and the severity each must have.
SEVERITY = {
    "no-iommu": "blocker",
    "no-iommu-group": "blocker",
    "group-shared": "blocker",
    "boot-vga": "warning",
    "no-reset": "warning",
    "companion-function": "warning",
    "bus-reset-only": "info",
    "host-driver": "info",
    "no-driver": "info",
}

# Reasons that need the capabilities in config space, which only root can read.
NEEDS_CONFIG = {"intx-only", "acs-missing-upstream"}

# Kernel parameters survey reports (docs/json-schema.md, `host.kernel_params`) that lab
# topologies use.
_REPORTED_PARAM = re.compile(r"^(intel_iommu|amd_iommu|iommu|vfio[-_]pci\.\w+|pcie_acs_override)$")


@dataclass(frozen=True)
class Row:
    """One line of the guest's `pci_table`."""

    address: str
    id: str
    pci_class: str
    driver: str | None
    boot_vga: str | None
    reset_method: str | None
    group: int | None
    members: tuple[str, ...]

    @property
    def slot(self) -> str:
        return self.address.rsplit(".", 1)[0]

    @property
    def role(self) -> str:
        if self.pci_class.startswith("0x0600"):
            return "host-bridge"
        if self.pci_class.startswith(("0x0604", "0x0609")):
            return "bridge"
        return "endpoint"


def _absent(value: str) -> str | None:
    return None if value == "-" else value


def read_table(text: str) -> dict[str, Row]:
    lines = text.splitlines()
    header = lines[0].split("\t")
    expected = ["address", "id", "class", "driver", "boot_vga", "reset_method", "iommu_group",
                "group_members"]  # fmt: skip
    if header != expected:
        raise ValueError(f"the table's header is {header}, not {expected}")
    rows = {}
    for line in lines[1:]:
        address, pci_id, pci_class, driver, boot_vga, reset, group, members = line.split("\t")
        rows[address] = Row(
            address, pci_id, pci_class, _absent(driver), _absent(boot_vga), _absent(reset),
            None if group == "-" else int(group),
            tuple(members.split(",")) if members != "-" else (),
        )  # fmt: skip
    return rows


def read_facts(text: str) -> dict[str, str]:
    """The guest's `key=value` lines (guest-facts.txt)."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@dataclass
class Report:
    compared: int = 0
    problems: list[str] = field(default_factory=list)

    def expect(self, what: str, expected, actual) -> None:
        self.compared += 1
        if expected != actual:
            self.problems.append(f"{what}: expected {expected!r}, survey says {actual!r}")


def expected_reasons(row: Row, table: dict[str, Row]) -> dict[str, bool]:
    """For an endpoint: which of the reasons in SEVERITY must be present (the two "in no IOMMU
    group" reasons are checked together, since either fits a device without a group)."""
    others = [
        other
        for other in table.values()
        if row.group is not None and other.group == row.group and other.address != row.address
    ]
    return {
        "group-shared": any(
            other.role == "endpoint"
            and other.slot != row.slot
            and other.driver not in DMA_MANAGING_DRIVERS
            for other in others
        ),
        "boot-vga": row.boot_vga == "1",
        "no-reset": row.reset_method is None,
        "companion-function": any(other.slot == row.slot for other in others),
        "bus-reset-only": row.reset_method == "bus",
        "host-driver": row.driver is not None and row.driver not in VFIO_DRIVERS,
        "no-driver": row.driver is None,
    }


def _check_device(report: Report, device: dict, row: Row, table: dict[str, Row]) -> None:
    where = row.address
    report.expect(f"{where} vendor:device", row.id, f"{device['vendor']}:{device['device']}")
    report.expect(f"{where} class", row.pci_class, device["class"])
    report.expect(f"{where} driver", row.driver, device["driver"])
    report.expect(f"{where} IOMMU group", row.group, device["iommu_group"])
    boot_vga = {"1": True, "0": False, None: None}[row.boot_vga]
    report.expect(f"{where} boot_vga", boot_vga, device["boot_vga"])
    methods = row.reset_method.split() if row.reset_method else None
    report.expect(f"{where} reset methods", methods, device["reset"]["methods"])
    report.expect(f"{where} role", row.role, device["role"])
    gpu = row.pci_class.startswith("0x03")
    report.expect(f"{where} is a GPU", gpu, device["category"] == "gpu")

    verdict = device["verdict"]
    if row.role != "endpoint":
        report.expect(f"{where} verdict", "not-applicable", verdict["status"])
        return
    reasons = {reason["code"]: reason["severity"] for reason in verdict["reasons"]}
    wanted = expected_reasons(row, table)
    for code, present in wanted.items():
        report.expect(f"{where} has reason {code}", present, code in reasons)
        if present and code in reasons:
            report.expect(f"{where} severity of {code}", SEVERITY[code], reasons[code])
    ungrouped = {"no-iommu", "no-iommu-group"} & set(reasons)
    report.expect(f"{where} says it is in no IOMMU group", row.group is None, bool(ungrouped))
    blocked = row.group is None or wanted["group-shared"]
    report.expect(f"{where} is blocked", blocked, verdict["status"] == "blocked")
    if not blocked:
        warned = "warning" in reasons.values()
        report.expect(
            f"{where} verdict", "caution" if warned else "assignable", verdict["status"]
        )


def _check_groups(report: Report, survey: dict, table: dict[str, Row]) -> None:
    groups = {}
    for row in table.values():
        if row.group is not None:
            groups.setdefault(row.group, row.members)
    by_number = {group["number"]: group for group in survey["groups"]}
    report.expect("IOMMU group numbers", sorted(groups), sorted(by_number))
    for number, members in sorted(groups.items()):
        group = by_number.get(number)
        if group is None:
            continue
        names = [member["name"] for member in group["members"]]
        report.expect(f"group {number} members", sorted(members), sorted(names))
        blocking = []
        for member in group["members"]:
            row = table.get(member["name"])
            if row is None:
                continue
            report.expect(f"group {number}: {row.address} role", row.role, member["role"])
            report.expect(f"group {number}: {row.address} driver", row.driver, member["driver"])
            blocks = row.driver not in DMA_MANAGING_DRIVERS
            report.expect(f"group {number}: {row.address} blocks", blocks, member["blocking"])
            blocking.append(blocks)
        report.expect(f"group {number} viable", not any(blocking), group["viable"])


def _check_host(report: Report, host: dict, table: dict[str, Row], facts: dict, topology) -> None:
    expect = report.expect
    has_iommu = topology.iommu != "none"
    expect("host: IOMMU active", has_iommu, host["iommu_active"])
    groups = {row.group for row in table.values() if row.group is not None}
    expect("host: IOMMU groups (the kernel's count)", len(groups), host["iommu_group_count"])
    expect("host: IOMMU groups (the topology's)", topology.iommu_groups, host["iommu_group_count"])
    units = sorted(facts["iommu_units"].split())
    expect("host: IOMMU units", units, sorted(host["iommu_units"]))
    expect("host: kernel release", facts["kernel_release"], host["kernel_release"])
    params = [
        (name, value or None)
        for name, _, value in (token.partition("=") for token in facts["cmdline"].split())
        if _REPORTED_PARAM.match(name)
    ]
    reported = [(param["name"], param["value"] or None) for param in host["kernel_params"]]
    expect("host: kernel parameters", params, reported)
    expect("host: /dev/kvm", facts["kvm_device"] == "present", host["kvm_device"])
    in_vm = "hypervisor" in facts["cpu_flags"].split()
    expect("host: the CPU says it runs in a VM", in_vm, host["cpu"]["hypervisor"])
    loaded = set(facts["loaded_modules"].split())
    states = {module["name"]: module["state"] for module in host["modules"]}
    for module in ("vfio", "vfio_pci", "vfio_iommu_type1"):
        # The lab's initramfs ships them (lab/guest/modules); scenarios may have loaded them.
        wanted = "loaded" if module in loaded else "available"
        expect(f"host: module {module}", wanted, states.get(module))
    findings = {finding["code"]: finding for finding in host["findings"]}
    expect("host: finding iommu-off", not has_iommu, "iommu-off" in findings)
    off = findings.get("iommu-off")
    if off is not None:
        expect("host: iommu-off is a blocker", "blocker", off["severity"])
        # The guest is a VM: what must change is its hypervisor, which survey must say.
        fix = off.get("fix") or ""
        says = "virtual IOMMU" in fix and "intel-iommu" in fix
        expect("host: iommu-off says to give the VM a virtual IOMMU", True, says)


def check_survey(survey: dict, table: dict[str, Row], facts: dict, topology) -> Report:
    """survey --json as root against the kernel's table, the boot's facts and the topology."""
    report = Report()
    schema = (survey["schema"], survey["schema_version"])
    report.expect("schema", ("passthru-survey", 1), schema)
    report.expect("total devices", len(table), survey["total_devices"])
    devices = {device["address"]: device for device in survey["devices"]}
    report.expect("device addresses", sorted(table), sorted(devices))
    report.expect("warnings", [], survey["warnings"])
    _check_host(report, survey["host"], table, facts, topology)
    for address, row in table.items():
        if address in devices:
            _check_device(report, devices[address], row, table)
    _check_groups(report, survey, table)
    return report


_SUMMARY = re.compile(
    r"^Summary: (\d+) devices \((\d+) GPU\), (\d+) IOMMU groups: (\d+) ready, (\d+) ok, "
    r"(\d+) caution, (\d+) blocked, (\d+) bridges$",
    re.MULTILINE,
)
_LISTED = re.compile(r"^  ([0-9a-f]{4,5}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])  ", re.MULTILINE)


def check_human(text: str, survey: dict, table: dict[str, Row]) -> Report:
    """The human output shows the same groups, devices and counts as the kernel and the JSON."""
    report = Report()
    expect = report.expect
    groups = sorted({row.group for row in table.values() if row.group is not None})
    headers = [int(n) for n in re.findall(r"^IOMMU group (\d+) ", text, re.MULTILINE)]
    expect("human: group headers", groups, headers)
    ungrouped = any(row.group is None for row in table.values())
    expect("human: a 'No IOMMU group' section", ungrouped, "\nNo IOMMU group\n" in text)
    expect("human: devices listed", sorted(table), sorted(_LISTED.findall(text)))
    iommu = f"active ({len(groups)} groups)" if groups else "off"
    expect("human: IOMMU line", True, f"\n  IOMMU    {iommu}\n" in text)
    statuses = [device["verdict"]["status"] for device in survey["devices"]]
    gpus = sum(row.pci_class.startswith("0x03") for row in table.values())
    wanted = [len(table), gpus, len(groups), statuses.count("assignable"),
              statuses.count("caution"), statuses.count("blocked"),
              statuses.count("not-applicable")]  # fmt: skip
    summary = _SUMMARY.search(text)
    counts = [int(n) for n in summary.groups()] if summary else []
    counts[3:5] = [sum(counts[3:5])]  # "ready" and "ok" are both "assignable"
    expect("human: summary (devices, GPUs, groups, ok, caution, blocked, bridges)", wanted, counts)
    if not groups:
        expect("human: says no IOMMU is active", True, "✗ no IOMMU is active" in text)
        says = "→ this host is itself a virtual machine: its hypervisor must give it" in text
        expect("human: says what to change", True, says)
    return report


def check_unprivileged(nonroot: dict, root: dict) -> Report:
    """As nobody: capabilities are "needs root" everywhere, nothing that needs them is guessed,
    and everything else is what root sees."""
    report = Report()
    expect = report.expect
    codes = {finding["code"] for finding in nonroot["host"]["findings"]}
    expect("as nobody: finding capabilities-need-root", True, "capabilities-need-root" in codes)
    root_devices = {device["address"]: device for device in root["devices"]}
    expect("as nobody: the same devices", sorted(root_devices),
           sorted(device["address"] for device in nonroot["devices"]))  # fmt: skip
    for device in nonroot["devices"]:
        where = f"as nobody: {device['address']}"
        expect(f"{where} config status", "needs-root", device["config"]["status"])
        expect(f"{where} config bytes read", 64, device["config"].get("bytes_read"))
        reasons = [reason["code"] for reason in device["verdict"]["reasons"]]
        guessed = sorted(NEEDS_CONFIG & set(reasons))
        expect(f"{where} reasons that need config space", [], guessed)
        twin = root_devices.get(device["address"])
        if twin is None:
            continue
        from_sysfs = [r["code"] for r in twin["verdict"]["reasons"]]
        from_sysfs = [code for code in from_sysfs if code not in NEEDS_CONFIG]
        expect(f"{where} reasons (root's, less those from config space)", from_sysfs, reasons)
        for key in ("driver", "iommu_group", "boot_vga", "reset", "resources", "class", "role"):
            expect(f"{where} {key} (as root sees it)", twin[key], device[key])
    expect("as nobody: the same groups", root["groups"], nonroot["groups"])
    return report


def differences(guest: dict, replayed: dict, allowed: tuple[str, ...] = ("source",)) -> list[str]:
    """Where a replayed survey differs from the guest's own, outside the fields `allowed` to."""
    found = []

    def walk(a, b, path: str) -> None:
        if path.lstrip(".") in allowed:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{path}.{key}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for index, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{path}[{index}]")
        elif a != b:
            found.append(
                f"{path or '.'}: the guest said {json.dumps(a)[:200]}, "
                f"the replay says {json.dumps(b)[:200]}"
            )

    walk(guest, replayed, "")
    return found
