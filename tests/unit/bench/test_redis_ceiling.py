from bench.ingest.redis_ceiling import _rps

HEADER = '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",' \
         '"max_latency_ms"'


def test_the_rate_is_read_from_the_rows_end_whatever_bytes_the_echoed_command_holds() -> None:
    command = 'EVALSHA 5e0f 0 ss x\x04"\n,",\x14 treatment 1796678202872 event e0-__rand_int__ u207'
    output = f'{HEADER}\n"{command}","73.60","13.530","11.176","13.167","16.015","19.343","21.007"\n'
    assert _rps(output) == 73.6


def test_a_plain_row_reads_as_csv_would() -> None:
    row = '"SET ss:set:__rand_int__ 1","406504.06","0.145","0.040","0.143","0.191","0.247","1.463"'
    assert _rps(f"{HEADER}\n{row}\n") == 406504.06
