"""Reads what the guest wrote on the lab channel (its second serial port) into results.

The guest's helpers (lab/guest/lab.sh) write one record per line: a type and tab-separated,
escaped fields. A `blob` record is followed by base64 lines up to `blob-end`; its kind is `file`
(returned, may become a fixture), `output` (returned for the host check only) or `log` (the
scenario's output), with `+gzip` when the guest compressed it for the trip.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
from dataclasses import dataclass, field

_UNESCAPE = {"\\": "\\", "t": "\t", "n": "\n"}


def _unescape(text: str) -> str:
    out, chars = [], iter(text)
    for char in chars:
        out.append(_UNESCAPE.get(next(chars, ""), "\\") if char == "\\" else char)
    return "".join(out)


@dataclass
class Check:
    description: str
    op: str
    expected: str
    actual: str


@dataclass
class Blob:
    kind: str  # "file" (may become a fixture), "output" (for the host check) or "log"
    name: str
    data: bytes
    problem: str | None = None  # set when the size or checksum does not match


@dataclass
class ScenarioRecord:
    name: str
    checks: list[Check] = field(default_factory=list)
    blobs: list[Blob] = field(default_factory=list)
    exit_status: int | None = None  # None: the scenario never finished
    started: float | None = None  # guest uptime, seconds
    ended: float | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.started is None or self.ended is None else self.ended - self.started

    def blob(self, kind: str) -> list[Blob]:
        return [b for b in self.blobs if b.kind == kind]


@dataclass
class BootRecord:
    kernel_release: str | None = None
    userspace_at: float | None = None  # guest uptime when /init started the scenarios
    finished_at: float | None = None
    scenarios: dict[str, ScenarioRecord] = field(default_factory=dict)
    finished: bool = False
    garbage: list[str] = field(default_factory=list)


def _seconds(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _decode_blob(header: list[str], lines: list[str]) -> Blob:
    kind, name, size, digest = header
    try:
        data = base64.b64decode("".join(lines), validate=True)
    except binascii.Error as error:
        return Blob(kind, name, b"", f"its base64 is damaged: {error}")
    if str(len(data)) != size or hashlib.sha256(data).hexdigest() != digest:
        problem = f"arrived with {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}; "
        problem += f"the guest sent {size} bytes, sha256 {digest}"
        return Blob(kind.removesuffix("+gzip"), name, data, problem)
    if kind.endswith("+gzip"):
        kind = kind.removesuffix("+gzip")
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            return Blob(kind, name, b"", f"arrived intact but does not decompress: {error}")
    return Blob(kind, name, data)


def parse(text: str) -> BootRecord:
    boot = BootRecord()
    lines = text.replace("\r", "").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        kind, *fields = [_unescape(f) for f in line.split("\t")]
        scenario = boot.scenarios.get(fields[0]) if fields else None
        if kind == "boot" and len(fields) == 2:
            boot.kernel_release, boot.userspace_at = fields[0], _seconds(fields[1])
        elif kind == "begin" and len(fields) == 2:
            boot.scenarios[fields[0]] = ScenarioRecord(fields[0], started=_seconds(fields[1]))
        elif kind == "check" and scenario and len(fields) == 5:
            scenario.checks.append(Check(*fields[1:]))
        elif kind == "blob" and scenario and len(fields) == 5:
            body, ended = [], False
            # Base64 has no tabs and every record has one: a record inside a blob means its
            # `blob-end` was lost. Keep the record, and say what happened to the blob.
            while index < len(lines) and "\t" not in lines[index]:
                index += 1
                if lines[index - 1] == "blob-end":
                    ended = True
                    break
                body.append(lines[index - 1])
            blob = _decode_blob(fields[1:], body)
            if not ended and blob.problem is None:
                blob.problem = "its blob-end never arrived"
            elif not ended:
                blob.problem += " (and its blob-end never arrived)"
            scenario.blobs.append(blob)
        elif kind == "end" and scenario and len(fields) == 3 and fields[1].isdigit():
            scenario.exit_status, scenario.ended = int(fields[1]), _seconds(fields[2])
        elif kind == "finished" and len(fields) == 1:
            boot.finished, boot.finished_at = True, _seconds(fields[0])
        elif line.strip():
            boot.garbage.append(line)
    return boot
