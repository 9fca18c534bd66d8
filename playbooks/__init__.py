"""Response plans (预案): playbooks as data, tracked runs with statutory clocks, and outcome review."""
