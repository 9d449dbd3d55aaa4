# vfio-bind-smoke: the kernel sequence that `passthru assign`/`release` will automate, done by hand
# with busybox, on the GPU-like device and its audio function (one IOMMU group):
#   bind:    driver_override <- vfio-pci, unbind from the host driver, drivers_probe
#   release: driver_override <- "" (an empty line), unbind from vfio-pci, drivers_probe
# With an IOMMU, both functions end up on vfio-pci and /dev/vfio/GROUP appears; released, the
# host drivers (bochs-drm, snd_hda_intel) come back. Without one, vfio-pci refuses to bind (and
# drivers_probe still reports success: never trust its exit status), and release restores all.

gpu=$(role gpu)
audio=$(role gpu-audio)
sysfs=/sys/bus/pci/devices

bind_to_vfio() {
  sysfs_write vfio-pci "$sysfs/$1/driver_override" &&
    { [ ! -e "$sysfs/$1/driver" ] || sysfs_write "$1" "$sysfs/$1/driver/unbind"; } &&
    sysfs_write "$1" /sys/bus/pci/drivers_probe
}
release_to_host() {
  sysfs_write "" "$sysfs/$1/driver_override" &&
    { [ ! -e "$sysfs/$1/driver" ] || sysfs_write "$1" "$sysfs/$1/driver/unbind"; } &&
    sysfs_write "$1" /sys/bus/pci/drivers_probe
}
vfio_node() {
  if [ -c "/dev/vfio/$1" ]; then echo present; else echo absent; fi
}

# The full path runs the guest's kmod-like /sbin/modprobe (soft dependencies, lab/guest/modprobe);
# a bare `modprobe` in busybox sh runs busybox's applet directly, which ignores them.
/sbin/modprobe vfio-pci
expect_eq "modprobe vfio-pci succeeds" 0 "$?"
expect_eq "/dev/vfio/vfio (the container) exists" present "$(vfio_node vfio)"

for dev in "$gpu" "$audio"; do
  bind_to_vfio "$dev"
  expect_eq "$dev: every write of the bind sequence succeeds" 0 "$?"
done
if [ "$LAB_IOMMU" = none ]; then
  for dev in "$gpu" "$audio"; do
    expect_eq "$dev: without an IOMMU vfio-pci refuses it" - "$(pci_driver "$dev")"
  done
  expect_contains "the kernel says why" "vfio-pci: probe of $gpu failed" "$(dmesg)"
else
  group=$(group_number "$gpu")
  for dev in "$gpu" "$audio"; do
    expect_eq "$dev: bound to vfio-pci" vfio-pci "$(pci_driver "$dev")"
  done
  expect_eq "both functions share IOMMU group $group" "$group" "$(group_number "$audio")"
  expect_eq "/dev/vfio/$group appeared" present "$(vfio_node "$group")"
fi

for dev in "$gpu" "$audio"; do
  release_to_host "$dev"
  expect_eq "$dev: every write of the release sequence succeeds" 0 "$?"
  expect_eq "$dev: driver_override is clear" "(null)" "$(cat "$sysfs/$dev/driver_override")"
  expect_eq "$dev: the host driver is back" "$(fact "$dev" driver)" "$(pci_driver "$dev")"
done
[ -n "$group" ] && expect_eq "/dev/vfio/$group is gone" absent "$(vfio_node "$group")"
echo "--- kernel messages ---"
dmesg | tail -n 25
