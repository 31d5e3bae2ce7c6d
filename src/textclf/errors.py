"""User-facing errors: one line that names the file, row, column or key, and the fix.

The CLI prints these without a traceback and exits with code 2; any other exception is a bug.
"""


class TextclfError(ValueError):
    """Base class of errors caused by the user's input rather than by textclf."""


class ConfigError(TextclfError):
    """A recipe, override or option that cannot be used; names the key and the allowed values."""


class DataError(TextclfError):
    """Input data that cannot be used; names the file/split, row or column, and the fix."""


class ModelError(TextclfError):
    """A model or checkpoint that cannot be loaded; says why and what to give instead."""
