"""Tests of cbft_core.kernels.checks: the one set of argument checks every kernel uses."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cbft_core.errors import ConfigError
from cbft_core.kernels.checks import check_choice, check_int, check_number


def test_check_int_accepts_ints_in_range_and_returns_them():
    assert check_int("n", 3, minimum=1) == 3
    assert check_int("n", np.int64(5), minimum=0, maximum=5) == 5
    assert type(check_int("n", np.int64(5))) is int


@pytest.mark.parametrize("value", [True, 1.0, "3", None, 0, 11])
def test_check_int_refuses_other_values_naming_the_argument(value):
    with pytest.raises(ConfigError, match=r"^n_cue must be an int in \[1, 10\], got "):
        check_int("n_cue", value, minimum=1, maximum=10)


def test_check_number_ranges():
    assert check_number("lr", 1, minimum=0.0, strict_minimum=True) == 1.0
    assert check_number("p", 0.0, minimum=0.0, maximum=1.0) == 0.0
    for bad in (0.0, -1.0, math.nan, math.inf, True, "0.1", None):
        with pytest.raises(ConfigError, match=r"^ft_lr must be a finite number > 0, got "):
            check_number("ft_lr", bad, minimum=0.0, strict_minimum=True)
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
        check_number("p", 1.5, minimum=0.0, maximum=1.0)


def test_check_choice_lists_the_choices_and_does_not_take_true_for_one():
    assert check_choice("schedule", "step", ("cosine", "step")) == "step"
    with pytest.raises(ConfigError, match=r"^schedule: unknown value 'linear'; choose one of \['cosine', 'step'\]"):
        check_choice("schedule", "linear", ("cosine", "step"))
    with pytest.raises(ConfigError):
        check_choice("k", True, (1, 2))
