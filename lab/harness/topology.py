"""Topologies: one TOML file each under lab/topologies/ (format described in docs/vm-lab.md).

A topology says how QEMU builds the machine and what the guest kernel must show for it: which
devices sit at which address, their drivers, boot_vga, reset methods and IOMMU group pattern.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .assets import LAB

TOPOLOGIES = LAB / "topologies"

# Columns of the facts table the guest reads (/lab/topology.tsv); "-" stands for "absent".
FACT_COLUMNS = ["address", "name", "role", "id", "driver", "boot_vga", "reset_method", "group"]


class TopologyError(Exception):
    """A topology file that cannot be used, with the file and the reason."""


@dataclass
class Device:
    qemu: str  # one -device argument; empty for a device QEMU makes by itself
    facts: dict[str, str] = field(default_factory=dict)


@dataclass
class Topology:
    name: str
    path: Path
    description: str
    machine: str
    iommu: str
    kernel_cmdline: str
    qemu: list[str]
    devices: list[Device]
    iommu_groups: int
    scenarios: list[str]
    memory: str = "512M"

    def qemu_args(self) -> list[str]:
        args = ["-machine", self.machine, "-m", self.memory, *self.qemu]
        for device in self.devices:
            if device.qemu:
                args += ["-device", device.qemu]
        return args

    def facts_table(self) -> str:
        """The devices' facts as tab-separated lines with a header, for the guest's helpers."""
        members: dict[str, list[str]] = {}
        for device in self.devices:
            if device.facts.get("group"):
                members.setdefault(device.facts["group"], []).append(device.facts["address"])
        lines = ["\t".join(FACT_COLUMNS)]
        for device in self.devices:
            if "address" not in device.facts:
                continue
            row = {column: device.facts.get(column) or "-" for column in FACT_COLUMNS}
            label = device.facts.get("group")
            row["group"] = ",".join(sorted(members[label])) if label else "-"
            lines.append("\t".join(row[column] for column in FACT_COLUMNS))
        return "\n".join(lines) + "\n"

    def guest_env(self) -> str:
        return (
            f"LAB_TOPOLOGY={self.name}\nLAB_IOMMU={self.iommu}\n"
            f"LAB_IOMMU_GROUPS={self.iommu_groups}\n"
        )


def _expect(data: dict, key: str, kind: type, path: Path, where: str = ""):
    if key not in data:
        raise TopologyError(f"{path}: {where}`{key}` is missing")
    if not isinstance(data[key], kind):
        raise TopologyError(f"{path}: {where}`{key}` must be a {kind.__name__}")
    return data[key]


def load(path: Path) -> Topology:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise TopologyError(f"{path}: cannot read it as TOML: {error}") from error
    iommu = _expect(data, "iommu", str, path)
    if iommu not in ("intel", "amd", "none"):
        raise TopologyError(f"{path}: `iommu` must be intel, amd or none, not {iommu!r}")
    devices = []
    for index, entry in enumerate(data.get("device", [])):
        where = f"device #{index + 1}: "
        qemu = entry.get("qemu", "")
        if not isinstance(qemu, str) or not (qemu or "address" in entry):
            raise TopologyError(f"{path}: {where}needs `qemu` (a -device argument) or `address`")
        facts = {k: str(v) for k, v in entry.items() if k != "qemu"}
        unknown = set(facts) - set(FACT_COLUMNS)
        if unknown:
            raise TopologyError(f"{path}: {where}unknown keys {sorted(unknown)}")
        if "address" in facts:
            for required in ("name", "id", "driver"):
                _expect(entry, required, str, path, where)
            if iommu != "none" and "group" not in facts:
                raise TopologyError(
                    f"{path}: {where}`group` is missing (the topology has an IOMMU)"
                )
        devices.append(Device(qemu, facts))
    return Topology(
        name=path.stem,
        path=path,
        description=_expect(data, "description", str, path),
        machine=_expect(data, "machine", str, path),
        iommu=iommu,
        kernel_cmdline=data.get("kernel_cmdline", ""),
        qemu=list(data.get("qemu", [])),
        devices=devices,
        iommu_groups=_expect(data, "iommu_groups", int, path),
        scenarios=_expect(data, "scenarios", list, path),
        memory=data.get("memory", "512M"),
    )


def all_names() -> list[str]:
    return sorted(p.stem for p in TOPOLOGIES.glob("*.toml"))


def by_name(name: str) -> Topology:
    path = TOPOLOGIES / f"{name}.toml"
    if not path.is_file():
        raise TopologyError(f"no topology {name!r}; known: {', '.join(all_names())}")
    return load(path)
