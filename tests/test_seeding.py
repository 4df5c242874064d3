"""Seeds come from hashing their roles: distinct roles and parts never share a stream."""
import itertools

from cbft_core.kernels.seeding import derive_seed, role_seed


def test_distinct_roles_and_parts_give_distinct_seeds():
    roles = ["parent-init", "parent-order", "child-order", "scratch-init", "scratch-order", "clean-subset",
             "cue-subset", "finetune", "midpoint"]
    grid = itertools.product(roles, range(10), range(3), [0.0, 0.17, 0.5, 0.8, 1.0], ["box", "dominoes"])
    seeds = {}
    for role, seed, branch, p, cue in grid:
        s = role_seed(role, seed=seed, branch=branch, proportion=p, cue=cue)
        assert 0 <= s < 2**63
        assert s not in seeds, f"{(role, seed, branch, p, cue)} collides with {seeds[s]}"
        seeds[s] = (role, seed, branch, p, cue)
    assert len(seeds) == 9 * 10 * 3 * 5 * 2


def test_the_arithmetic_collisions_of_the_old_scheme_are_gone():
    # 1000·(seed+1) + 17·branch + round(100·p): p = 0.17 on branch 0 equalled p = 0 on branch 1
    assert role_seed("child-order", seed=0, branch=0, proportion=0.17) != role_seed(
        "child-order", seed=0, branch=1, proportion=0.0)


def test_role_seed_is_stable_and_order_free():
    a = role_seed("child-order", seed=3, branch=1, proportion=0.8)
    assert a == role_seed("child-order", proportion=0.8, branch=1, seed=3)
    assert a == role_seed("child-order", seed=3.0, branch=1, proportion=0.80)
    assert a != role_seed("child-order", seed=3, branch=1, proportion=0.8, cue="box")
    assert derive_seed("x", 1) != derive_seed("x", "1") != derive_seed(("x", 1))
