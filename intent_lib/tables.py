"""How the reports' tables look: text columns aligned left, header and cells alike (pandas Stylers)."""

from __future__ import annotations

from collections.abc import Sequence

from pandas.io.formats.style import Styler


def left_aligned(styler: Styler, columns: Sequence[str]) -> Styler:
    """``styler`` with ``columns`` (free text: questions, names, examples) aligned left in the header and the cells;
    ``set_properties`` reaches only the cells, which leaves a right-aligned header over left-aligned text."""
    left = [{"selector": selector, "props": "text-align: left"} for selector in ("th", "td")]
    return styler.set_table_styles({column: left for column in columns}, overwrite=False)
