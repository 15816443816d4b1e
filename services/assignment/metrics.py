"""The assignment service's own Prometheus metrics, in the default registry (served by its ``GET /metrics``).

- ``splitstream_assign_answers_total{source}``   ``/v1/assign`` answers by where they came from: ``remembered``
                                                 (given again as they were, see ``RememberedAnswers``) or ``computed``
                                                 (errors not counted); the remembered share tells whether the answer
                                                 cache is sized for the traffic.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter

ASSIGN_ANSWERS: Final = Counter(
    "splitstream_assign_answers", "/v1/assign answers by source: remembered or computed.", ["source"]
)
REMEMBERED_ANSWERS: Final = ASSIGN_ANSWERS.labels("remembered")
COMPUTED_ANSWERS: Final = ASSIGN_ANSWERS.labels("computed")
