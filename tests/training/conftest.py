"""Training tests build on the model tests' small real models and test signals."""

from __future__ import annotations

from ..model.conftest import random_clsp_mini, tone  # noqa: F401 - a fixture and a helper shared with tests/model
