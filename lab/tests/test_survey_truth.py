"""Tests of lab/harness/survey_truth.py: it accepts a survey that matches the kernel's table and
names each kind of disagreement. The lab itself runs it on real guests (passthru-runs.host).

python3 -m unittest discover -s lab/tests
"""

import copy
import dataclasses
import sys
import unittest
from pathlib import Path

LAB = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(LAB))

from harness import survey_truth, topology  # noqa: E402

# A GPU and its audio function in group 1, a NIC alone in group 2, and two NICs behind a PCI
# bridge sharing group 3 with it.
TABLE = """address\tid\tclass\tdriver\tboot_vga\treset_method\tiommu_group\tgroup_members
0000:00:00.0\t8086:29c0\t0x060000\t-\t-\t-\t0\t0000:00:00.0
0000:01:00.0\t1234:1111\t0x030000\tbochs-drm\t1\tbus\t1\t0000:01:00.0,0000:01:00.1
0000:01:00.1\t8086:293e\t0x040300\tsnd_hda_intel\t-\t-\t1\t0000:01:00.0,0000:01:00.1
0000:02:00.0\t8086:10d3\t0x020000\te1000e\t-\tpm bus\t2\t0000:02:00.0
0000:07:00.0\t1b36:000e\t0x060400\t-\t-\tpm bus\t3\t0000:07:00.0,0000:08:01.0,0000:08:02.0
0000:08:01.0\t8086:100e\t0x020000\te1000\t-\tbus\t3\t0000:07:00.0,0000:08:01.0,0000:08:02.0
0000:08:02.0\t8086:100e\t0x020000\te1000\t-\t-\t3\t0000:07:00.0,0000:08:01.0,0000:08:02.0
"""
FACTS = """kernel_release=6.1.0-56-amd64
cmdline=console=ttyS0 no_timer_check intel_iommu=on iommu=pt
iommu_units=dmar0 
loaded_modules=vfio vfio_pci 
kvm_device=absent
cpu_flags= fpu svm hypervisor
"""


def reason(code: str) -> dict:
    return {"severity": survey_truth.SEVERITY.get(code, "info"), "code": code, "message": "m"}


def device(address, ids, pci_class, driver, group, role, status, codes, boot_vga=None, reset=None):
    vendor, dev = ids.split(":")
    return {
        "address": address, "vendor": vendor, "device": dev, "class": pci_class,
        "category": "gpu" if pci_class.startswith("0x03") else "other", "role": role,
        "driver": driver, "iommu_group": group, "boot_vga": boot_vga,
        "reset": {"methods": reset, "reset_file": reset is not None}, "resources": None,
        "config": {"status": "decoded", "bytes_read": 4096},
        "verdict": {"status": status, "reasons": [reason(code) for code in codes]},
    }  # fmt: skip


def member(name, role, driver, blocking):
    return {"name": name, "role": role, "driver": driver, "blocking": blocking}


SURVEY = {
    "schema": "passthru-survey",
    "schema_version": 1,
    "source": {"kind": "host", "root": "/"},
    "total_devices": 7,
    "warnings": [],
    "host": {
        "iommu_active": True, "iommu_group_count": 4, "iommu_units": ["dmar0"],
        "kernel_release": "6.1.0-56-amd64",
        "kernel_params": [{"name": "intel_iommu", "value": "on"}, {"name": "iommu", "value": "pt"}],
        "cpu": {"hypervisor": True}, "kvm_device": False,
        "modules": [{"name": "vfio", "state": "loaded"}, {"name": "vfio_pci", "state": "loaded"},
                    {"name": "vfio_iommu_type1", "state": "available"}],
        "findings": [reason("no-kvm")],
    },
    "devices": [
        device("0000:00:00.0", "8086:29c0", "0x060000", None, 0, "host-bridge", "not-applicable",
               ["infrastructure"]),
        device("0000:01:00.0", "1234:1111", "0x030000", "bochs-drm", 1, "endpoint", "caution",
               ["companion-function", "boot-vga", "host-driver", "bus-reset-only"],
               boot_vga=True, reset=["bus"]),
        device("0000:01:00.1", "8086:293e", "0x040300", "snd_hda_intel", 1, "endpoint", "caution",
               ["companion-function", "no-reset", "host-driver"]),
        device("0000:02:00.0", "8086:10d3", "0x020000", "e1000e", 2, "endpoint", "assignable",
               ["host-driver", "mmio"], reset=["pm", "bus"]),
        device("0000:07:00.0", "1b36:000e", "0x060400", None, 3, "bridge", "not-applicable",
               ["infrastructure"], reset=["pm", "bus"]),
        device("0000:08:01.0", "8086:100e", "0x020000", "e1000", 3, "endpoint", "blocked",
               ["group-shared", "intx-only", "host-driver", "bus-reset-only"], reset=["bus"]),
        device("0000:08:02.0", "8086:100e", "0x020000", "e1000", 3, "endpoint", "blocked",
               ["group-shared", "no-reset", "intx-only", "host-driver"]),
    ],
    "groups": [
        {"number": 0, "viable": True, "members": [member("0000:00:00.0", "host-bridge", None, False)]},
        {"number": 1, "viable": False, "members": [
            member("0000:01:00.0", "endpoint", "bochs-drm", True),
            member("0000:01:00.1", "endpoint", "snd_hda_intel", True)]},
        {"number": 2, "viable": False, "members": [member("0000:02:00.0", "endpoint", "e1000e", True)]},
        {"number": 3, "viable": False, "members": [
            member("0000:07:00.0", "bridge", None, False),
            member("0000:08:01.0", "endpoint", "e1000", True),
            member("0000:08:02.0", "endpoint", "e1000", True)]},
    ],
}  # fmt: skip

HUMAN = """passthru survey of this host

Host
  IOMMU    active (4 groups)

IOMMU group 0  1 member(s), 0 endpoint(s)  viable
  0000:00:00.0  bridge   Host bridge
IOMMU group 1  2 member(s), 2 endpoint(s)  not viable now
  0000:01:00.0  caution  GPU
  0000:01:00.1  caution  GPU 0000:01:00.0 companion Audio device
IOMMU group 2  1 member(s), 1 endpoint(s)  not viable now
  0000:02:00.0  ok       Ethernet controller
IOMMU group 3  3 member(s), 2 endpoint(s)  not viable now
  0000:07:00.0  bridge   PCI bridge
  0000:08:01.0  blocked  Ethernet controller
  0000:08:02.0  blocked  Ethernet controller

Summary: 7 devices (1 GPU), 4 IOMMU groups: 0 ready, 1 ok, 2 caution, 2 blocked, 2 bridges
"""


def by_address(survey: dict, address: str) -> dict:
    return next(d for d in survey["devices"] if d["address"] == address)


class SurveyTruthTest(unittest.TestCase):
    table = survey_truth.read_table(TABLE)
    facts = survey_truth.read_facts(FACTS)
    topo = dataclasses.replace(topology.by_name("q35-intel-iommu"), iommu_groups=4)

    def problems(self, change) -> list:
        survey = copy.deepcopy(SURVEY)
        change(survey)
        found = survey_truth.check_survey(survey, self.table, self.facts, self.topo).problems
        return found + survey_truth.check_human(HUMAN, survey, self.table).problems

    def test_a_survey_that_matches_the_kernel_passes(self):
        self.assertEqual(self.problems(lambda survey: None), [])

    def test_each_kind_of_disagreement_is_named(self):
        cases = {
            "0000:02:00.0 driver": lambda s: by_address(s, "0000:02:00.0").update(driver="igb"),
            "0000:01:00.0 has reason boot-vga": lambda s: by_address(s, "0000:01:00.0")[
                "verdict"]["reasons"].pop(1),
            "group 3 members": lambda s: s["groups"][3]["members"].pop(),
            "group 2 viable": lambda s: s["groups"][2].update(viable=True),
            "0000:08:01.0 is blocked": lambda s: by_address(s, "0000:08:01.0")["verdict"].update(
                status="caution"),
            "0000:07:00.0 role": lambda s: by_address(s, "0000:07:00.0").update(role="endpoint"),
            "0000:01:00.1 has reason no-reset": lambda s: by_address(s, "0000:01:00.1")[
                "verdict"]["reasons"].pop(1),
            "host: IOMMU active": lambda s: s["host"].update(iommu_active=False),
            "host: module vfio_pci": lambda s: s["host"]["modules"][1].update(state="available"),
            "host: kernel parameters": lambda s: s["host"]["kernel_params"].pop(),
        }  # fmt: skip
        for expected, change in cases.items():
            with self.subTest(expected):
                found = self.problems(change)
                self.assertTrue(any(p.startswith(expected) for p in found), found)

    def test_the_human_summary_must_match(self):
        human = HUMAN.replace("2 caution, 2 blocked", "3 caution, 1 blocked")
        found = survey_truth.check_human(human, SURVEY, self.table).problems
        self.assertEqual(len(found), 1, found)
        self.assertIn("summary", found[0])

    def test_unprivileged_runs_must_not_guess(self):
        nonroot = copy.deepcopy(SURVEY)
        nonroot["host"]["findings"].append(reason("capabilities-need-root"))
        for dev in nonroot["devices"]:
            dev["config"] = {"status": "needs-root", "bytes_read": 64}
            reasons = dev["verdict"]["reasons"]
            reasons[:] = [r for r in reasons if r["code"] not in survey_truth.NEEDS_CONFIG]
        self.assertEqual(survey_truth.check_unprivileged(nonroot, SURVEY).problems, [])
        by_address(nonroot, "0000:08:02.0")["verdict"]["reasons"].append(reason("intx-only"))
        by_address(nonroot, "0000:02:00.0")["config"] = {"status": "decoded", "bytes_read": 4096}
        found = survey_truth.check_unprivileged(nonroot, SURVEY).problems
        self.assertTrue(any("08:02.0 reasons that need config space" in p for p in found))
        self.assertTrue(any("02:00.0 config status" in p for p in found))

    def test_a_replay_may_differ_in_its_source_only(self):
        replayed = copy.deepcopy(SURVEY)
        replayed["source"] = {"kind": "snapshot", "file": "x.json", "created_by": "passthru"}
        self.assertEqual(survey_truth.differences(SURVEY, replayed), [])
        replayed["groups"][1]["viable"] = True
        self.assertEqual(len(survey_truth.differences(SURVEY, replayed)), 1)
        replayed["devices"].pop()
        self.assertIn(".devices", survey_truth.differences(SURVEY, replayed)[0])


if __name__ == "__main__":
    unittest.main()
