import re

import pandas as pd

from intent_lib.tables import left_aligned


def test_text_columns_are_left_aligned_in_the_header_and_the_cells() -> None:
    frame = pd.DataFrame({"rank": [1], "question": ["Peut-on prendre du doliprane ?"], "quality": [0.1]})
    html = left_aligned(frame.style.hide(axis="index"), ["question"]).to_html()
    assert set(re.findall(r"(t[hd])\.col(\d) \{\s*text-align: left;", html)) == {("th", "1"), ("td", "1")}
