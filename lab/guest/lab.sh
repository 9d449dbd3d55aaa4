# Helpers for lab scenarios (busybox sh). Sourced by /init and by every scenario.
#
# A scenario reports through these helpers only; the host judges every check (it compares the
# expected and actual values itself) and prints the scenario's output as evidence on failure.
#
#   expect_eq DESC EXPECTED ACTUAL      ACTUAL must equal EXPECTED
#   expect_contains DESC NEEDLE TEXT    TEXT must contain NEEDLE
#   expect_match DESC REGEX TEXT        TEXT must match REGEX (Python `re.search` on the host)
#   send_file PATH [NAME]               return a file to the host; `--update-fixtures` commits it
#   send_output PATH [NAME]             return a file for the host check only (never a fixture)
#   fact ADDRESS FIELD                  what the topology file states about a device
#   role ROLE                           the address of the device with that role (e.g. gpu)
#   devices                             every device address the topology states facts for
#   pci_driver ADDRESS                  the bound driver's name, or - when none
#   group_members ADDRESS               the IOMMU group's members, comma-separated, or -
#   group_number ADDRESS                the IOMMU group's number
#   sysfs_write VALUE PATH              write VALUE to PATH (10 s limit), log it, return status
#   pci_attr ADDRESS NAME               a sysfs attribute of a PCI device, or - when absent
#   pci_id ADDRESS                      its vendor:device (8086:10d3)
#   pci_table FILE                      every PCI device as the kernel shows it, one line each
#   as_nobody COMMAND ARGS...           run COMMAND as the unprivileged user nobody (uid 65534)
#
# Files bigger than 16 KiB travel gzip-compressed (the serial port carries about 80 KiB/s); the
# host unpacks them, so what arrives is always the file itself.
#
# Records go to the lab channel (the second serial port), one line each, fields separated by
# tabs, values escaped (\\ \t \n). A file's contents follow its record as base64 lines.
#
# Forks cost milliseconds each under TCG, so the helpers use shell builtins where they can.

LAB_CHANNEL=${LAB_CHANNEL:-/dev/ttyS1}
LAB_FACTS=${LAB_FACTS:-/lab/topology.tsv}
[ -f /lab/build.env ] && . /lab/build.env
[ -f /lab/topology.env ] && . /lab/topology.env
TAB=$(printf '\t')
NL='
'

# record TYPE FIELD... : one line on the channel.
#
# /init keeps the channel open on fd 9 for the whole boot (LAB_CHANNEL_FD=9, inherited by every
# scenario): opening and closing the serial port for each record makes the kernel shut the port
# down and start it up again every time, and a whole record (a `blob-end`) went missing that way
# once. A lab shell has no fd 9; there each record opens the port.
record() {
  line=$1
  shift
  for field in "$@"; do
    field=${field//\\/\\\\}
    field=${field//$TAB/\\t}
    line="$line$TAB${field//$NL/\\n}"
  done
  _to_channel printf '%s\n' "$line"
}

# _to_channel COMMAND... : runs COMMAND with its output on the channel (a function, not a pipe:
# `printf` stays a builtin, no fork).
_to_channel() {
  if [ "$LAB_CHANNEL_FD" = 9 ]; then
    "$@" >&9
  else
    "$@" >>"$LAB_CHANNEL"
  fi
}

_check() {
  op=$1 desc=$2 expected=$3 actual=$4
  record check "$LAB_SCENARIO" "$desc" "$op" "$expected" "$actual"
  case $op in
    eq) [ "$actual" = "$expected" ] ;;
    contains) case $actual in *"$expected"*) true ;; *) false ;; esac ;;
    match) printf '%s' "$actual" | grep -Eq -- "$expected" ;;
  esac
  status=$?
  if [ $status -eq 0 ]; then
    echo "ok    $desc"
  else
    printf 'FAIL  %s\n      expected (%s): %s\n      actual: %s\n' "$desc" "$op" "$expected" "$actual"
  fi
  return $status
}
expect_eq() { _check eq "$@"; }
expect_contains() { _check contains "$@"; }
expect_match() { _check match "$@"; }

# _send_blob KIND PATH NAME : a file with its size and sha256, then its base64 lines. Big files
# are compressed for the trip (KIND+gzip; the size and checksum are those of what travels).
_send_blob() {
  kind=$1 path=$2
  if [ "$(wc -c <"$path")" -gt 16384 ]; then
    gzip -c "$path" >/tmp/.lab-blob.gz && kind=$kind+gzip path=/tmp/.lab-blob.gz
  fi
  size=$(wc -c <"$path")
  sum=$(sha256sum "$path")
  record blob "$LAB_SCENARIO" "$kind" "$3" "$size" "${sum%% *}"
  _to_channel base64 -w 76 "$path"
  record blob-end
  rm -f /tmp/.lab-blob.gz
}
_send_returned() {
  [ -f "$2" ] || { echo "$1: no file $2"; return 1; }
  _send_blob "$3" "$2" "${4:-${2##*/}}"
  echo "sent  $2 to the host as ${4:-${2##*/}}"
}
send_file() { _send_returned send_file "$1" file "$2"; }
send_output() { _send_returned send_output "$1" output "$2"; }

# The topology's facts, read once into variables FACT_<address>_<column>.
LAB_DEVICES=
if [ -f "$LAB_FACTS" ]; then
  # shellcheck disable=SC2034 # the columns are read through eval below
  { read -r _header
    while IFS=$TAB read -r address name role id driver boot_vga reset_method group; do
      key=${address//[:.]/_}
      LAB_DEVICES="$LAB_DEVICES $address"
      for column in name role id driver boot_vga reset_method group; do
        eval "FACT_${key}_$column=\$$column"
      done
    done
  } <"$LAB_FACTS"
fi
fact() {
  key=${1//[:.]/_}
  eval "printf '%s\n' \"\${FACT_${key}_$2-}\""
}
devices() { for address in $LAB_DEVICES; do echo "$address"; done; }
role() {
  for address in $LAB_DEVICES; do
    key=${address//[:.]/_}
    eval "[ \"\${FACT_${key}_role}\" = \"\$1\" ]" && echo "$address"
  done
}

pci_driver() {
  driver=-
  while IFS='=' read -r key value; do
    [ "$key" = DRIVER ] && driver=$value
  done <"/sys/bus/pci/devices/$1/uevent"
  echo "$driver"
}
group_members() {
  set -- "/sys/bus/pci/devices/$1/iommu_group/devices/"*
  [ -e "$1" ] || { echo -; return; }
  members=${1##*/}
  shift
  for member in "$@"; do members="$members,${member##*/}"; done
  echo "$members"
}
group_number() {
  group=$(readlink "/sys/bus/pci/devices/$1/iommu_group")
  echo "${group##*/}"
}

sysfs_write() {
  echo "write $2 <- '$1'"
  timeout 10 sh -c 'printf "%s\n" "$1" >"$2"' _ "$1" "$2" || {
    echo "      (the write failed with status $?)"
    return 1
  }
}

# pci_table FILE: address, vendor:device, class, driver, boot_vga, reset_method, IOMMU group and
# its members of every PCI device, read from sysfs with shell builtins; "-" when absent.
pci_attr() {
  value=-
  [ -r "/sys/bus/pci/devices/$1/$2" ] && read -r value <"/sys/bus/pci/devices/$1/$2"
  echo "$value"
}
pci_id() {
  vendor=$(pci_attr "$1" vendor)
  device=$(pci_attr "$1" device)
  echo "${vendor#0x}:${device#0x}"
}
pci_table() {
  printf 'address\tid\tclass\tdriver\tboot_vga\treset_method\tiommu_group\tgroup_members\n' >"$1"
  for dev in /sys/bus/pci/devices/*; do
    a=${dev##*/}
    group=$([ -e "$dev/iommu_group" ] && group_number "$a" || echo -)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$a" "$(pci_id "$a")" "$(pci_attr "$a" class)" \
      "$(pci_driver "$a")" "$(pci_attr "$a" boot_vga)" "$(pci_attr "$a" reset_method)" "$group" \
      "$(group_members "$a")" >>"$1"
  done
}

# as_nobody COMMAND ARGS...: the initramfs has /etc/passwd with nobody (uid and gid 65534).
as_nobody() {
  command=$(command -v "$1") || { echo "as_nobody: no command $1"; return 127; }
  shift
  start-stop-daemon -S -c nobody:nogroup -x "$command" -- "$@"
}
