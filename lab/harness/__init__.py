"""The passthru VM lab harness: see docs/vm-lab.md."""
