"""Imports every built-in property model so that it registers itself (see ``base``)."""

from . import tabular  # noqa: F401
from . import composition_net, crystal_graph  # noqa: F401
