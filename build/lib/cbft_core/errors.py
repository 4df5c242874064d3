"""Error types raised by cbft_core.

Every error a user can trigger derives from :class:`CbftError`, and most also
derive from the built-in type a caller would naturally catch (``ValueError``,
``FileNotFoundError``), so ``except ValueError`` keeps working.
"""
from __future__ import annotations


class CbftError(Exception):
    """Base class of every error cbft_core raises on purpose."""


class ConfigError(CbftError, ValueError):
    """An argument or configuration value is invalid (names the argument and the fix)."""


class DataUnavailableError(CbftError, FileNotFoundError):
    """A data set is not on disk and may not be downloaded."""


class CacheCorruptError(CbftError):
    """A cached checkpoint or results file failed its integrity check."""


class NonFiniteLossError(CbftError, FloatingPointError):
    """Training produced a NaN or infinite loss."""
