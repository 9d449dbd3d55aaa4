# End to end with Debian's real tools: `passthru --root ROOT assign --persistent` in a Debian
# bookworm root made with debootstrap runs the real update-initramfs, lsinitramfs and
# update-grub (inside the root, through chroot). The stage checks that every image contains
# vfio-pci and passthru's modprobe configuration (and, when binding by address, its udev rule),
# that the real GRUB menu carries the parameters, and that `passthru undo` / `release` give
# back every file byte for byte and images without vfio-pci.
#
# The boot proof: the root's sysfs mirrors the VM lab's q35-intel-iommu guest, so the devices
# assigned are real devices of that topology, and after each change the root's own kernel and
# rebuilt initramfs boot under QEMU with the command line of the root's GRUB menu
# (`lab/lab boot-root`, docs/vm-lab.md): inside the initramfs, before the root file system is
# mounted, the devices must be on vfio-pci (by id, then by address next to an identical twin
# left on its host driver), and after `passthru undo` back on their host drivers.
#
# Needs root (chroot, debootstrap) and, the first time, Debian's mirror (the root is cached
# in lab/cache/, or $PASSTHRU_LAB_CACHE, ~800 MB). Never touches this machine's /etc or /boot:
# everything runs in a copy of the cached root (in $TMPDIR, /tmp by default). The boot proof also needs QEMU and
# Python 3.11 (as the lab does); without them, or with PASSTHRU_BOOT_PROOF=skip, it is skipped
# and says so. PASSTHRU_BOOT_E2E_KEEP=1 keeps the root afterwards, for trying things by hand.
set -euo pipefail
source tools/lib.sh

if [ "$(id -u)" != 0 ]; then
  echo "skip: needs root for chroot and debootstrap" >&2
  exit 77
fi
ensure_packages debootstrap rsync || { echo "skip: debootstrap/rsync missing and not installable" >&2; exit 77; }

cache=${PASSTHRU_LAB_CACHE:-lab/cache}/boot-e2e-bookworm-v1
if [ ! -x "$cache/usr/sbin/update-initramfs" ]; then
  if ! getent hosts deb.debian.org >/dev/null 2>&1; then
    echo "skip: no cached Debian root in $cache and deb.debian.org is unreachable" >&2
    exit 77
  fi
  echo "building the cached Debian root (once, about two minutes)"
  rm -rf "$cache.tmp"
  mkdir -p "$(dirname "$cache")"
  if ! debootstrap --variant=minbase \
      --include=linux-image-amd64,initramfs-tools,grub2-common,kmod,udev,zstd \
      bookworm "$cache.tmp" http://deb.debian.org/debian >"$cache.log" 2>&1; then
    tail -5 "$cache.log" >&2
    echo "skip: debootstrap failed (network?); see $cache.log" >&2
    exit 77
  fi
  mv "$cache.tmp" "$cache"
fi

boot_proof_skipped=
if [ "${PASSTHRU_BOOT_PROOF:-}" = skip ]; then
  boot_proof_skipped="PASSTHRU_BOOT_PROOF=skip"
elif ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  boot_proof_skipped="it needs python3 3.11 or newer"
elif ! ensure_packages qemu-system-x86; then
  boot_proof_skipped="QEMU is missing and cannot be installed here"
fi
[ -n "$boot_proof_skipped" ] && echo "boot proof: skipped: $boot_proof_skipped"

cargo build --locked --quiet -p passthru
bin=$PWD/target/debug/passthru
work=$(mktemp -d "${TMPDIR:-/tmp}/passthru-boot-e2e.XXXXXX")
if [ -n "${PASSTHRU_BOOT_E2E_KEEP:-}" ]; then
  # For trying things by hand (docs/vm-lab.md): the root stays, with the lab guest's devices.
  trap 'echo "kept the root: $work/root"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi

prepare_root() {
  local root=$work/root
  rm -rf "$root"
  rsync -a "$cache/" "$root/"
  # What grub-pc's postinst does on a real install.
  cp "$root/usr/share/grub/default/grub" "$root/etc/default/grub"
  # The chroot has no block device for its root: answer what grub-probe answers for a plain
  # ext4 root on /dev/vda1, so the real grub-mkconfig (10_linux) writes the menu.
  mv "$root/usr/sbin/grub-probe" "$root/usr/sbin/grub-probe.real"
  cat >"$root/usr/sbin/grub-probe" <<'EOF'
#!/bin/sh
target=
for arg in "$@"; do case "$arg" in --target=*) target=${arg#--target=} ;; esac; done
case "$target" in
  device) echo /dev/vda1 ;; fs) echo ext2 ;; fs_uuid) echo 0b2c5c0e-7a53-4d5a-9a55-1f7e2f6c9d11 ;;
  partmap) echo msdos ;; drive) echo "(hd0,msdos1)" ;; compatibility_hint) echo hd0,msdos1 ;;
  disk) echo /dev/vda ;; *) echo ;;
esac
EOF
  chmod 755 "$root/usr/sbin/grub-probe"
  mkdir -p "$root/boot/grub"
  chroot "$root" update-grub >/dev/null 2>&1
  # The host facts passthru reads: an Intel CPU, and this boot's command line.
  printf 'processor\t: 0\nvendor_id\t: GenuineIntel\n' >"$root/proc/cpuinfo"
  printf 'BOOT_IMAGE=/boot/vmlinuz root=/dev/vda1 ro quiet\n' >"$root/proc/cmdline"
  echo "$root"
}

# add_pci ROOT ADDRESS VENDOR DEVICE CLASS DRIVER MODULE: a PCI function in the root's sysfs
# (DRIVER - for none, MODULE - for a driver built into the kernel).
add_pci() {
  local dev=$1/sys/bus/pci/devices/$2
  mkdir -p "$dev"
  printf '0x%s\n' "$3" >"$dev/vendor"
  printf '0x%s\n' "$4" >"$dev/device"
  printf '0x%s\n' "$5" >"$dev/class"
  printf 'pci:v0000%sd0000%ssv00001458sd00002316bc%ssc%si%s\n' "${3^^}" "${4^^}" "${5:0:2}" "${5:2:2}" "${5:4:2}" >"$dev/modalias"
  [ "$6" = - ] && return
  mkdir -p "$1/sys/bus/pci/drivers/$6"
  ln -sfn "../../drivers/$6" "$dev/driver"
  [ "$7" = - ] && return
  mkdir -p "$1/sys/module/$7"
  ln -sfn "../../../../module/$7" "$1/sys/bus/pci/drivers/$6/module"
}

# The lab guest's PCI devices, as its kernel shows them (the table kernel-facts checks on every
# lab run), in the root's sysfs: passthru decides there what the boot proof's QEMU machine has.
# Subsystem ids in `modalias` are placeholders; the drivers' aliases match any.
lab_topology=q35-intel-iommu
mirror_lab_guest() {
  local address id class driver boot_vga rest module
  while IFS=$'\t' read -r address id class driver boot_vga rest; do
    [ "$address" = address ] && continue
    case $driver in
      bochs-drm) module=bochs ;; xhci_hcd) module=xhci_pci ;; pcieport | -) module=- ;; *) module=$driver ;;
    esac
    add_pci "$1" "$address" "${id%:*}" "${id#*:}" "${class#0x}" "$driver" "$module"
    [ "$boot_vga" = - ] || echo "$boot_vga" >"$1/sys/bus/pci/devices/$address/boot_vga"
  done <"fixtures/lab/$lab_topology/kernel-facts/pci-devices.tsv"
}

# boot_proof NAME ADDRESS=DRIVER...: boot the root's kernel and initramfs on the lab topology
# and check the drivers inside the initramfs (lab/lab boot-root; its console is kept in
# lab/out/boot-e2e/NAME/).
boot_proof() {
  local name=$1 t=$SECONDS
  shift
  [ -n "$boot_proof_skipped" ] && return
  local expect=()
  for item in "$@"; do expect+=(--expect "$item"); done
  lab/lab boot-root "$root" --topology "$lab_topology" --out "lab/out/boot-e2e/$name" "${expect[@]}" \
    || fail "boot proof ($name): see above and lab/out/boot-e2e/$name/console.log"
  echo "boot proof ($name) took $((SECONDS - t))s"
}

# Checksums of every file passthru may touch (not the images: they are rebuilt, so their
# listings are compared instead).
fingerprint() {
  (cd "$1" && find etc boot/grub -type f -print0 | sort -z | xargs -0 sha256sum
   find etc -type d | sort)
}

listing() {
  chroot "$1" lsinitramfs "/boot/initrd.img-$2" | sort
}

fail() { echo "FAIL: $*" >&2; exit 1; }

started=$SECONDS
root=$(prepare_root)
kver=$(ls "$root/usr/lib/modules")
echo "root ready in $((SECONDS - started))s: kernel $kver"

# --- 1: unique ids (vfio-pci.ids=) -----------------------------------------------------------
# The lab guest's devices, plus a GPU and its audio function in a slot the guest leaves free.
mirror_lab_guest "$root"
add_pci "$root" 0000:0a:00.0 1002 73ff 030000 amdgpu amdgpu
add_pci "$root" 0000:0a:00.1 1002 ab28 040300 snd_hda_intel snd_hda_intel
before=$(fingerprint "$root")
listing_before=$(listing "$root" "$kver")
grep -q 'vfio-pci.ko' <<<"$listing_before" && fail "the stock image already has vfio-pci"

journal=$work/journal
t=$SECONDS
"$bin" --color never --root "$root" --journal-dir "$journal" assign 0a:00.0 0a:00.1 0000:02:00.0 --persistent
echo "assign --persistent (ids) took $((SECONDS - t))s"
image=$(listing "$root" "$kver")
grep -q 'kernel/drivers/vfio/pci/vfio-pci.ko' <<<"$image" || fail "vfio-pci.ko is not in the rebuilt image"
grep -qx 'etc/modprobe.d/passthru-vfio.conf' <<<"$image" || fail "the modprobe configuration is not in the image"
chroot "$root" unmkinitramfs "/boot/initrd.img-$kver" /tmp/unpacked-image
inside=$(find "$root/tmp/unpacked-image" -path '*etc/modprobe.d/passthru-vfio.conf' | head -1)
cmp "$inside" "$root/etc/modprobe.d/passthru-vfio.conf" || fail "the image's modprobe configuration differs"
grep -q 'softdep amdgpu pre: vfio-pci' "$inside" || fail "no softdep for amdgpu in the image"
grep -q 'softdep e1000e pre: vfio-pci' "$inside" || fail "no softdep for e1000e in the image"
rm -rf "$root/tmp/unpacked-image"
grep -Eq '^\s+linux\s.*quiet intel_iommu=on iommu=pt vfio-pci.ids=1002:73ff,1002:ab28,8086:10d3' "$root/boot/grub/grub.cfg" \
  || fail "the real grub-mkconfig did not put the parameters on the linux line"
grep -E '^\s+linux\s.*single' "$root/boot/grub/grub.cfg" | grep -q vfio && fail "the recovery entry got the parameters"
boot_proof by-id 0000:02:00.0=vfio-pci 0000:03:00.0=nvme 0000:08:01.0=e1000 0000:08:02.0=e1000

t=$SECONDS
"$bin" --color never --root "$root" --journal-dir "$journal" undo
echo "undo took $((SECONDS - t))s"
[ "$(fingerprint "$root")" = "$before" ] || { diff <(echo "$before") <(fingerprint "$root") >&2; fail "undo did not restore every byte"; }
[ "$(listing "$root" "$kver")" = "$listing_before" ] || fail "the image after undo differs from the stock one"
boot_proof undone 0000:02:00.0=e1000e 0000:08:01.0=e1000 0000:08:02.0=e1000

# --- 2: identical GPUs (bind by address with the udev rule) -----------------------------------
# A twin of the GPU, and the first of the guest's two identical e1000 NICs.
add_pci "$root" 0000:0b:00.0 1002 73ff 030000 amdgpu amdgpu
add_pci "$root" 0000:0b:00.1 1002 ab28 040300 snd_hda_intel snd_hda_intel
t=$SECONDS
"$bin" --color never --root "$root" --journal-dir "$journal" assign 0000:0b:00.0 0000:0b:00.1 0000:08:01.0 --persistent
echo "assign --persistent (by address) took $((SECONDS - t))s"
image=$(listing "$root" "$kver")
grep -q 'kernel/drivers/vfio/pci/vfio-pci.ko' <<<"$image" || fail "vfio-pci.ko is not in the image"
grep -Eq '(^|/)lib/udev/rules.d/05-passthru-vfio.rules$' <<<"$image" || fail "the udev rule is not in the image"
grep -q 'passthru.vfio=1' "$root/boot/grub/grub.cfg" || fail "the menu lacks passthru.vfio=1"
grep -q 'vfio-pci.ids' "$root/boot/grub/grub.cfg" && fail "ids were used although they are not unique"
boot_proof by-address 0000:08:01.0=vfio-pci 0000:08:02.0=e1000 0000:02:00.0=e1000e
t=$SECONDS
"$bin" --color never --root "$root" --journal-dir "$journal" release 0000:0b:00.0 0000:0b:00.1 0000:08:01.0 --persistent
echo "release --persistent took $((SECONDS - t))s"
[ "$(fingerprint "$root")" = "$before" ] || { diff <(echo "$before") <(fingerprint "$root") >&2; fail "release did not restore every byte"; }
[ "$(listing "$root" "$kver")" = "$listing_before" ] || fail "the image after release differs from the stock one"

proof="booted 3 times in QEMU (lab/lab boot-root)"
[ -n "$boot_proof_skipped" ] && proof="boot proof skipped: $boot_proof_skipped"
echo "boot e2e: ok in $((SECONDS - started))s (real update-initramfs, lsinitramfs, unmkinitramfs, update-grub; $proof)"
