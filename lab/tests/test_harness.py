"""Tests of the lab harness that need no QEMU: the channel format, topologies, and the judge.

python3 -m unittest discover -s lab/tests
"""

import base64
import hashlib
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

LAB = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(LAB))

from harness import channel, initramfs, judge, topology  # noqa: E402
from harness.assets import Kernel  # noqa: E402
from harness.boot import BootResult  # noqa: E402


def guest_records(script: str) -> str:
    """What the guest helpers write on the channel for `script`, run by busybox sh here."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "channel"
        out.touch()
        env = {"LAB_CHANNEL": str(out), "LAB_FACTS": "/nonexistent", "LAB_SCENARIO": "demo",
               "PATH": "/usr/bin:/bin"}  # fmt: skip
        subprocess.run(["busybox", "sh", "-c", f". {LAB}/guest/lab.sh; {script}"], env=env,
                       check=False, capture_output=True)  # fmt: skip
        return out.read_text()


class ChannelTest(unittest.TestCase):
    def test_values_with_tabs_newlines_and_backslashes_survive_the_trip(self):
        value = "a\tb\\c\nd\\n"
        text = "begin\tdemo\t1.0\n" + guest_records(f"expect_eq 'odd value' x '{value}'")
        check = channel.parse(text).scenarios["demo"].checks[0]
        self.assertEqual((check.description, check.op, check.actual), ("odd value", "eq", value))

    def test_a_file_arrives_byte_for_byte_with_its_name(self):
        with tempfile.NamedTemporaryFile() as file:
            file.write(bytes(range(256)) * 3)
            file.flush()
            text = "begin\tdemo\t1.0\n" + guest_records(f"send_file {file.name} table.bin")
        blob = channel.parse(text).scenarios["demo"].blobs[0]
        self.assertEqual((blob.kind, blob.name, blob.problem), ("file", "table.bin", None))
        self.assertEqual(blob.data, bytes(range(256)) * 3)

    def test_big_files_travel_compressed_and_arrive_as_themselves(self):
        data = "".join(f"0000:{n:02x}:00.0\tdriver\n" for n in range(256)) * 10
        with tempfile.NamedTemporaryFile("w") as file:
            file.write(data)
            file.flush()
            text = "begin\tdemo\t1.0\n" + guest_records(f"send_output {file.name} big.tsv")
        self.assertIn("\toutput+gzip\tbig.tsv\t", text)
        self.assertLess(len(text), len(data) / 4)
        blob = channel.parse(text).scenarios["demo"].blobs[0]
        self.assertEqual((blob.kind, blob.name, blob.problem), ("output", "big.tsv", None))
        self.assertEqual(blob.data.decode(), data)

    def test_a_damaged_file_is_reported_not_accepted(self):
        data = b"snapshot contents"
        digest = hashlib.sha256(data).hexdigest()
        body = base64.b64encode(data[:-1]).decode()
        text = f"begin\tdemo\t1\nblob\tdemo\tfile\tx\t{len(data)}\t{digest}\n{body}\nblob-end\n"
        blob = channel.parse(text).scenarios["demo"].blobs[0]
        self.assertIn("the guest sent 17 bytes", blob.problem)

    def test_records_go_through_the_open_channel_of_init(self):
        with tempfile.NamedTemporaryFile() as file:
            file.write(b"kept open")
            file.flush()
            script = (f'exec 9>>"$LAB_CHANNEL"; LAB_CHANNEL_FD=9; expect_eq same a a; '
                      f'send_file {file.name} kept.bin; LAB_CHANNEL=/nonexistent/channel; '
                      'record end demo 0 2')  # fmt: skip
            text = "begin\tdemo\t1.0\n" + guest_records(script)
        record = channel.parse(text).scenarios["demo"]
        self.assertEqual([check.description for check in record.checks], ["same"])
        self.assertEqual((record.blobs[0].data, record.blobs[0].problem), (b"kept open", None))
        self.assertEqual(record.exit_status, 0)

    def test_a_lost_blob_end_costs_that_blob_only(self):
        data = b"scenario log"
        digest = hashlib.sha256(data).hexdigest()
        body = base64.b64encode(data).decode()
        text = (f"begin\tdemo\t1\nblob\tdemo\tlog\tdemo.log\t{len(data)}\t{digest}\n{body}\n"
                "end\tdemo\t0\t2\nbegin\tnext\t3\ncheck\tnext\td\teq\t1\t1\n"
                "end\tnext\t0\t4\nfinished\t5\n")  # fmt: skip
        boot = channel.parse(text)
        blob = boot.scenarios["demo"].blobs[0]
        self.assertEqual((blob.data, blob.problem), (data, "its blob-end never arrived"))
        self.assertEqual(boot.scenarios["demo"].exit_status, 0)
        self.assertEqual(len(boot.scenarios["next"].checks), 1)
        self.assertTrue(boot.finished)
        self.assertEqual(boot.garbage, [])

    def test_a_truncated_channel_leaves_the_scenario_unfinished(self):
        boot = channel.parse("boot\t6.1.0\t3.2\nbegin\tdemo\t4.0\ncheck\tdemo\td\teq\t1")
        self.assertFalse(boot.finished)
        self.assertIsNone(boot.scenarios["demo"].exit_status)
        self.assertEqual(boot.garbage, ["check\tdemo\td\teq\t1"])


def boot_result(text: str, scenarios: list, topo=None) -> BootResult:
    topo = topo or topology.by_name("q35-no-iommu")
    return BootResult(topo, scenarios, Path("/nonexistent"), channel.parse(text), 1.0, False, 0, "")


class JudgeTest(unittest.TestCase):
    def verdict(self, text: str) -> judge.Verdict:
        return judge.judge(boot_result(text, ["demo"]), Path("/bin/false"))[0]

    def test_the_host_recomputes_every_check(self):
        verdict = self.verdict(
            "begin\tdemo\t1\ncheck\tdemo\td\teq\tvfio-pci\tbochs-drm\nend\tdemo\t0\t2\n"
        )
        self.assertFalse(verdict.passed)
        self.assertIn("bochs-drm", verdict.problems[0])

    def test_contains_and_match(self):
        ok = "begin\tdemo\t1\ncheck\tdemo\td\tcontains\tnot available\tsurvey is not available\n"
        ok += "check\tdemo\te\tmatch\t^passthru [0-9.]+$\tpassthru 0.1.0\nend\tdemo\t0\t2\n"
        self.assertTrue(self.verdict(ok).passed)

    def test_a_scenario_without_checks_fails(self):
        self.assertIn(
            "it made no checks", self.verdict("begin\tdemo\t1\nend\tdemo\t0\t2\n").problems
        )

    def test_a_scenario_that_timed_out_in_the_guest_fails(self):
        verdict = self.verdict("begin\tdemo\t1\ncheck\tdemo\td\teq\t1\t1\nend\tdemo\t124\t91\n")
        self.assertIn("it ran past its time limit in the guest", verdict.problems)

    def test_a_guest_that_never_finished_its_plan_fails(self):
        text = "begin\tdemo\t1\ncheck\tdemo\td\teq\t1\t1\nend\tdemo\t0\t2\n"
        verdicts = judge.judge(boot_result(text, ["demo"]), Path("/bin/false"))
        self.assertEqual([v.passed for v in verdicts], [True, False])
        verdicts = judge.judge(boot_result(text + "finished\t3\n", ["demo"]), Path("/bin/false"))
        self.assertEqual([v.passed for v in verdicts], [True])

    def test_a_scenario_that_never_started_fails(self):
        self.assertFalse(self.verdict("boot\t6.1.0\t3\n").passed)


class TopologyTest(unittest.TestCase):
    def test_every_topology_loads_and_names_known_scenarios(self):
        for name in topology.all_names():
            topo = topology.by_name(name)
            for scenario in topo.scenarios:
                self.assertTrue((LAB / "scenarios" / f"{scenario}.sh").is_file(), (name, scenario))

    def test_group_labels_become_member_lists(self):
        table = topology.by_name("q35-intel-iommu").facts_table().splitlines()
        row = next(line for line in table if line.startswith("0000:08:02.0")).split("\t")
        self.assertEqual(row[-1], "0000:07:00.0,0000:08:01.0,0000:08:02.0")

    def test_bad_files_say_what_is_wrong(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "broken.toml"
            path.write_text('description = "x"\nmachine = "q35"\niommu = "arm"\n')
            with self.assertRaisesRegex(topology.TopologyError, "intel, amd or none"):
                topology.load(path)
            path.write_text('iommu = "none"\n[[device]]\naddress = "0000:00:01.0"\n')
            with self.assertRaisesRegex(topology.TopologyError, "`name` is missing"):
                topology.load(path)


class ModuleClosureTest(unittest.TestCase):
    def test_dependencies_are_followed_and_dashes_match_underscores(self):
        with tempfile.TemporaryDirectory() as tmp:
            kernel = Kernel("6.1.0-test", Path(tmp))
            kernel.modules.mkdir(parents=True)
            (kernel.modules / "modules.dep").write_text(
                "kernel/vfio/pci/vfio-pci.ko: kernel/vfio/pci/vfio-pci-core.ko kernel/vfio/vfio.ko\n"
                "kernel/vfio/pci/vfio-pci-core.ko: kernel/vfio/vfio.ko kernel/irqbypass.ko\n"
                "kernel/vfio/vfio.ko:\n"
                "kernel/irqbypass.ko:\n"
                "kernel/e1000e.ko:\n"
            )
            closure = initramfs.module_closure(kernel, ["vfio_pci"])
            self.assertEqual(len(closure), 4)
            self.assertNotIn("kernel/e1000e.ko", closure)
            with self.assertRaisesRegex(RuntimeError, "no module named nvme"):
                initramfs.module_closure(kernel, ["nvme"])


if __name__ == "__main__":
    unittest.main()
