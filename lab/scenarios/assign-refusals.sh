# assign-refusals: what `passthru assign` refuses in the real guest, and how to get past it.
# - The boot VGA: fbcon draws the console on its framebuffer (fb0), which /proc/iomem does not
#   show in the lab (docs/vm-lab.md); assign refuses and names the console.
# - The two e1000 behind the PCIe-to-PCI bridge share one IOMMU group: naming one is refused
#   unless --with-group, which moves both and leaves the bridge alone; release gives them back.

boot_vga=$(role boot-vga)
nic1=$(role bridged-nic-1)
nic2=$(role bridged-nic-2)
bridge=$(role pci-bridge)

output=$(passthru assign "$boot_vga" 2>&1)
expect_eq "assign of the boot VGA exits 1" 1 "$?"
expect_contains "it names the console on the boot VGA" "the host's text console draws on $boot_vga" "$output"
expect_contains "and the way forward" "--force" "$output"
expect_eq "the boot VGA stays on bochs-drm" bochs-drm "$(pci_driver "$boot_vga")"
echo "$output"

output=$(passthru assign "$nic1" 2>&1)
expect_eq "assign of one NIC of the shared group exits 1" 1 "$?"
expect_contains "it names the other member" "also holds $nic2" "$output"
expect_contains "and --with-group" "add --with-group" "$output"
expect_eq "$nic1 stays on e1000" e1000 "$(pci_driver "$nic1")"
echo "$output"

passthru assign "$nic1" --with-group --dry-run
expect_eq "assign --with-group --dry-run exits 0" 0 "$?"
expect_eq "the dry run left $nic2 alone" e1000 "$(pci_driver "$nic2")"
passthru assign "$nic1" --with-group
expect_eq "assign --with-group exits 0" 0 "$?"
expect_eq "$nic1 is on vfio-pci" vfio-pci "$(pci_driver "$nic1")"
expect_eq "$nic2 is on vfio-pci" vfio-pci "$(pci_driver "$nic2")"
expect_eq "the bridge $bridge is left alone" - "$(pci_driver "$bridge")"
group=$(group_number "$nic1")
output=$(passthru verify "$nic1" "$nic2")
expect_eq "verify of the bridged group exits 0" 0 "$?"
expect_contains "both are ready" "$nic2  ready for a VM" "$output"
echo "$output"

passthru release "$nic1" "$nic2"
expect_eq "release exits 0" 0 "$?"
expect_eq "$nic1 is back on e1000" e1000 "$(pci_driver "$nic1")"
expect_eq "$nic2 is back on e1000" e1000 "$(pci_driver "$nic2")"
[ -c "/dev/vfio/$group" ] && state=present || state=absent
expect_eq "/dev/vfio/$group is gone" absent "$state"
