# assign-release: `passthru assign` gives the GPU-like device and its audio function (one IOMMU
# group) to vfio-pci through the real kernel, `passthru verify` opens them the way QEMU does
# (container, group, device, regions, interrupts, reset), and `passthru release` gives them back
# to bochs-drm and snd_hda_intel. Before the assign, verify says precisely why they are not ready.
# The verify reports go back to the host as fixtures for the unit tests
# (crates/passthru-linux/tests/data/vfio/). Without an IOMMU, assign refuses with the reason.

gpu=$(role gpu)
audio=$(role gpu-audio)
sysfs=/sys/bus/pci/devices
vfio_node() {
  if [ -c "/dev/vfio/$1" ]; then echo present; else echo absent; fi
}

without_iommu() {
  output=$(passthru assign "$gpu" 2>&1)
  expect_eq "assign without an IOMMU exits 1" 1 "$?"
  echo "$output"
  expect_contains "it says why" "no IOMMU is active, so no device can be isolated for a VM" "$output"
  expect_contains "and what to do" "intel_iommu=on" "$output"
  json=$(passthru --json assign "$gpu")
  expect_contains "the JSON refusal has the no-iommu code" '"code": "no-iommu"' "$json"
  output=$(passthru verify "$gpu")
  expect_eq "verify without an IOMMU exits 1" 1 "$?"
  expect_contains "verify says there is no IOMMU" "problem: no IOMMU is active on this host" "$output"
  expect_eq "$gpu is still on its driver" "$(fact "$gpu" driver)" "$(pci_driver "$gpu")"
  echo "$output"
}

with_iommu() {
# Start without the vfio modules, so that assign loads them itself (an earlier scenario may
# have loaded them). vfio_iommu_type1 holds vfio; `modprobe -r` removes the unused rest.
rmmod vfio_iommu_type1 2>/dev/null
modprobe -r vfio-pci
[ -e /sys/module/vfio_pci ] && loaded=yes || loaded=no
expect_eq "vfio-pci is not loaded before assign" no "$loaded"

# Before: not ready, and exactly why.
passthru --json verify "$gpu" >/tmp/verify-before.json
expect_eq "verify before assign exits 1" 1 "$?"
before=$(cat /tmp/verify-before.json)
expect_contains "not ready: still on its host driver" '"code": "not-bound-to-vfio"' "$before"
expect_contains "not ready: its audio function keeps the group from being viable" '"code": "group-not-viable"' "$before"
passthru verify "$gpu"

passthru assign "$gpu" --dry-run >/tmp/dry-run.txt
expect_eq "assign --dry-run exits 0" 0 "$?"
expect_contains "the dry run shows the exact writes" "echo vfio-pci > /sys/bus/pci/devices/$gpu/driver_override" "$(cat /tmp/dry-run.txt)"
expect_eq "the dry run changed nothing" "$(fact "$gpu" driver)" "$(pci_driver "$gpu")"

passthru assign "$gpu" >/tmp/assign.txt 2>&1
expect_eq "assign exits 0" 0 "$?"
cat /tmp/assign.txt
group=$(group_number "$gpu")
expect_eq "$gpu is on vfio-pci" vfio-pci "$(pci_driver "$gpu")"
expect_eq "its audio function $audio moved too" vfio-pci "$(pci_driver "$audio")"
expect_eq "/dev/vfio/$group exists" present "$(vfio_node "$group")"
expect_contains "assign said what it did" "Assigned (operation" "$(cat /tmp/assign.txt)"
expect_contains "assign loaded vfio-pci itself" "Load the vfio-pci module ... ok" "$(cat /tmp/assign.txt)"
[ -e /sys/module/vfio_iommu_type1 ] && loaded=yes || loaded=no
expect_eq "vfio_iommu_type1 came with it (soft dependency)" yes "$loaded"

output=$(passthru assign "$gpu" 2>&1)
expect_eq "assigning again exits 0" 0 "$?"
expect_contains "and says there is nothing to do" "Nothing to do" "$output"

passthru --json verify "$gpu" >/tmp/verify-gpu.json
expect_eq "verify $gpu exits 0" 0 "$?"
report=$(cat /tmp/verify-gpu.json)
expect_contains "$gpu is ready for a VM" '"ready": true' "$report"
expect_contains "$gpu was reset through VFIO, by a bus reset as QEMU would (it has no reset of its own)" '"result": "hot-reset"' "$report"
passthru --json verify "$audio" >/tmp/verify-audio.json
expect_eq "verify $audio exits 0" 0 "$?"
expect_contains "$audio is ready for a VM" '"ready": true' "$(cat /tmp/verify-audio.json)"
passthru verify "$gpu" "$audio"
send_file /tmp/verify-gpu.json "verify-gpu.json"
send_file /tmp/verify-audio.json "verify-audio.json"

passthru release "$gpu" >/tmp/release.txt 2>&1
expect_eq "release exits 0" 0 "$?"
cat /tmp/release.txt
expect_eq "bochs-drm has $gpu back" bochs-drm "$(pci_driver "$gpu")"
expect_eq "snd_hda_intel has $audio back" snd_hda_intel "$(pci_driver "$audio")"
for dev in "$gpu" "$audio"; do
  expect_eq "$dev: driver_override is clear" "(null)" "$(cat "$sysfs/$dev/driver_override")"
done
expect_eq "/dev/vfio/$group is gone" absent "$(vfio_node "$group")"
expect_contains "release named the recorded drivers" "recorded by" "$(cat /tmp/release.txt)"
output=$(passthru release "$gpu" 2>&1)
expect_eq "releasing again exits 0" 0 "$?"
expect_contains "and says there is nothing to do" "Nothing to do" "$output"
passthru journal
}

if [ "$LAB_IOMMU" = none ]; then without_iommu; else with_iommu; fi
