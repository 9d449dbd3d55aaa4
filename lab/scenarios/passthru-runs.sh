# passthru-runs: the passthru binary (static, musl) runs in the guest against the real kernel.
#
# The survey's own checks against the guest (groups, drivers, verdicts, snapshot replay) belong
# to the survey; here only: it runs and sees the devices the topology states.

expect_eq "passthru --version is the build under test" "$LAB_PASSTHRU_VERSION" "$(passthru --version 2>&1)"

output=$(passthru survey 2>&1)
expect_eq "passthru survey exits 0" 0 "$?"
expect_contains "the survey lists the GPU-like device" "$(role gpu)" "$output"
