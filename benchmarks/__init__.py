"""lonja against plain Pyro5, measured in the same run: `python -m benchmarks [--quick] [--out FILE.json]`."""
