"""Judges each scenario of a boot on the host and prints the report, with evidence on failure."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .assets import LAB, REPO
from .boot import BootResult
from .channel import Check

CONSOLE_TAIL = 40


@dataclass
class Verdict:
    scenario: str
    problems: list[str] = field(default_factory=list)
    checks: int = 0
    seconds: float | None = None  # in the guest
    evidence: str = ""
    host_said: str = ""  # the first line of a passing host check

    @property
    def passed(self) -> bool:
        return not self.problems


def check_holds(check: Check) -> bool:
    if check.op == "eq":
        return check.actual == check.expected
    if check.op == "contains":
        return check.expected in check.actual
    if check.op == "match":
        try:
            return re.search(check.expected, check.actual) is not None
        except re.error:
            return False
    return False


def _describe(check: Check) -> str:
    if "\n" in check.expected + check.actual:
        diff = difflib.unified_diff(
            check.expected.splitlines(),
            check.actual.splitlines(),
            "expected",
            "actual",
            lineterm="",
        )
        return f"{check.description} ({check.op}):\n" + "\n".join(diff)
    return f"{check.description}\n  expected ({check.op}): {check.expected!r}\n  actual: {check.actual!r}"


def _host_hook(scenario: str, boot: BootResult, passthru: Path) -> tuple[bool, str] | None:
    """Runs lab/scenarios/NAME.host when it exists: whether it passed, and what it said (its
    complaint, or the first line of its output when it passed)."""
    hook = LAB / "scenarios" / f"{scenario}.host"
    if not hook.exists():
        return None
    env = dict(
        os.environ,
        LAB_TOPOLOGY=boot.topology.name,
        LAB_TOPOLOGY_FILE=str(boot.topology.path),
        LAB_FILES=str(boot.out / "files" / scenario),
        LAB_REPO=str(REPO),
        LAB_PASSTHRU=str(passthru),
    )
    result = subprocess.run([str(hook)], env=env, capture_output=True, text=True, timeout=120)
    output = (result.stdout + result.stderr).strip()
    if result.returncode == 0:
        return True, output.splitlines()[0] if output else ""
    return False, f"host check {hook.name} exited {result.returncode}:\n{output}"


def judge(boot: BootResult, passthru: Path) -> list[Verdict]:
    verdicts = []
    for name in boot.scenarios:
        verdict = Verdict(name)
        record = boot.record.scenarios.get(name)
        if record is None:
            verdict.problems.append("it never started (the guest died or timed out before it)")
            verdicts.append(verdict)
            continue
        verdict.checks, verdict.seconds = len(record.checks), record.seconds
        if record.exit_status is None:
            verdict.problems.append("it never finished (the guest died or timed out during it)")
        elif record.exit_status == 124:
            verdict.problems.append("it ran past its time limit in the guest")
        elif record.exit_status != 0:
            verdict.problems.append(f"it exited with status {record.exit_status}")
        if not record.checks:
            verdict.problems.append("it made no checks")
        verdict.problems += ["FAIL " + _describe(c) for c in record.checks if not check_holds(c)]
        verdict.problems += [f"file {b.name} {b.problem}" for b in record.blobs if b.problem]
        if record.exit_status is not None and not verdict.problems:
            hook = _host_hook(name, boot, passthru)
            if hook and not hook[0]:
                verdict.problems.append(hook[1])
            elif hook:
                verdict.host_said = hook[1]
        logs = record.blob("log")
        verdict.evidence = logs[0].data.decode(errors="replace") if logs else "(no output arrived)"
        verdicts.append(verdict)
    if not boot.record.finished and all(v.passed for v in verdicts):
        ending = Verdict("(end of boot)", evidence="(see the console)")
        ending.problems.append("the guest never reported the end of its plan (hung or died)")
        verdicts.append(ending)
    return verdicts


def _indent(text: str, prefix: str = "    | ") -> str:
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines())


def report(boot: BootResult, verdicts: list[Verdict]) -> str:
    userspace = boot.record.userspace_at
    at = f", userspace at {userspace:.1f} s guest time" if userspace is not None else ""
    lines = [f"{boot.topology.name}: boot took {boot.seconds:.1f} s{at}"]
    if boot.timed_out:
        lines.append("  the guest was stopped after the time limit (see the console below)")
    if boot.record.garbage:
        lines.append(
            f"  {len(boot.record.garbage)} unreadable channel lines, first: {boot.record.garbage[0]!r}"
        )
    for verdict in verdicts:
        status = "PASS" if verdict.passed else "FAIL"
        took = f", {verdict.seconds:.1f} s" if verdict.seconds is not None else ""
        took += f"; host: {verdict.host_said}" if verdict.host_said else ""
        lines.append(f"  {status}  {verdict.scenario} ({verdict.checks} checks{took})")
        if verdict.passed:
            continue
        lines += [_indent(problem, "      ") for problem in verdict.problems]
        lines.append("    guest output:")
        lines.append(_indent(verdict.evidence))
    if any(not v.passed for v in verdicts):
        console = boot.console.splitlines()[-CONSOLE_TAIL:]
        lines.append(f"    console, last {len(console)} lines ({boot.out / 'console.log'}):")
        lines.append(_indent("\n".join(console)))
        if boot.qemu_stderr.strip():
            lines.append("    QEMU said:")
            lines.append(_indent(boot.qemu_stderr))
    return "\n".join(lines)
