# assign-crash: passthru is killed (SIGKILL) half-way through an assign, after the GPU left its
# driver and before anything was bound to vfio-pci; `passthru undo` in a new process finishes
# the interrupted operation from the journal and gives both functions back.
# PASSTHRU_TEST_PAUSE_AFTER_STEP is a test-only hook (crates/passthru/src/commands/progress.rs).

gpu=$(role gpu)
audio=$(role gpu-audio)
sysfs=/sys/bus/pci/devices

# Step 5 of the plan is "Unbind the audio function" (1 modprobe, 2 overrides, 2 unbinds).
PASSTHRU_TEST_PAUSE_AFTER_STEP=5 PASSTHRU_TEST_PAUSE_SECONDS=120 \
  passthru assign "$gpu" >/tmp/crash-assign.txt 2>/tmp/crash-assign.err &
pid=$!
waited=0
until grep -q "paused after step 5" /tmp/crash-assign.err 2>/dev/null || [ $waited -ge 300 ]; do
  sleep 0.1
  waited=$((waited + 1))
done
expect_contains "passthru paused after step 5" "paused after step 5" "$(cat /tmp/crash-assign.err)"
kill -9 "$pid"
wait "$pid" 2>/dev/null
expect_eq "$gpu was left without a driver by the killed assign" - "$(pci_driver "$gpu")"
expect_eq "$audio too" - "$(pci_driver "$audio")"
cat /tmp/crash-assign.txt

output=$(passthru journal)
expect_contains "the journal shows the interrupted assign" "interrupted (run \`passthru undo\`)" "$output"
echo "$output"
passthru undo --dry-run
passthru undo
expect_eq "undo exits 0" 0 "$?"
expect_eq "$gpu is back on bochs-drm" bochs-drm "$(pci_driver "$gpu")"
expect_eq "$audio is back on snd_hda_intel" snd_hda_intel "$(pci_driver "$audio")"
for dev in "$gpu" "$audio"; do
  expect_eq "$dev: driver_override is clear" "(null)" "$(cat "$sysfs/$dev/driver_override")"
done
