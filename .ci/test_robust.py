"""Run the learned-quality tests over seed offsets and thread counts; print worst margins.

``make test-robust`` calls this. Every test marked ``quality`` runs once per
(``FEDLAB_TEST_SEED``, ``FEDLAB_TEST_THREADS``) pair: seed offsets 0-4, one thread and
the machine's default. Each check a test makes through the ``margin`` fixture is
recorded; the table at the end shows, per check, the smallest amount by which a value
cleared its bound and where. Exit status 1 if any run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seed offsets 0..N-1 (5)")
    parser.add_argument("--threads", type=int, nargs="+",
                        default=sorted({1, torch.get_num_threads()}),
                        help="torch thread counts (1 and the default)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    args = parser.parse_args(argv)
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "margins.jsonl"
        for threads in args.threads:
            for seed in range(args.seeds):
                env = {**os.environ, "FEDLAB_TEST_SEED": str(seed),
                       "FEDLAB_TEST_THREADS": str(threads), "FEDLAB_TEST_MARGINS": str(log)}
                cmd = [sys.executable, "-m", "pytest", "tests", "-m", "quality", "-q",
                       "-p", "no:cacheprovider", *args.pytest_args]
                print(f"== seed offset {seed}, {threads} thread(s): {' '.join(cmd[2:])}",
                      flush=True)
                if subprocess.run(cmd, cwd=REPO, env=env).returncode != 0:
                    failed.append((seed, threads))
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if rows:
        frame = pd.DataFrame(rows)
        frame["test"] = frame["test"].str.replace("tests/", "", regex=False)
        worst = frame.loc[frame.groupby(["test", "check"])["slack"].idxmin()]
        worst = worst.assign(runs=frame.groupby(["test", "check"]).size().to_numpy())
        with pd.option_context("display.max_rows", None, "display.width", 200,
                               "display.max_colwidth", 70):
            print("\nWorst margin of each check (slack = how far the value cleared its bound):")
            print(worst[["test", "check", "value", "bound", "slack", "seed_offset", "threads",
                         "runs"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if failed:
        print(f"\nFAILED for (seed offset, threads): {failed}")
        return 1
    print(f"\nall quality tests passed for {args.seeds} seed offsets x threads {args.threads}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
