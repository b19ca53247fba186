"""User-facing errors.

Every error raised for bad input is a subclass of :class:`Ml4msError` and of the
built-in class a Python user would catch (``ValueError`` for bad values, ``OSError``
for files). Data errors name the file, the structure index and the field, so that a
message such as::

    data/train.xyz: structure 17: forces: expected shape (12, 3), got (12, 2)

tells the user where to look without a traceback.
"""

from __future__ import annotations

from os import PathLike


class Ml4msError(Exception):
    """Base class of every error ml4ms raises on purpose."""


class DataError(Ml4msError, ValueError):
    """A structure or its labels are missing, malformed or unphysical.

    Parameters
    ----------
    message
        What is wrong, in words.
    source
        The file, database or dataset the structure came from, if known.
    index
        The index of the structure in that source, if known.
    field
        The field at fault (``"positions"``, ``"energy"``, ``"forces"``, ``"cell"``...).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | PathLike | None = None,
        index: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.source = None if source is None else str(source)
        self.index = index
        self.field = field
        parts = []
        if self.source is not None:
            parts.append(self.source)
        if index is not None:
            parts.append(f"structure {index}")
        if field is not None:
            parts.append(field)
        parts.append(message)
        super().__init__(": ".join(parts))


class UnknownElementError(DataError):
    """A structure holds an element that a model or descriptor does not know."""


class FileFormatError(Ml4msError, OSError):
    """A file cannot be read: truncated, malformed or of an unknown format."""

    def __init__(self, message: str, *, path: str | PathLike | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(message if path is None else f"{path}: {message}")

    def __str__(self) -> str:  # OSError's own __str__ would print the errno tuple
        return self.args[0]


class ModelFileError(FileFormatError):
    """A model file is unreadable, tampered with, or from an unknown format version."""


class DatasetError(Ml4msError, OSError):
    """A public dataset cannot be found, downloaded or verified."""

    def __str__(self) -> str:
        return self.args[0]


class ConfigError(Ml4msError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


class TrainingDiverged(Ml4msError, FloatingPointError):
    """Training produced a non-finite loss or gradient; the last good checkpoint is kept.

    Attributes
    ----------
    step
        The optimiser step that failed.
    structures
        Indices, in the training set, of the structures of the failing batch.
    checkpoint
        The last good checkpoint, or None if none was written yet.
    """

    def __init__(self, message: str, *, step: int, structures: list[int], checkpoint: str | None) -> None:
        self.step = step
        self.structures = structures
        self.checkpoint = checkpoint
        super().__init__(message)
