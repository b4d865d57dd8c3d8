"""A 3-hour recording: its length and the plan come from the container header, in bounded memory.

The file is generated for the test (never committed): one minute of AAC encoded
once, then concatenated 180 times by ffmpeg's concat demuxer with stream copy
(no re-encoding), which takes about a second and 11 MB. Decoded to Whisper's
16 kHz float32 it would be 10800 s x 16000 x 4 B = 691 MB, so any path that
decoded it would show in the peak memory measured here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import SAMPLE_1MIN
from tests.faults.helpers import cli_env, record

THREE_HOURS = 3 * 3600  # s
DECODED_BYTES = THREE_HOURS * 16_000 * 4  # float32 samples at 16 kHz
PROBE_RSS_MAX = 100 * 2**20  # bytes: a header read, far below the decoded size
PLAN_EXTRA_RSS_MAX = 64 * 2**20  # bytes: --plan on 3 h may use at most this much more than on 1 min


@pytest.fixture(scope="module")
def three_hours(tmp_path_factory):
    from ramble2post.transcribe.audio import find_ffmpeg

    d = tmp_path_factory.mktemp("long-audio")
    ff = find_ffmpeg()
    one = d / "one-minute.m4a"
    subprocess.run(
        [
            ff,
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=8000:duration=60",
            "-c:a",
            "aac",
            "-b:a",
            "8k",
            str(one),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (d / "list.txt").write_text("".join(f"file '{one}'\n" for _ in range(THREE_HOURS // 60)))
    big = d / "three hours.m4a"
    subprocess.run(
        [
            ff,
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(d / "list.txt"),
            "-c",
            "copy",
            str(big),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    one.unlink()
    return big


_MEASURE = """
import json, resource, sys, time
from ramble2post.transcribe.audio import probe_duration
t0 = time.perf_counter()
d = probe_duration(sys.argv[1])
print(json.dumps({"duration": d, "wall_s": time.perf_counter() - t0,
                  "ffmpeg_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
                  # VmHWM: this process's own peak (ru_maxrss would include the forking pytest's)
                  "self_rss": int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024}))
"""


def test_probe_duration_reads_three_hours_from_the_header_in_bounded_memory(three_hours, tmp_path):
    r = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(three_hours)],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path / "home"),
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert abs(m["duration"] - THREE_HOURS) < 1.0
    assert m["ffmpeg_rss"] < PROBE_RSS_MAX < DECODED_BYTES, m
    assert m["self_rss"] < PROBE_RSS_MAX * 2, m  # python + numpy, no samples
    assert m["wall_s"] < 20, m


_PEAK = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(r.stdout)
sys.stderr.write(r.stderr)
print(f"PEAK_RSS={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}", file=sys.stderr)
sys.exit(r.returncode)
"""


def _plan(audio, home):
    """`ramble2post transcribe AUDIO --plan` -> (completed process, peak RSS of its process tree, wall s)."""
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            _PEAK,
            sys.executable,
            "-m",
            "ramble2post",
            "transcribe",
            str(audio),
            "--plan",
            "-m",
            "tiny.en",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=cli_env(home),
        timeout=300,
    )
    peak = int(r.stderr.rsplit("PEAK_RSS=", 1)[1])
    return r, peak, time.perf_counter() - t0


def test_plan_for_three_hours_does_not_decode(three_hours, tmp_path):
    long_run, long_peak, long_wall = _plan(three_hours, tmp_path / "home")
    assert long_run.returncode == 0, long_run.stderr
    assert "Traceback" not in long_run.stderr
    shown = long_run.stdout + long_run.stderr
    assert re.search(r"3:00:00|10800|180(\.0)? min|3(\.0)? h", shown), shown
    short_run, short_peak, _ = _plan(SAMPLE_1MIN, tmp_path / "home")
    assert short_run.returncode == 0, short_run.stderr
    # memory does not grow with the recording's length: no decoding happened
    assert long_peak - short_peak < PLAN_EXTRA_RSS_MAX, (long_peak, short_peak)
    assert long_peak < DECODED_BYTES + short_peak
    assert long_wall < 60
    mib = 2**20
    record(
        exit=0,
        message=f"(plan only: peak RSS {long_peak / mib:.0f} MiB vs {short_peak / mib:.0f} MiB "
        f"for 1 min, {long_wall:.1f} s)",
    )
