"""The JSON block the report embeds for its charts cannot be broken out of."""

from __future__ import annotations

import json

from services.analyzer.report.pages import json_for_script


def test_embedded_json_holds_no_markup_and_reads_back_unchanged() -> None:
    data = {"segment": "</script><script>alert(1)</script>", "note": "<!-- & -->", "zh": "继续运行", "n": [1, None]}
    embedded = json_for_script(data)
    assert not {"<", ">", "&"} & set(embedded)
    assert json.loads(embedded) == data
    assert "继续运行" in embedded  # readable, not \\u-escaped beyond what is needed
