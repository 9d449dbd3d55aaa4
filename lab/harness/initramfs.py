"""The guest's initramfs: one common archive per lab run, plus a small one per boot.

The kernel unpacks concatenated newc archives in order, so a boot's initrd is the common archive
(busybox, kernel modules, passthru, the guest scripts and scenarios) followed by an archive that
holds only that boot's topology facts and scenario list.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .assets import LAB, Kernel

_DIRS = ["bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run", "var/lib", "lab", "etc"]

# root, and nobody for scenarios that run passthru unprivileged (`as_nobody` in lab/guest/lab.sh).
_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _module_index(kernel: Kernel) -> dict[str, tuple[str, list[str]]]:
    """Module name (with `_`) -> (path relative to the modules dir, paths it depends on)."""
    index = {}
    for line in (kernel.modules / "modules.dep").read_text().splitlines():
        path, _, deps = line.partition(":")
        name = Path(path).name.removesuffix(".ko").replace("-", "_")
        index[name] = (path, deps.split())
    return index


def module_closure(kernel: Kernel, wanted: list[str]) -> list[str]:
    """The module files for `wanted` and everything they depend on (paths under the modules dir)."""
    index = _module_index(kernel)
    by_path = {path: deps for path, deps in index.values()}
    missing = [name for name in wanted if name.replace("-", "_") not in index]
    if missing:
        raise RuntimeError(f"kernel {kernel.release} has no module named {', '.join(missing)}")
    chosen: set[str] = set()
    todo = [index[name.replace("-", "_")][0] for name in wanted]
    while todo:
        path = todo.pop()
        if path not in chosen:
            chosen.add(path)
            todo.extend(by_path.get(path, []))
    return sorted(chosen)


def wanted_modules() -> list[str]:
    """The modules named in lab/guest/modules (one per line, `#` comments)."""
    text = (LAB / "guest" / "modules").read_text()
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def _cpio(tree: Path, archive: Path) -> None:
    """Packs `tree` as a newc archive owned by root (what the kernel's initramfs unpacker reads)."""
    names = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    subprocess.run(
        ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0", "-O", str(archive)],
        cwd=tree,
        input="\n".join(names) + "\n",
        text=True,
        check=True,
    )


def build_common(kernel: Kernel, busybox: Path, passthru: Path, out: Path) -> Path:
    """Builds the archive every boot shares and returns its path."""
    archive = out / "common.cpio"
    with tempfile.TemporaryDirectory(prefix="passthru-lab-") as tmp:
        tree = Path(tmp)
        for name in _DIRS:
            (tree / name).mkdir(parents=True)
        shutil.copy2(busybox, tree / "bin" / "busybox")
        (tree / "etc" / "passwd").write_text(_PASSWD)
        (tree / "etc" / "group").write_text(_GROUP)
        shutil.copy2(LAB / "guest" / "init", tree / "init")
        (tree / "init").chmod(0o755)
        shutil.copy2(LAB / "guest" / "lab.sh", tree / "lab" / "lab.sh")
        shutil.copy2(LAB / "guest" / "lab-scenario", tree / "bin" / "lab-scenario")
        (tree / "bin" / "lab-scenario").chmod(0o755)
        # kmod-like soft dependencies on top of busybox modprobe (see the script); `busybox
        # --install -s` in /init leaves an existing /sbin/modprobe alone.
        shutil.copy2(LAB / "guest" / "modprobe", tree / "sbin" / "modprobe")
        (tree / "sbin" / "modprobe").chmod(0o755)
        (tree / "lab" / "scenarios").mkdir()
        for scenario in (LAB / "scenarios").glob("*.sh"):
            shutil.copy2(scenario, tree / "lab" / "scenarios" / scenario.name)
        # A stripped copy: the dev build carries debug info the guest does not need.
        subprocess.run(["strip", "-o", str(tree / "bin" / "passthru"), str(passthru)], check=True)
        # The static binary runs here too: what it says on the host it must say in the guest.
        version = subprocess.run([passthru, "--version"], capture_output=True, text=True).stdout
        (tree / "lab" / "build.env").write_text(f"LAB_PASSTHRU_VERSION='{version.strip()}'\n")

        modules = tree / "lib" / "modules" / kernel.release
        for rel in module_closure(kernel, wanted_modules()):
            (modules / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(kernel.modules / rel, modules / rel)
        for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
            shutil.copy2(kernel.modules / meta, modules / meta)
        # modules.dep and modules.alias for just the modules we ship, for busybox modprobe.
        subprocess.run(["depmod", "-b", str(tree), kernel.release], check=True)
        _cpio(tree, archive)
    return archive


def build_boot(common: Path, files: dict[str, str], initrd: Path) -> None:
    """Writes `initrd`: the common archive, then one holding `files` (guest path -> text)."""
    with tempfile.TemporaryDirectory(prefix="passthru-lab-") as tmp:
        tree = Path(tmp)
        for guest_path, text in files.items():
            target = tree / guest_path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        overlay = tree.parent / (tree.name + ".cpio")
        try:
            _cpio(tree, overlay)
            with initrd.open("wb") as sink:
                for part in (common, overlay):
                    with part.open("rb") as source:
                        shutil.copyfileobj(source, sink)
        finally:
            overlay.unlink(missing_ok=True)
