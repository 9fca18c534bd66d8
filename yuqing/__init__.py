"""yuqing entry points: the CLI and the composition root that wires packages together."""
