"""Benchmark: does `python -m cbft_core plan` tell the truth? Its time estimate against the cold run it predicts.

For one seed at a preset (default ``cpu``; ``-p NAME VALUE`` overrides
settings, e.g. ``-p n_train 2000 -p child_epochs 2`` for a shorter check),
in an empty temporary cache: the plan of the run, the throughput
measurement and the estimate (what ``plan`` prints), then the run itself
(:func:`cbft_core.study.pipeline.run`), timed. Prints both times, their
ratio (target: within 1.5x either way) and the machine's load average
before and after, since other processes slow the run and the measurement alike.

Run: ``python benchmarks/bench_plan.py [--preset cpu] [-p NAME VALUE ...]``.
"""
from __future__ import annotations

import argparse
import ast
import os
import tempfile
import time

from cbft_core.study import cache, pipeline, plan, presets


def _value(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=presets.PRESET_NAMES)
    parser.add_argument("--cue", default="box", choices=("box", "dominoes"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = parser.parse_args()
    overrides = {name: _value(value) for name, value in args.param}
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as folder:
        os.environ[cache.ENV_VAR] = os.path.join(folder, "cache")
        load_before = os.getloadavg()
        the_plan = plan.make(args.preset, args.cue, [args.seed], **overrides)
        rate = plan.measure_throughput(the_plan.preset, args.cue)
        estimate = plan.estimate_seconds(the_plan, rate)
        work = the_plan.work()
        print(f"preset {args.preset} {overrides or ''}, cue {args.cue}, seed {args.seed}: "
              f"{work['train']:,} trained + {work['forward']:,} forward-only images; measured "
              f"{rate.train_per_s:,.0f} training / {rate.forward_per_s:,.0f} forward images/s on {rate.device} "
              f"in {rate.seconds:.1f} s", flush=True)
        start = time.perf_counter()
        pipeline.run(the_plan.preset, [args.seed], os.path.join(folder, "out"), cue=args.cue, progress=False)
        actual = time.perf_counter() - start
        load_after = os.getloadavg()
    print(f"estimate {estimate:.0f} s, cold run {actual:.0f} s: estimate / actual = {estimate / actual:.2f} "
          f"(load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
