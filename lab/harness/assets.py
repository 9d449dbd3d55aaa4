"""What a lab boot needs: a Debian kernel, busybox, the passthru binary, and an initramfs.

Everything downloaded is kept in the cache directory (`lab/cache/`, or `$PASSTHRU_LAB_CACHE`), so
after one run with apt reachable the lab runs offline.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import LabUnavailable

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "lab"
MUSL_TARGET = "x86_64-unknown-linux-musl"


def cache_dir() -> Path:
    path = Path(os.environ.get("PASSTHRU_LAB_CACHE") or LAB / "cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class Kernel:
    """An unpacked Debian kernel package with a `modules.dep` built for it."""

    release: str  # e.g. 6.1.0-56-amd64
    root: Path  # the `dpkg -x` tree

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def vmlinux(self) -> Path:
        """The uncompressed kernel, unpacked from vmlinuz once (see `unpack_vmlinux`)."""
        return self.root / "boot" / f"vmlinux-{self.release}"

    @property
    def boot_image(self) -> Path:
        """What QEMU loads: vmlinux when it could be unpacked, else vmlinuz."""
        return self.vmlinux if self.vmlinux.is_file() else self.vmlinuz

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.release


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kwargs)


def _apt(args: list[str], cwd: Path | None = None) -> None:
    # As root, apt drops to the `_apt` user, which cannot write to a root-owned cache dir.
    _run(["apt-get", "-q", "-o", "APT::Sandbox::User=root", *args], cwd=cwd)


def _refresh_apt_lists() -> bool:
    """Runs `apt-get update` when we may (root); True when it worked."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    try:
        _apt(["update"])
        return True
    except subprocess.CalledProcessError:
        return False


def _apt_download(package: str, into: Path) -> Path:
    """Downloads one Debian package into `into` (once) and returns the .deb."""
    found = sorted(into.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise LabUnavailable(f"{package} is not cached in {into} and apt-get is missing")
    try:
        _apt(["download", package], cwd=into)
    except subprocess.CalledProcessError as error:
        # Stale lists name versions the mirror no longer has: refresh them once and retry.
        if not _refresh_apt_lists():
            raise LabUnavailable(
                f"cannot download {package} (apt-get said: {error.stderr.strip()[-300:]}); "
                f"run once with Debian's mirrors reachable, or put the .deb in {into}"
            ) from error
        try:
            _apt(["download", package], cwd=into)
        except subprocess.CalledProcessError as again:
            raise LabUnavailable(
                f"cannot download {package} even after apt-get update "
                f"(apt-get said: {again.stderr.strip()[-300:]})"
            ) from again
    found = sorted(into.glob(f"{package}_*.deb"))
    if not found:
        raise LabUnavailable(f"apt-get download {package} left no .deb in {into}")
    return found[-1]


def _current_kernel_package() -> str | None:
    """linux-image-6.1.0-NN-amd64, as `linux-image-amd64` depends on it now (None offline)."""
    pinned = os.environ.get("PASSTHRU_LAB_KERNEL")
    if pinned:
        return pinned
    for attempt in range(2):
        try:
            out = _run(["apt-cache", "depends", "linux-image-amd64"]).stdout
        except (OSError, subprocess.CalledProcessError):
            out = ""
        match = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)\b", out)
        if match:
            return match.group(1)
        # A fresh machine has no package lists yet.
        if attempt == 0 and not _refresh_apt_lists():
            break
    return None


def _version_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _cached_kernel(cache: Path) -> Kernel | None:
    """The newest kernel unpacked earlier, for when apt cannot help."""
    # kernel-RELEASE/lib/modules/RELEASE/modules.dep
    unpacked = [dep.parent for dep in cache.glob("kernel-*/lib/modules/*/modules.dep")]
    if not unpacked:
        return None
    newest = max(unpacked, key=_version_key)
    return Kernel(newest.name, newest.parents[2])


def _unpacked_kernel(package: str, cache: Path) -> Kernel:
    release = package.removeprefix("linux-image-")
    kernel = Kernel(release, cache / f"kernel-{release}")
    if not (kernel.modules / "modules.dep").is_file():
        deb = _apt_download(package, cache)
        shutil.rmtree(kernel.root, ignore_errors=True)
        _run(["dpkg", "-x", str(deb), str(kernel.root)])
        # Debian builds modules.dep in the package's postinst; we are not installing it.
        _run(["depmod", "-b", str(kernel.root), release])
    return kernel


def kernel() -> Kernel:
    """The Debian 12 kernel: fetched, unpacked and `depmod`ed once, then taken from the cache."""
    cache = cache_dir()
    package = _current_kernel_package()
    try:
        if package is None:
            raise LabUnavailable(
                "cannot tell which Debian kernel to use: apt-cache knows no linux-image-amd64 "
                "(run `apt-get update` as root)"
            )
        found = _unpacked_kernel(package, cache)
    except LabUnavailable as why:
        found = None if os.environ.get("PASSTHRU_LAB_KERNEL") else _cached_kernel(cache)
        if found is None:
            raise LabUnavailable(f"{why}, and no kernel is cached in {cache}") from why
        print(f"lab: {why}; using the cached kernel {found.release}", file=sys.stderr)
    if not found.vmlinux.is_file():
        unpack_vmlinux(found.vmlinuz, found.vmlinux)
    return found


def unpack_vmlinux(vmlinuz: Path, target: Path) -> bool:
    """Unpacks the ELF vmlinux from Debian's xz-compressed bzImage into `target`, when it can.

    QEMU boots an ELF kernel with a PVH note directly, so the guest skips decompressing itself,
    which takes seconds of emulated CPU under TCG (docs/vm-lab.md).
    """
    bzimage = vmlinuz.read_bytes()
    start = bzimage.find(b"\xfd7zXZ\x00")
    try:
        elf = lzma.LZMADecompressor().decompress(bzimage[start:]) if start >= 0 else b""
    except lzma.LZMAError:
        elf = b""
    if not elf.startswith(b"\x7fELF"):
        return False
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(elf)
    partial.rename(target)
    return True


def busybox() -> Path:
    """A static busybox from Debian's busybox-static package (the host's own one offline)."""
    cache = cache_dir()
    binary = cache / "busybox-static" / "bin" / "busybox"
    if not binary.is_file():
        try:
            deb = _apt_download("busybox-static", cache)
        except LabUnavailable:
            installed = subprocess.run(["dpkg-query", "-W", "busybox-static"], capture_output=True)
            if installed.returncode == 0 and Path("/bin/busybox").is_file():
                return Path("/bin/busybox")
            raise
        _run(["dpkg", "-x", str(deb), str(binary.parents[1])])
    return binary


def passthru_binary() -> Path:
    """The passthru binary, built static for musl so it runs in the busybox guest unchanged."""
    profile = os.environ.get("PASSTHRU_LAB_PROFILE", "dev")
    cmd = ["cargo", "build", "--locked", "-p", "passthru", "--bin", "passthru"]
    cmd += [
        "--target",
        MUSL_TARGET,
        "--profile",
        profile,
        "--message-format=json-render-diagnostics",
    ]
    result = subprocess.run(cmd, cwd=REPO, text=True, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"building passthru for {MUSL_TARGET} failed:\n{result.stderr[-3000:]}")
    for line in result.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable"):
            return Path(message["executable"])
    raise RuntimeError("cargo built passthru but named no executable")
