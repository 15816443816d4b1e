import os
import sys
from pathlib import Path

from devstack.processes import ManagedProcess


def test_start_then_stop_a_background_process(tmp_path: Path) -> None:
    process = ManagedProcess("sleeper", tmp_path, marker="time.sleep")
    pid = process.start([sys.executable, "-c", "import time; time.sleep(60)"], env=os.environ, cwd=tmp_path)
    assert process.pid() == pid
    assert process.stop(timeout=5) == "stopped"
    assert process.pid() is None
    assert not process.pid_file.exists()


def test_a_process_that_ignores_term_is_killed(tmp_path: Path) -> None:
    process = ManagedProcess("stubborn", tmp_path, marker="SIG_IGN")
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    process.start([sys.executable, "-c", code], env=os.environ, cwd=tmp_path)
    while "up" not in process.log_file.read_text():
        pass
    assert process.stop(timeout=0.5) == "killed after timeout"
    assert process.pid() is None


def test_a_recycled_pid_is_not_mistaken_for_ours(tmp_path: Path) -> None:
    process = ManagedProcess("kafka", tmp_path, marker="kafka.Kafka")
    process.pid_file.write_text(f"{os.getpid()}\n")  # alive, but it is pytest, not a broker
    assert process.pid() is None
    assert process.stop() == "not running"
