"""Benchmark: how long `sftbot` takes to start, against a bare `python -c pass` in the same run.

    python -m bench.bench_startup            # 15 rounds
    python -m bench.bench_startup --runs 40
    python -m bench.bench_startup --before ../sftbot-old   # also another checkout, in the same rounds

Each round starts every command once as a fresh process, in turn (so load on a shared
machine hits them all alike): `python -c pass`, `sftbot --version`, `sftbot --help`,
`sftbot inspect <a 10-row file>` and `sftbot models --json`. It prints, per command, the
median and the best wall time, the median CPU time (user + system of that child, from
os.wait4: the steadier figure when other work shares the cores) and the median over the
bare interpreter. The target (issue #23) is `--help` and `inspect` within 150 ms on the
development machine. ``--before DIR`` adds the same commands from another checkout of the
repository (run as ``python -m bot.cli`` with that checkout first on the path), so a change
is measured against what it replaced under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 150.0


def _sftbot() -> list[str]:
    """The installed console script when there is one (what a person types), else -m bot.cli."""
    script = Path(sys.executable).with_name("sftbot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


def _sample_file(folder: Path) -> Path:
    path = folder / "ten.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"What is {i} + {i}?"}, {"role": "assistant", "content": str(2 * i)}]}
        for i in range(10)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _once(argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv`` in ``cwd``, output discarded."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):  # inspect exits 1 for data that cannot be trained on
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="rounds of every command (default 15)")
    parser.add_argument("--before", type=Path, help="another checkout whose --help and inspect to time alongside")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sample = _sample_file(Path(tmp))
        sftbot = _sftbot()
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "sftbot --version": [*sftbot, "--version"],
            "sftbot --help": [*sftbot, "--help"],
            "sftbot inspect": [*sftbot, "inspect", str(sample)],
            "sftbot models --json": [*sftbot, "models", "--json"],
        }
        env = {**os.environ, "SFTBOT_DATA_DIR": str(Path(tmp) / "data")}
        envs = {name: (env, ROOT) for name in commands}
        if args.before is not None:
            # `python -m` puts the working directory first on the path: the old checkout's code runs.
            old, where = [sys.executable, "-m", "bot.cli"], args.before.resolve()
            for name, tail in (("--help", ["--help"]), ("inspect", ["inspect", str(sample)])):
                commands[f"before: sftbot {name}"] = [*old, *tail]
                envs[f"before: sftbot {name}"] = ({**env, "PYTHONPATH": str(where)}, where)
        for name, argv_ in commands.items():  # warm the page cache and any .pyc writing once
            _once(argv_, *envs[name])
        walls: dict[str, list[float]] = {k: [] for k in commands}
        cpus: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(args.runs):
            for name, argv_ in commands.items():
                wall, cpu = _once(argv_, *envs[name])
                walls[name].append(wall * 1000)
                cpus[name].append(cpu * 1000)
    base = statistics.median(walls["python -c pass"])
    load = os.getloadavg()[0]
    print(f"sftbot start-up, {args.runs} rounds, {os.cpu_count()} CPUs, load average {load:.1f}; ms")
    print(f"{'command':<22} {'median':>7} {'best':>7} {'CPU':>7} {'over pass':>10}")
    for name in commands:
        med = statistics.median(walls[name])
        over = "" if name == "python -c pass" else f"{med - base:+10.0f}"
        print(f"{name:<22} {med:7.0f} {min(walls[name]):7.0f} {statistics.median(cpus[name]):7.0f} {over}")
    worst = max(statistics.median(walls[k]) for k in ("sftbot --help", "sftbot inspect"))
    verdict = "within" if worst <= TARGET_MS else "OVER"
    print(f"--help and inspect: {worst:.0f} ms at the median, {verdict} the {TARGET_MS:.0f} ms target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
