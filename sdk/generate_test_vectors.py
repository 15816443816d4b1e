"""Writes sdk/test-vectors.json from splitstream.hashing: run it only when the hash version changes.

The server, the Python SDK and the JS snippet are all tested against the file, so a change that moves any unit
fails all three until the vectors are regenerated on purpose (with a new HASH_VERSION).
"""

from __future__ import annotations

import json
from pathlib import Path

from splitstream.hashing import BUCKETS, HASH_VERSION, bucket, variant_index

UNITS = [
    "user-1", "user-2", "u42", "0", "a", "device-7f3a9c", "acct:9001", "某用户", "ユーザー", "emoji-🎉",
    "x" * 200, " spaced id ", "Ünïcödé", "1234567890", "user@example.com",
]
SALTS = ["title-test", "price-2026-q4", "push:copy", "layer-home", "holdout-global", "标题实验"]
SPLITS = [
    ([0.5, 0.5], 1.0), ([0.5, 0.5], 0.1), ([0.5, 0.5], 0.5), ([0.1, 0.2, 0.7], 1.0), ([1 / 3, 1 / 3, 1 / 3], 1.0),
    ([1 / 3, 1 / 3, 1 / 3], 0.25), ([0.25, 0.25, 0.25, 0.25], 0.0), ([0.9, 0.1], 0.05),
]


def main() -> None:
    cases = []
    for index, unit in enumerate(UNITS * 3):
        salt = SALTS[index % len(SALTS)]
        weights, coverage = SPLITS[index % len(SPLITS)]
        position = bucket(salt, unit)
        cases.append({
            "unit_id": unit, "salt": salt, "bucket": position, "weights": weights, "coverage": coverage,
            "variant": variant_index(weights, coverage, position),
        })
    # Positions at the range edges, where rounding differences between languages would show.
    edges = [
        {"bucket": b, "weights": w, "coverage": c, "variant": variant_index(w, c, b)}
        for w, c in SPLITS for b in (0, 499, 500, 999, 1000, 3333, 3334, 4999, 5000, 6666, 6667, 9999)
    ]
    document = {"hash_version": HASH_VERSION, "buckets": BUCKETS, "cases": cases, "edges": edges}
    path = Path(__file__).with_name("test-vectors.json")
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
