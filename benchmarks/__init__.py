"""lonja against plain Pyro5, measured in the same run: `python -m benchmarks [--quick] [--out FILE.json]`.

One file, one job: `servers` starts and stops the server processes, `plain_server` is the plain Pyro5
server, `measure` times and summarises, `rows` holds each measurement, `loadgen` and `coldcall` are the
client processes some rows need, `report` judges the targets and writes the table and the JSON.
"""
