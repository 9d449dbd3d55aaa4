"""Tests of lab/harness/rootboot.py without QEMU: reading a GRUB menu Debian's update-grub wrote
and the console of a real boot stopped at initramfs-tools' `break=mount` (both from
tools/stages/45-boot-e2e.sh, after `passthru assign 0000:08:01.0 --persistent`).

python3 -m unittest discover -s lab/tests
"""

import sys
import unittest
from pathlib import Path

LAB = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(LAB))

from harness import rootboot  # noqa: E402

DATA = LAB / "tests" / "data"
CMDLINE = (
    "BOOT_IMAGE=/boot/vmlinuz-6.1.0-50-amd64 root=/dev/vda1 ro quiet intel_iommu=on iommu=pt "
    "passthru.vfio=1 console=ttyS0 no_timer_check break=mount"
)


def probe() -> rootboot.Probe:
    text = (DATA / "initramfs-break-console.txt").read_text()
    return rootboot.parse_probe(text[text.index(rootboot.PROMPT) :])


class GrubMenuTest(unittest.TestCase):
    def test_the_first_entry_is_the_default_one_not_recovery(self):
        entry = rootboot.first_entry((DATA / "debian12-grub.cfg").read_text())
        self.assertEqual(entry.title, "Debian GNU/Linux")
        self.assertEqual(entry.kernel, "/boot/vmlinuz-6.1.0-50-amd64")
        self.assertEqual(entry.initrd, "/boot/initrd.img-6.1.0-50-amd64")
        self.assertEqual(
            entry.args, ["root=/dev/vda1", "ro", "quiet", "intel_iommu=on", "iommu=pt",
                         "passthru.vfio=1"]
        )  # fmt: skip

    def test_a_menu_without_entries_is_refused(self):
        with self.assertRaisesRegex(rootboot.RootBootError, "no top-level menuentry"):
            rootboot.first_entry("set timeout=5\nsubmenu 'x' {\n menuentry 'y' {\n }\n}\n")


class ProbeTest(unittest.TestCase):
    def test_records_are_read_through_the_shells_prompts(self):
        seen = probe()
        self.assertEqual(len(seen.drivers), 20)
        self.assertEqual(seen.drivers["0000:08:01.0"], "vfio-pci")
        self.assertEqual(seen.drivers["0000:08:02.0"], "e1000")
        self.assertIsNone(seen.drivers["0000:00:00.0"])
        self.assertEqual(seen.groups["0000:08:01.0"], "13")
        self.assertEqual(seen.overrides["0000:08:01.0"], "vfio-pci")
        self.assertIsNone(seen.overrides["0000:08:02.0"])
        self.assertIn("vfio_pci", seen.modules)
        self.assertEqual(seen.vfio_nodes, ["/dev/vfio/13", "/dev/vfio/vfio"])
        self.assertEqual(seen.uptime, 17.31)
        self.assertEqual(seen.cmdline, CMDLINE)
        self.assertFalse(seen.root_mounted())
        self.assertTrue(any("DMAR: IOMMU enabled" in line for line in seen.kernel_log))

    def test_the_judge_checks_drivers_group_nodes_the_command_line_and_the_root(self):
        seen = probe()
        expected = {"0000:08:01.0": "vfio-pci", "0000:08:02.0": "e1000"}
        self.assertTrue(all(ok for ok, _ in rootboot.judge(seen, expected, CMDLINE)))
        wrong = {"0000:08:02.0": "vfio-pci", "0000:09:00.0": "e1000", "0000:00:00.0": "x"}
        failed = [what for ok, what in rootboot.judge(seen, wrong, CMDLINE + " x") if not ok]
        self.assertEqual(len(failed), 4, failed)
        self.assertIn("0000:08:02.0 is on e1000, not vfio-pci", failed)
        seen.mounts["/root"] = "/dev/vda1"
        failed = [what for ok, what in rootboot.judge(seen, {}, CMDLINE) if not ok]
        self.assertEqual(failed, ["the root file system is not mounted yet (nothing on /root)"])


if __name__ == "__main__":
    unittest.main()
