"""One client process of the multi-client rows: call `echo` in a loop from START for SECONDS, print the count.

    python -m benchmarks.worker KIND URI_OR_NAME NS START SECONDS
"""

import sys
import time


def main() -> None:
    kind, target, ns, start, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
    if kind == "plain":
        import Pyro5.api
        proxy = Pyro5.api.Proxy(target)
    else:
        from clients import connect
        proxy = connect(target, ns=ns)
    for _ in range(20):
        proxy.echo("hello world")
    while time.time() < start:
        time.sleep(0.001)
    count = 0
    end = start + seconds
    while time.time() < end:
        proxy.echo("hello world")
        count += 1
    print(count, flush=True)


if __name__ == "__main__":
    main()
