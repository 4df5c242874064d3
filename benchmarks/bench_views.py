"""Views per second: whole-set tensor ops (make_view) against a per-sample
``torch.utils.data.Dataset.__getitem__`` that draws the same cue.

Both sides use the same random plan (``plan_view``), so their outputs must be
identical; the script checks that, then prints a table and the speed-up.
Target: >= 20x for every view. Large freed blocks are kept for reuse (see
``keep_freed_memory``; ``--no-reuse-memory`` shows the first-touch cost).

    python benchmarks/bench_views.py [--n 10000] [--repeats 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import ctypes

import torch
from torch.utils.data import Dataset

from cbft_core.kernels.data import CUES, VIEWS, ImageSet, cue_class_colours, cue_class_positions, load_base
from cbft_core.kernels.data import make_view, plan_view
from timing import best_time


class PerSampleView(Dataset):
    """Baseline: the cue drawn on one sample at a time, as a Dataset would."""

    def __init__(self, base: ImageSet, cue: str, view: str, seed: int, simple: ImageSet | None):
        self.base, self.cue, self.simple = base, cue, simple
        self.plan = plan_view(base, cue, view, 1.0, seed, simple)
        h, w = base.shape[1:]
        self.positions = cue_class_positions(base.num_classes, h, w).tolist()
        self.colours = cue_class_colours(base.num_classes)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        p = self.plan
        img = self.base.images[int(p.source[i])].clone()
        k = int(p.cue_class[i])
        if self.cue == "box":
            r, c = self.positions[k]
            if bool(p.has_cue[i]) and r >= 0:
                img[:, r : r + 3, c : c + 3] = self.colours[k].view(3, 1, 1)
        else:
            top = self.simple.images[int(p.simple_index[i])] if bool(p.has_cue[i]) else torch.zeros_like(img)
            img = torch.cat([top, img], dim=1)
        return img, int(self.base.labels[i])


def per_sample(base, cue, view, seed, simple) -> torch.Tensor:
    ds = PerSampleView(base, cue, view, seed, simple)
    return torch.stack([ds[i][0] for i in range(len(ds))])


def keep_freed_memory() -> None:
    """Make glibc serve large blocks from its heap and keep freed ones (M_MMAP_THRESHOLD,
    M_TRIM_THRESHOLD = 1 GiB), for both sides alike.

    By default a block over 32 MB (a 10 000-image Dominoes view is 61 MB) is a
    fresh mmap on every call, and its ~15 000 first-touch page faults cost this
    machine 2-3x the copy itself: the timing would then measure the kernel's
    page zeroing, not the implementation. No-op where glibc is not the libc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="samples per view")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats (best is kept)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--no-reuse-memory", dest="reuse_memory", action="store_false",
                    help="leave glibc's default mmap threshold (fresh pages for every output > 32 MB)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.reuse_memory:
        keep_freed_memory()
    base = load_base("shapes", n=args.n, seed=0)
    simple = load_base("digits")
    print(f"{args.n} shapes images per view; best of {args.repeats}; torch threads {torch.get_num_threads()}")
    print(f"{'cue':<9}{'view':<10}{'vectorised/s':>14}{'per-sample/s':>14}{'ratio':>8}")
    # Each side is timed in its own phase. Interleaving them would charge the
    # vectorised side for the per-sample loop's heap churn: its next 60 MB
    # output then comes from fresh pages, and page faults (not the copy) cost
    # 2-3x the whole build. Both phases see the same allocator conditions.
    combos = [(cue, view) for cue in CUES for view in VIEWS]
    t_vec = {c: best_time(lambda: make_view(base, c[0], c[1], 1.0, 0, simple), args.repeats)[0] for c in combos}
    ratios = []
    for cue, view in combos:
        t_loop, loop = best_time(lambda: per_sample(base, cue, view, 0, simple), max(1, args.repeats - 2))
        if not torch.equal(make_view(base, cue, view, 1.0, 0, simple).images, loop):
            raise SystemExit(f"mismatch between implementations for {cue}/{view}")
        ratios.append(t_loop / t_vec[cue, view])
        print(f"{cue:<9}{view:<10}{args.n / t_vec[cue, view]:>14,.0f}{args.n / t_loop:>14,.0f}{ratios[-1]:>7.1f}x")
    gmean = torch.tensor(ratios).log().mean().exp().item()
    print(f"speed-up vs per-sample __getitem__: min {min(ratios):.1f}x, geometric mean {gmean:.1f}x")


if __name__ == "__main__":
    main()
