# kernel-facts: the guest kernel shows what the topology file claims, device by device: the
# device is there with its vendor:device id, its driver, boot_vga, reset methods and exactly the
# IOMMU group members stated. Also returns the table of every PCI device the guest sees
# (pci-devices.tsv) to the host, where kernel-facts.host compares it with the committed copy in
# fixtures/lab/; read it when you write a new topology's facts.

attr() {
  value=-
  [ -r "/sys/bus/pci/devices/$1/$2" ] && read -r value <"/sys/bus/pci/devices/$1/$2"
  echo "$value"
}
pci_id() {
  vendor=$(attr "$1" vendor)
  device=$(attr "$1" device)
  echo "${vendor#0x}:${device#0x}"
}
iommu_kind() {
  case $(ls /sys/class/iommu 2>/dev/null | head -n1) in
    dmar*) echo intel ;;
    ivhd*) echo amd ;;
    "") echo none ;;
    *) ls /sys/class/iommu ;;
  esac
}

table=/tmp/pci-devices.tsv
printf 'address\tid\tclass\tdriver\tboot_vga\treset_method\tiommu_group\tgroup_members\n' >"$table"
for dev in /sys/bus/pci/devices/*; do
  a=${dev##*/}
  group=$([ -e "$dev/iommu_group" ] && group_number "$a" || echo -)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$a" "$(pci_id "$a")" "$(attr "$a" class)" \
    "$(pci_driver "$a")" "$(attr "$a" boot_vga)" "$(attr "$a" reset_method)" "$group" \
    "$(group_members "$a")" >>"$table"
done
cat "$table"
send_file "$table"

expect_eq "the IOMMU the guest found" "$LAB_IOMMU" "$(iommu_kind)"
expect_eq "number of IOMMU groups" "$LAB_IOMMU_GROUPS" "$(ls /sys/kernel/iommu_groups | wc -l)"
for a in $(devices); do
  name=$(fact "$a" name)
  expect_eq "$a ($name) vendor:device" "$(fact "$a" id)" "$(pci_id "$a")"
  expect_eq "$a ($name) driver" "$(fact "$a" driver)" "$(pci_driver "$a")"
  expect_eq "$a ($name) boot_vga" "$(fact "$a" boot_vga)" "$(attr "$a" boot_vga)"
  expect_eq "$a ($name) reset_method" "$(fact "$a" reset_method)" "$(attr "$a" reset_method)"
  expect_eq "$a ($name) IOMMU group members" "$(fact "$a" group)" "$(group_members "$a")"
done
true
