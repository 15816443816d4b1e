"""The bounded body reader: the declared length is checked first, the bytes read never pass the limit by much."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from splitstream.body import check_declared_length, collect_bounded
from splitstream.errors import BadRequest, PayloadTooLarge


@pytest.mark.parametrize("declared", [None, "0", "10"])
def test_a_missing_or_small_enough_length_passes(declared: str | None) -> None:
    check_declared_length(declared, limit=10)


def test_a_declared_length_over_the_limit_is_refused_naming_the_body() -> None:
    with pytest.raises(PayloadTooLarge) as raised:
        check_declared_length("11", limit=10)

    assert [(f.field, f.reason) for f in raised.value.fields] == [("body", "declares 11 bytes; at most 10 bytes")]


def test_a_length_that_is_not_a_number_is_a_bad_request() -> None:
    with pytest.raises(BadRequest) as raised:
        check_declared_length("ten", limit=10)

    assert raised.value.status_code == 400
    assert [f.field for f in raised.value.fields] == ["content-length"]


async def test_chunks_up_to_the_limit_are_joined() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"ab", b"", b"cde"):
            yield part

    assert await collect_bounded(chunks(), limit=5) == b"abcde"


async def test_reading_stops_at_the_first_chunk_past_the_limit() -> None:
    pulled: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        while True:
            pulled.append(1)
            yield b"0123"

    with pytest.raises(PayloadTooLarge) as raised:
        await collect_bounded(endless(), limit=10)

    assert len(pulled) == 3  # 4 + 4 + 4 bytes: the third chunk passes 10
    assert raised.value.fields[0].field == "body"
