# kernel-facts: the guest kernel shows what the topology file claims, device by device: the
# device is there with its vendor:device id, its driver, boot_vga, reset methods and exactly the
# IOMMU group members stated. Also returns the table of every PCI device the guest sees
# (pci-devices.tsv) to the host, where kernel-facts.host compares it with the committed copy in
# fixtures/lab/; read it when you write a new topology's facts.

iommu_kind() {
  case $(ls /sys/class/iommu 2>/dev/null | head -n1) in
    dmar*) echo intel ;;
    ivhd*) echo amd ;;
    "") echo none ;;
    *) ls /sys/class/iommu ;;
  esac
}

table=/tmp/pci-devices.tsv
pci_table "$table"
cat "$table"
send_file "$table"

expect_eq "the IOMMU the guest found" "$LAB_IOMMU" "$(iommu_kind)"
expect_eq "number of IOMMU groups" "$LAB_IOMMU_GROUPS" "$(ls /sys/kernel/iommu_groups | wc -l)"
for a in $(devices); do
  name=$(fact "$a" name)
  expect_eq "$a ($name) vendor:device" "$(fact "$a" id)" "$(pci_id "$a")"
  expect_eq "$a ($name) driver" "$(fact "$a" driver)" "$(pci_driver "$a")"
  expect_eq "$a ($name) boot_vga" "$(fact "$a" boot_vga)" "$(pci_attr "$a" boot_vga)"
  expect_eq "$a ($name) reset_method" "$(fact "$a" reset_method)" "$(pci_attr "$a" reset_method)"
  expect_eq "$a ($name) IOMMU group members" "$(fact "$a" group)" "$(group_members "$a")"
done
true
