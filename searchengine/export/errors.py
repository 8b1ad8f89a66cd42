"""The one error an export raises: what went wrong and what to do, for the CLI and the API alike."""


class ExportError(RuntimeError):
    """An export cannot be written (its audio cannot be read, its output is in the way)."""
