"""Seeds derived by hashing what they are for, so independent random streams never collide.

Every random stream of the study (a model's initialisation, a data order, a
subset, a view's random draws) gets its seed from :func:`role_seed` of its role
and of everything that distinguishes it (replicate seed, branch, cue
proportion, …), never from arithmetic on integers, where ``1000·(s + 1) + b``
for one role can equal another role's seed.
"""
from __future__ import annotations

import hashlib

import torch

__all__ = ["derive_seed", "role_seed", "generator"]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that depends on every part, in order (e.g. ``("shapes", "train", 0)``)."""
    text = "/".join(repr(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def role_seed(role: str, **parts: object) -> int:
    """The seed of the random stream ``role`` for the named ``parts`` (their order does not matter).

    ``role_seed("child-order", seed=0, branch=1, proportion=0.8)``; numbers are
    normalised so that ``0.8`` and ``0.80`` (or ``1`` and ``1.0``) name the same stream.
    """
    def canon(v: object) -> object:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return v
        return float(v)
    return derive_seed(role, *(f"{k}={canon(v)!r}" for k, v in sorted(parts.items())))


def generator(*parts: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed` of ``parts``."""
    return torch.Generator().manual_seed(derive_seed(*parts))
