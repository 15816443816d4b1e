"""Our partitioner places keyed records exactly where Kafka's default partitioner (aiokafka's, the Java client's)
would, so producers of one topic agree on where a user's records go."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from splitstream.partitioning import KeyPartitioner, partition_of


def test_keys_go_where_kafkas_default_partitioner_puts_them() -> None:
    rng = random.Random(7)
    keys = [rng.randbytes(rng.randrange(0, 64)) for _ in range(3000)]
    keys += [f"user-{index}".encode() for index in range(1000)] + ["用户-42".encode()]
    ours, kafkas = KeyPartitioner(), DefaultPartitioner()
    for partitions in (1, 3, 4, 12):
        every = list(range(partitions))
        assert [ours(key, every, every) for key in keys] == [kafkas(key, every, every) for key in keys]


JAVA_CLIENT_MURMUR2 = {
    # Kafka's own test of Utils.murmur2 (clients, UtilsTest.testMurmur2): signed 32-bit results.
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_placements_follow_the_java_clients_murmur2_test_vectors() -> None:
    for key, murmur2 in JAVA_CLIENT_MURMUR2.items():
        # Kafka's placement: the hash's low 31 bits modulo the partition count; 2**31 partitions show all of them.
        assert partition_of(key, 2**31) == murmur2 & 0x7FFFFFFF
        assert partition_of(key, 12) == (murmur2 & 0x7FFFFFFF) % 12


def test_an_unkeyed_record_goes_to_an_available_partition() -> None:
    assert KeyPartitioner()(None, [0, 1, 2], [2]) == 2
    assert KeyPartitioner()(None, [0, 1, 2], []) in {0, 1, 2}
