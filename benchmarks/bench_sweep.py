"""Benchmark: one tiny sweep on the local engine and on a local Ray cluster with 1 and 2 workers.

Every run starts from an empty cache, so each computes the same tasks: one
shared task per seed (parent and cue-free children) and one task per unit.
Reported, all measured in this run:

- speed-up: wall time with 1 Ray worker / wall time with 2 (ideal: 2 on two
  free cores; the shared tasks and the last, unpaired units bound it);
- per-task overhead: (Ray with 1 worker − the local engine) / number of tasks,
  also as a fraction of the local engine's mean time per task: what Ray adds
  to each task (pickling, scheduling, a worker's first import of torch and
  of the data sets).

The clusters are started before the clock starts (their start-up time is
printed separately); with ``--repeats N`` the fastest of N runs counts, as in
the other benchmarks (load from other processes only adds time). The script also checks that the three runs wrote the
same sweep.json. Run: ``python benchmarks/bench_sweep.py``.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

from cbft_core.study import cache, sweep

SMALL = dict(n_train=300, n_test=60, bn_images=32, eval_batch_size=60, n_clean=64, n_cue=64, max_batches=2,
             cbft_epochs=2)


def timed_run(grid: sweep.Grid, engine: str, workers: int | None) -> tuple[float, float, str]:
    """(cluster start-up s, sweep s, sweep.json text) of one run into a fresh cache."""
    import json

    with tempfile.TemporaryDirectory() as folder:
        os.environ[cache.ENV_VAR] = folder
        startup = 0.0
        if engine == "ray":
            import ray

            start = time.perf_counter()
            ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False, logging_level=logging.WARNING)
            startup = time.perf_counter() - start
        try:
            start = time.perf_counter()
            results, failed = sweep.execute(grid, engine, workers if engine == "ray" else None)
            seconds = time.perf_counter() - start
        finally:
            if engine == "ray":
                ray.shutdown()
        assert not failed, failed
        return startup, seconds, json.dumps(sweep.assemble(grid, results, failed), sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--proportions", type=float, nargs="+", default=[0.5, 0.8, 1.0])
    parser.add_argument("--methods", nargs="*", default=["ft"])
    parser.add_argument("--repeats", type=int, default=1, help="runs per configuration (the fastest is kept)")
    args = parser.parse_args()
    grid = sweep.make_grid("tiny", args.seeds, args.proportions, ["box"], args.methods, **SMALL)
    tasks = len(grid.units()) + len(grid.seeds)
    print(f"tiny preset (shrunk), {len(grid.units())} units + {len(grid.seeds)} shared tasks, "
          f"methods {args.methods}, {os.cpu_count()} CPUs")

    def best(engine: str, workers: int | None) -> tuple[float, float, str]:
        runs = [timed_run(grid, engine, workers) for _ in range(args.repeats)]
        return min(r[0] for r in runs), min(r[1] for r in runs), runs[-1][2]

    _, local, doc_local = best("local", None)
    up1, ray1, doc1 = best("ray", 1)
    up2, ray2, doc2 = best("ray", 2)
    assert doc_local == doc1 == doc2, "the engines disagree"
    print(f"local engine: {local:.1f} s   ray, 1 worker: {ray1:.1f} s (start-up {up1:.1f} s)   "
          f"ray, 2 workers: {ray2:.1f} s (start-up {up2:.1f} s)   same sweep.json: yes")
    overhead = (ray1 - local) / tasks
    print(f"speed-up 2 vs 1 worker: {ray1 / ray2:.2f}x   per-task overhead: {overhead:.2f} s "
          f"= {overhead / (local / tasks):.2f} x the local engine's {local / tasks:.2f} s per task")


if __name__ == "__main__":
    main()
