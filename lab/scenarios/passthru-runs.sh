# passthru-runs: the real passthru binary against the real kernel. `survey` (human and --json)
# and `snapshot` run as root and as the unprivileged user nobody; the guest returns what they
# wrote together with the kernel's own table of PCI devices (pci_table, read just before), and
# passthru-runs.host checks on the host that
#  - survey --json agrees with that table, the topology file and this boot's facts: devices, ids,
#    classes, drivers, boot VGA, reset methods, IOMMU groups and their members, bridges vs
#    endpoints, group viability and the verdicts that follow from them; the human output shows
#    the same groups, devices and counts (lab/harness/survey_truth.py has the rules);
#  - without an IOMMU, survey says so and what to change;
#  - as nobody, every device's capabilities are "needs root" and nothing that needs them is
#    guessed;
#  - each snapshot, replayed on the host with `survey --from`, gives exactly the guest's own
#    survey (only `source` differs), and so does the committed fixture
#    (fixtures/lab/TOPOLOGY/passthru-runs/, refreshed by lab/lab run --update-fixtures).

expect_eq "passthru --version is the build under test" "$LAB_PASSTHRU_VERSION" "$(passthru --version 2>&1)"

# The committed fixtures must not depend on which scenarios ran before in this boot: load the
# VFIO modules (with their soft dependencies) so the host's module states are always the same.
/sbin/modprobe vfio-pci
expect_eq "modprobe vfio-pci succeeds" 0 "$?"

pci_table /tmp/pci-devices.tsv

passthru survey --json >/tmp/survey.json
expect_eq "survey --json exits 0" 0 "$?"
passthru --color never survey >/tmp/survey.txt
expect_eq "survey exits 0" 0 "$?"
description="VM lab guest: topology $LAB_TOPOLOGY (lab/topologies/$LAB_TOPOLOGY.toml), Debian kernel $(uname -r) under QEMU TCG, captured as root by the passthru-runs scenario"
passthru snapshot --description "$description" /tmp/snapshot.json
expect_eq "snapshot exits 0" 0 "$?"

# nobody needs a directory of its own to write the snapshot into.
mkdir -p /tmp/nobody && chown nobody:nogroup /tmp/nobody
as_nobody passthru survey --json >/tmp/survey-nonroot.json
expect_eq "survey --json as nobody exits 0" 0 "$?"
as_nobody passthru --color never survey >/tmp/survey-nonroot.txt
expect_eq "survey as nobody exits 0" 0 "$?"
as_nobody passthru snapshot --description "${description%as root*}as the unprivileged user nobody (uid 65534) by the passthru-runs scenario" /tmp/nobody/snapshot-nonroot.json
expect_eq "snapshot as nobody exits 0" 0 "$?"

pci_table /tmp/pci-devices-after.tsv
expect_eq "survey and snapshot changed nothing the kernel shows" \
  "$(cat /tmp/pci-devices.tsv)" "$(cat /tmp/pci-devices-after.tsv)"

# What the host check compares survey's host section with.
{
  echo "kernel_release=$(uname -r)"
  echo "cmdline=$(cat /proc/cmdline)"
  echo "iommu_units=$(ls /sys/class/iommu | tr '\n' ' ')"
  echo "loaded_modules=$(cd /sys/module && ls -d vfio vfio_pci vfio_iommu_type1 kvm 2>/dev/null | tr '\n' ' ')"
  echo "kvm_device=$([ -e /dev/kvm ] && echo present || echo absent)"
  echo "cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2)"
} >/tmp/guest-facts.txt
cat /tmp/guest-facts.txt

send_file /tmp/snapshot.json
send_file /tmp/nobody/snapshot-nonroot.json
for output in pci-devices.tsv survey.json survey.txt survey-nonroot.json survey-nonroot.txt guest-facts.txt; do
  send_output "/tmp/$output"
done
rm -r /tmp/nobody
