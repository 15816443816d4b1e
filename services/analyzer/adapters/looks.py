"""The recorded group-sequential looks of an experiment: a Redis list of JSON records (``RedisKeys.looks``)."""

from __future__ import annotations

from redis.asyncio import Redis

from services.analyzer.errors import CorruptLooks
from services.analyzer.looks import LookRecord
from splitstream.keys import RedisKeys

# Compare-and-append: the record of look k goes in only while the list holds exactly the k − 1 looks before it,
# so two requests that both found look k due cannot both record it (the loser re-reads the winner's).
_APPEND_IF_NEXT = """
if redis.call('LLEN', KEYS[1]) + 1 == tonumber(ARGV[1]) then
    return redis.call('RPUSH', KEYS[1], ARGV[2])
end
return 0
"""


class LookLog:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys
        self._append_if_next = redis.register_script(_APPEND_IF_NEXT)

    async def read(self, experiment: str) -> list[LookRecord]:
        """Every recorded look, oldest first."""
        raw = await self._redis.lrange(self._keys.looks(experiment), 0, -1)
        records = []
        for index, item in enumerate(raw):
            try:
                record = LookRecord.model_validate_json(item)
            except ValueError as error:
                raise CorruptLooks(f"{self._keys.looks(experiment)}[{index}] is not a look record: {error}") from error
            if record.look != index + 1:
                raise CorruptLooks(f"{self._keys.looks(experiment)}[{index}] holds look {record.look}")
            records.append(record)
        return records

    async def append(self, experiment: str, record: LookRecord) -> bool:
        """Record ``record`` as the next look; False when another reader already recorded look ``record.look``."""
        length = await self._append_if_next(
            keys=[self._keys.looks(experiment)], args=[record.look, record.model_dump_json()]
        )
        return int(length) > 0
