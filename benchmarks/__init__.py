"""lonja against plain Pyro5, Pyro5 + msgpack and RPyC, as issue 9 asks: `python -m benchmarks [--quick]`.

One file, one job:
- `catalog`: every row, its unit, warm/cold, which systems, issue 9's goal, and the counts (full, quick);
- `callers`: how a client of each system connects and calls (the only file that knows the client APIs);
- `peers`: the peers' servers (plain Pyro5 echo server, RPyC echo server and registry);
- `systems`: starting one system's servers (name server or registry, echo server);
- `servers`: starting, pinning and stopping processes by pid, and a clean environment;
- `rounds`: the round loop (systems take turns, fresh servers and client processes every round);
- `child`: the client process of one system and round (warm or cold rows, unpinned and pinned);
- `rows` and `cold`: the warm and the cold measurements; `loadgen`: N client processes at once;
- `measure`: timing and statistics; `report`: summaries, ratios, goals, the table, the JSON;
- `resultsmd`: RESULTS.md's tables from one or two runs' JSON;
- `syscalls`: `python -m benchmarks.syscalls`, system calls per call under strace or perf (lonja and plain
  Pyro5);
- `placement`: `python -m benchmarks.placement`, the small call with client and server on one CPU, on two
  and unpinned, with CPU time and context switches per call on each side;
- `stress` and `stress_kit`: the adversarial suite (`python -m benchmarks.stress`).
"""
