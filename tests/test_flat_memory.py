"""Issue 26 item 3: the whole command in flat memory, its language detected on several windows, an honest --plan."""

from __future__ import annotations

import subprocess
import wave

import numpy as np
import pytest
from click.testing import CliRunner

from ramble2post.transcribe import audio, batched, decoding, stage, torch_state, vad
from tests.conftest import SAMPLE_1MIN, SAMPLE_13MIN


def _pcm_decode(path) -> np.ndarray:
    """The old way: the whole s16le output at once, then one float32 copy."""
    cmd = [audio.find_ffmpeg(), "-nostdin", "-loglevel", "error", "-i", str(path), "-f", "s16le", "-ac", "1"]
    out = subprocess.run([*cmd, "-ar", "16000", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.int16).astype(np.float32) / 32768.0


def test_streamed_decoding_gives_the_same_samples():
    got = audio.load_audio(SAMPLE_1MIN).samples
    assert got.dtype == np.float32
    assert np.array_equal(got, _pcm_decode(SAMPLE_1MIN))


def test_the_recording_is_not_held_in_memory():
    """ffmpeg writes to a temporary file and windows are read from it: loading the 13-min sample allocates
    a few blocks, not the 51 MB of its float32 samples (the code before: 51 MB and more)."""
    import tracemalloc

    tracemalloc.start()
    try:
        a = audio.load_audio(SAMPLE_13MIN)  # includes the silence check, read in ~1-min blocks
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert a.duration > 780
    assert peak < 0.6 * a.duration * 16_000 * 4, f"{peak / 1e6:.0f} MB allocated to load {a.duration:.0f} s"


def test_slices_of_the_file_are_the_samples_converted_at_once():
    a = audio.load_audio(SAMPLE_1MIN)
    whole = _pcm_decode(SAMPLE_1MIN)
    pcm = a.pcm
    assert len(pcm) == len(whole) and pcm.size == len(whole)
    for key in (slice(0, 10), slice(16_000, 48_123), slice(-500, None), slice(None, None, 7), slice(9, 3)):
        got = pcm[key]
        assert got.dtype == np.float32 and np.array_equal(got, whole[key]), key
    assert pcm[0] == whole[0] and pcm[-1] == whole[-1] and pcm[12_345] == whole[12_345]
    with pytest.raises(IndexError):
        pcm[len(whole)]
    assert np.array_equal(np.asarray(pcm), whole)
    assert np.array_equal(audio.Pcm.from_array(whole)[:], whole)  # int16 values survive the round trip


def test_a_raw_stream_without_a_duration_decodes_whole(tmp_path):
    path = tmp_path / "tone.wav"
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(tone.tobytes())
    got = audio.load_audio(path).samples
    assert len(got) == 16_000 and abs(float(np.max(got)) - 0.3) < 0.01


def test_broken_audio_is_still_one_clear_error(tmp_path):
    bad = tmp_path / "notes.m4a"
    bad.write_text("not audio at all\n" * 100)
    with pytest.raises(audio.AudioError, match="not audio ffmpeg can decode"):
        audio.load_audio(bad)


def test_frame_levels_in_blocks_match_the_whole_file_at_once(monkeypatch):
    x = np.random.default_rng(1).standard_normal(16_000 * 20).astype(np.float32) * 0.1
    whole = vad.frame_levels_db(x)
    monkeypatch.setattr(vad, "LEVEL_BLOCK_FRAMES", 7)  # many blocks, the last one partial
    assert np.array_equal(vad.frame_levels_db(x), whole)


def test_rms_in_blocks_matches_the_whole_file():
    x = np.random.default_rng(2).standard_normal((1 << 20) * 3 + 5).astype(np.float32) * 0.05
    whole = 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    assert audio.rms_dbfs(x) == pytest.approx(whole, abs=1e-9)


def test_decoded_windows_do_not_keep_the_encoder_output(tiny):
    """Each result used to hold a view of its batch's encoder output (6 MB per window for base) until the end."""
    model, samples = tiny
    net = batched.prepare_model(model, device="cpu", quantize="int8")
    plan = batched.plan_windows(samples=samples, device="cpu", options=batched.BatchedOptions())
    settings = batched.DecodeSettings(
        language="en", device="cpu", n_mels=80, fp16=False, bf16=False, timestamps=False, temperatures=(0.0,), beams=1
    )
    done = batched.run_batches(net, plan=plan, samples=samples, settings=settings, options=batched.BatchedOptions())
    results = [r for b in done for r in b.results]
    assert results and all(r.audio_features is None for r in results)
    assert any(r.text.strip() for r in results)


@pytest.mark.parametrize(
    ("n", "picked"), [(1, [0]), (2, [0, 1]), (4, [0, 1, 2, 3]), (22, [0, 7, 14, 21]), (100, [0, 33, 66, 99])]
)
def test_language_windows_spread_from_first_to_last(n, picked):
    assert decoding.detection_windows(n) == picked


def test_language_is_the_likeliest_over_windows_not_the_first():
    """One noisy window said Finnish; the others English (the 8-min clip m04's first window: fi 0.48, en 0.25)."""
    probs = [{"fi": 0.48, "en": 0.25, "sv": 0.11}, {"en": 0.79, "fi": 0.13}, {"en": 0.48, "fi": 0.41}, {"en": 0.75}]
    assert decoding.likeliest_language(probs) == "en"
    assert decoding.likeliest_language(probs[:1]) == "fi"


def test_malloc_helpers_are_safe_to_call(monkeypatch):
    torch_state.release_free_memory()
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the user's own choice is left alone
    torch_state.one_malloc_arena()


@pytest.fixture
def no_speed_record(monkeypatch, tmp_path):
    """A cache without this machine's speed record: the built-in figures alone."""
    monkeypatch.setenv("RAMBLE2POST_CACHE", str(tmp_path / "cache"))


def test_plan_estimates_the_whole_command_from_the_header_alone(no_speed_record):
    p = stage.plan_transcription(audio_path=SAMPLE_1MIN, options=stage.TranscribeOptions(model="base", device="cpu"))
    assert p.engine == "both"  # short: both engines and the likelier text per window
    rtf = stage.RTF_ESTIMATE[("base", "cpu")]
    assert p.estimated_wall_s == pytest.approx(
        stage.COMMAND_OVERHEAD_S + p.duration_s * (rtf["sequential"] + rtf["batched"] + stage.SCORE_RTF), abs=0.2
    )
    assert p.estimated_audio_disk_bytes == pytest.approx(p.duration_s * 16_000 * 2, rel=0.01)
    assert (p.speed_factor, p.speed_runs) == (1.0, 0)
    batched_plan = stage.plan_transcription(
        audio_path=SAMPLE_1MIN, options=stage.TranscribeOptions(model="base", device="cpu", engine="batched")
    )
    assert batched_plan.estimated_wall_s == pytest.approx(stage.COMMAND_OVERHEAD_S + 0.025 * p.duration_s, abs=0.2)


def test_plan_learns_this_machines_speed_from_its_runs(no_speed_record):
    """A machine 1.3x slower than the built-in figures' box: after its runs the estimate follows it."""
    from ramble2post.transcribe import speed

    opts = stage.TranscribeOptions(model="base", device="cpu", engine="batched")
    before = stage.plan_transcription(audio_path=SAMPLE_13MIN, options=opts)

    def note(audio_s, ratio):
        assumed = stage.COMMAND_OVERHEAD_S + audio_s * before.real_time_factor_assumed
        speed.note_run(
            device="cpu",
            model="base",
            engine="batched",
            audio_s=audio_s,
            work_s=assumed * ratio - speed.OUTSIDE_S,
            assumed_s=assumed,
        )

    for audio_s, ratio in ((800.0, 1.25), (4000.0, 1.3), (480.0, 1.35), (10.0, 5.0)):  # the 10-s run is not noted
        note(audio_s, ratio)
    after = stage.plan_transcription(audio_path=SAMPLE_13MIN, options=opts)
    assert (after.speed_runs, after.speed_factor) == (3, pytest.approx(1.3, abs=0.01))
    assert after.estimated_wall_s == pytest.approx(1.3 * before.estimated_wall_s, rel=0.02)
    for _ in range(speed.KEPT_RUNS):  # the machine got faster (a new box in the same home): the old runs age out
        note(600.0, 0.8)
    assert stage.plan_transcription(audio_path=SAMPLE_13MIN, options=opts).speed_factor == pytest.approx(0.8, abs=0.01)
    (speed.cache_dir() / "timings.json").write_text("{not json")  # a damaged record is no record
    assert stage.plan_transcription(audio_path=SAMPLE_13MIN, options=opts).speed_runs == 0


def test_plan_on_the_command_line_reads_only_the_header():
    from ramble2post.cli.main import cli

    result = CliRunner().invoke(cli, ["transcribe", str(SAMPLE_1MIN), "--plan", "--model", "base", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "min of audio" in result.output and "needs about" in result.output and " s and " in result.output


def test_plan_for_a_bigger_model_scales_base_by_its_parameters(no_speed_record):
    """small is not measured here (no download): base's factor x 244 M / 74 M, not the flat 0.5 fallback."""
    opts = stage.TranscribeOptions(model="small", device="cpu", engine="batched")
    p = stage.plan_transcription(audio_path=SAMPLE_1MIN, options=opts)
    assert p.real_time_factor_assumed == pytest.approx(0.025 * 244 / 74, abs=0.002)
    unknown = stage.plan_transcription(
        audio_path=SAMPLE_1MIN, options=stage.TranscribeOptions(model="x.pt", engine="batched")
    )
    assert unknown.real_time_factor_assumed == stage.RTF_FALLBACK["cpu"] or unknown.device != "cpu"


@pytest.mark.parametrize(("first", "encoded"), [({"en": 0.87, "la": 0.07}, 1), ({"fi": 0.48, "en": 0.25}, 4)])
def test_more_windows_are_asked_only_when_the_first_is_unsure(monkeypatch, first, encoded):
    """The first window decides alone when sure (one encoder pass); else 3 more spread windows vote."""
    from ramble2post.transcribe.vad import Chunk

    seen: list[int] = []

    def fake_encode(net, clips, *, settings):
        seen.extend(len(c) for c in clips)
        return clips, decoding.StepTimes()

    class Net:
        calls = 0

        def detect_language(self, features, tokenizer):
            self.calls += 1  # the first window's answer, then the spread windows' (English)
            return None, [first] if self.calls == 1 else [{"en": 0.7, "fi": 0.2}] * len(features)

    class Model:
        num_languages = 99

    monkeypatch.setattr(decoding, "encode", fake_encode)
    chunks = [Chunk(10.0 * i, 10.0 * i + 10) for i in range(22)]
    samples = np.zeros(16_000 * 220, np.float32)
    probs, _ = decoding.detect_language(Net(), Model(), samples=samples, chunks=chunks, settings=None)
    assert len(seen) == encoded and len(probs) == encoded
    assert decoding.likeliest_language(probs) == "en"


def _concat(src, times: int, out):
    """``src`` said ``times`` times over, one file (ffmpeg's concat demuxer, no re-encoding)."""
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{src}'\n" for _ in range(times)))
    cmd = [audio.find_ffmpeg(), "-nostdin", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0"]
    subprocess.run([*cmd, "-i", str(listing), "-c", "copy", str(out)], check=True)
    return out


def _peak_rss_mib(args: list[str], env: dict[str, str]) -> float:
    import os
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "ramble2post"
    proc = subprocess.Popen([str(exe), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read().decode()[-500:] if proc.stderr else ""
    return usage.ru_maxrss / 1024


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_recording(tmp_path, tiny):
    """The 13-min sample once and 5 times over (67 min) through the whole command: peak RSS grows by less
    than 5 MB per added minute of audio. Before issue 26: the decoded audio held three times over, float64
    copies of the whole file in the VAD and the silence check, every window's encoder output kept,
    scattered free heap: base 2.68 vs 4.49 GB, 34 MB a minute; then the float32 samples held whole (3.8 MB a
    minute): tiny.en 1.30 vs 1.68 GB, 7 MB a minute; since the samples stay in a temporary file
    (audio.Pcm): tiny.en 1.35 vs 1.49 GB, 2.7 MB a minute (base with the jargon prompt 2.07 vs 2.31 GB)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}  # tiny.en converted by the fixture
    peaks = []
    if not SAMPLE_13MIN.exists():
        pytest.skip(f"{SAMPLE_13MIN} is missing (../shared beside the repo)")
    for times in (1, 5):
        f = _concat(SAMPLE_13MIN.resolve(), times, tmp_path / f"x{times}.m4a")
        args = ["transcribe", str(f), "--model", "tiny.en", "--engine", "batched", "--no-cache"]
        peaks.append(_peak_rss_mib([*args, "-o", str(tmp_path / f"x{times}.json")], env))
    minutes = 4 * 13.4  # audio added by the 4 extra copies
    assert (peaks[1] - peaks[0]) / minutes < 5.0, peaks


def test_the_first_batch_detects_the_language_from_its_own_encoding(monkeypatch):
    """``batched.LanguageGate``: the batch holding the first window detects the language from that window's
    encoder output (no extra encoder pass), the other batches wait for it; a failed detection fails them
    too, rather than leaving them waiting."""
    from concurrent.futures import ThreadPoolExecutor

    from ramble2post.transcribe import batched
    from ramble2post.transcribe.vad import Chunk

    encoded: list[int] = []

    def fake_encode(net, clips, *, settings):
        encoded.append(len(clips))
        return np.zeros((len(clips), 4)), decoding.StepTimes()

    class Net:
        def detect_language(self, features, tokenizer):
            assert features.shape == (1, 4)  # the first window's encoder output, from the batch
            return None, [{"de": 0.9, "en": 0.05}]

    class Model:
        num_languages = 99

    monkeypatch.setattr(decoding, "encode", fake_encode)
    settings = decoding.DecodeSettings(
        language=None, device="cpu", n_mels=80, fp16=False, bf16=False, timestamps=False, temperatures=(0.0,), beams=2
    )
    chunks = [Chunk(10.0 * i, 10.0 * i + 10) for i in range(6)]
    gate = batched.LanguageGate(settings, model=Model(), samples=np.zeros(16_000 * 60, np.float32), chunks=chunks)
    with ThreadPoolExecutor(max_workers=2) as pool:
        later = pool.submit(gate.settings, Net(), [3, 4, 5], None)  # waits at the gate
        first = pool.submit(gate.settings, Net(), [0, 1, 2], np.ones((3, 4)))
        assert first.result(timeout=10).language == "de" and later.result(timeout=10).language == "de"
    assert encoded == []  # the detection encoded nothing of its own

    class Broken(Net):
        def detect_language(self, features, tokenizer):
            raise RuntimeError("detection failed")

    gate = batched.LanguageGate(settings, model=Model(), samples=np.zeros(16_000 * 60, np.float32), chunks=chunks)
    with ThreadPoolExecutor(max_workers=2) as pool:
        later = pool.submit(gate.settings, Net(), [3, 4, 5], None)
        first = pool.submit(gate.settings, Broken(), [0, 1, 2], np.ones((3, 4)))
        with pytest.raises(RuntimeError):
            first.result(timeout=10)
        with pytest.raises(RuntimeError):
            later.result(timeout=10)  # not a hang
