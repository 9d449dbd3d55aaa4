# passthru-runs: the passthru binary (static, musl) runs in the guest against the real kernel.
#
# This is where survey assertions go once `passthru survey` lands (issue 2): run
#   passthru survey --json >/tmp/survey.json; send_file /tmp/survey.json
#   passthru snapshot /tmp/guest.snapshot; send_file /tmp/guest.snapshot
# check groups, drivers and verdicts here against sysfs and `fact`, and replay the snapshot on
# the host in a passthru-runs.host script (see kernel-facts.host for the shape). Until then the
# commands must refuse clearly, and these checks fail the day they start working, as a reminder.

expect_eq "passthru --version is the build under test" "$LAB_PASSTHRU_VERSION" "$(passthru --version 2>&1)"

refuses_for_now() {
  output=$(passthru "$@" 2>&1)
  expect_eq "passthru $* exits 1 (not in this build yet)" 1 "$?"
  expect_contains "passthru $* says so" "is not available in this build yet" "$output"
}
refuses_for_now survey
refuses_for_now snapshot /tmp/guest.snapshot
