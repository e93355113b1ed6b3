"""Wall time of `tensafe-ops --version` and `--help`, against the interpreter's own start-up
and against importing the whole service (what every CLI call paid when cli.py imported it
at module level).

Each round runs every command once, in turn, as a fresh process; medians over the rounds.

    python -m bench.cli_startup [--rounds 15]
"""

import argparse
import statistics
import subprocess
import sys
import time

from bench.common import BIN

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "tensafe-ops --version": [str(BIN), "--version"],
    "tensafe-ops --help": [str(BIN), "--help"],
    "import the whole service": [sys.executable, "-c", "import tensafe_ops.app, tensafe_ops.cli"],
}


def run_once(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the page cache and .pyc files
        run_once(command)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            times[name].append(run_once(command))
    medians = {name: statistics.median(values) for name, values in times.items()}
    floor, whole = medians["python -c pass"], medians["import the whole service"]
    print(f"{'command':<26} {'median':>9} {'min':>9}  vs whole service")
    for name, values in times.items():
        print(
            f"{name:<26} {medians[name] * 1000:7.0f}ms {min(values) * 1000:7.0f}ms"
            f"  {whole / medians[name]:5.1f}x faster"
        )
    for name in ("tensafe-ops --version", "tensafe-ops --help"):
        print(f"{name}: {(medians[name] - floor) * 1000:.0f} ms above the interpreter's start-up")


if __name__ == "__main__":
    main()
