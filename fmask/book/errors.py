"""The one exception type of the book tooling."""
from __future__ import annotations

__all__ = ["BookError"]


class BookError(RuntimeError):
    """A notebook failed (the message names the notebook, the cell and where the failed copy is kept), a
    notebook is not publishable, or the book did not build."""
