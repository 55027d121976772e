"""Exceptions the engine raises. Each message says what was wrong and what to do."""


class DreamError(Exception):
    """Base class of every error the engine raises on purpose."""


class UnknownModelError(DreamError, ValueError):
    """An architecture name that the zoo does not know."""


class UnknownLayerError(DreamError, ValueError):
    """A layer name that the chosen model does not have."""


class WeightsNotFoundError(DreamError, FileNotFoundError):
    """Pretrained weights are neither on disk nor downloadable."""


class WeightsMismatchError(DreamError, ValueError):
    """A checkpoint whose feature layers do not fit the chosen architecture."""


class UnsafeCheckpointError(DreamError, ValueError):
    """A checkpoint that cannot be read without running code from it."""


class DreamCancelled(DreamError):
    """The caller's stop request ended a dream early."""


class Terminated(BaseException):
    """SIGTERM, raised where the program is (the command line's handler), so every half-written file is cleaned
    up on the way out."""
