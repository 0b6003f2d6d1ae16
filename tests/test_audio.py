"""Tests for competition.audio: every file is generated in tmp_path, never read from a dataset."""

import struct

import numpy as np
import pytest
import soundfile

from competition import audio
from competition.audio import AudioError, audio_info, load_audio

TARGET_RATE = 22050


def sine(frequency, sample_rate, seconds, amplitude=0.5):
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def write(path, samples, sample_rate, **kwargs):
    soundfile.write(path, samples, sample_rate, **kwargs)
    return path


def peak_frequency(samples, sample_rate):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return np.argmax(spectrum) * sample_rate / len(samples)


# --- formats ---------------------------------------------------------------------------------

# (file name, soundfile subtype, largest allowed sample error): the tolerance is the format's
# quantisation step, or what a lossy codec loses on a plain sine.
FORMATS = [
    ("u8.wav", "PCM_U8", 1 / 128),
    ("s16.wav", "PCM_16", 1 / 2**15),
    ("s24.wav", "PCM_24", 1 / 2**23),
    ("s32.wav", "PCM_32", 1e-7),
    ("float.wav", "FLOAT", 0.0),
    ("double.wav", "DOUBLE", 1e-7),  # float64 in the file, float32 out
    ("clip.flac", "PCM_16", 1 / 2**15),
    ("clip.aiff", "PCM_16", 1 / 2**15),
    ("vorbis.ogg", "VORBIS", 0.05),
    ("clip.mp3", "MPEG_LAYER_III", 0.1),
]


@pytest.mark.parametrize("name, subtype, tolerance", FORMATS, ids=[f[0] for f in FORMATS])
def test_each_format_round_trips_a_sine(tmp_path, name, subtype, tolerance):
    original = sine(440, TARGET_RATE, 1.0)
    path = write(tmp_path / name, original, TARGET_RATE, subtype=subtype)

    decoded = load_audio(path, TARGET_RATE)

    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert len(decoded) == len(original)
    assert np.abs(decoded - original).max() <= tolerance + 1e-9
    assert np.sqrt(np.mean((decoded - original) ** 2)) < 0.01


def test_audio_info_reads_the_header(tmp_path):
    path = write(tmp_path / "stereo.wav", np.zeros((1234, 2), np.float32), 16000)
    assert audio_info(path) == (16000, 1234, 2)


# --- resampling ------------------------------------------------------------------------------

# 8k-96k is the range the kit promises; 4k and 192k are unusual but still resampled, not refused.
@pytest.mark.parametrize("file_rate", [4000, 8000, 16000, 44100, 48000, 96000, 192000])
def test_resampling_keeps_duration_and_frequency(tmp_path, file_rate):
    seconds, frequency = 2.0, 1000.0  # 1 kHz is below the Nyquist frequency of every rate here
    path = write(tmp_path / "tone.wav", sine(frequency, file_rate, seconds), file_rate,
                 subtype="FLOAT")

    resampled = load_audio(path, TARGET_RATE)

    assert abs(len(resampled) - seconds * TARGET_RATE) <= 1
    assert peak_frequency(resampled, TARGET_RATE) == pytest.approx(frequency, abs=1.0)
    # Amplitude survives: RMS of a 0.5 sine is 0.5/sqrt(2), edges aside.
    middle = resampled[TARGET_RATE // 4: -TARGET_RATE // 4]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_audio_at_the_target_rate_is_returned_unchanged(tmp_path):
    original = np.random.default_rng(0).uniform(-1, 1, 5000).astype(np.float32)
    path = write(tmp_path / "noise.wav", original, TARGET_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, TARGET_RATE), original)


def test_resampling_removes_content_above_the_new_nyquist(tmp_path):
    # 15 kHz cannot exist at 22050 Hz; a resampler that aliased it would fold it to 7050 Hz.
    # The abrupt start and end of the tone are broadband, so only the middle must be silent.
    path = write(tmp_path / "high.wav", sine(15000, 48000, 1.0), 48000, subtype="FLOAT")
    resampled = load_audio(path, TARGET_RATE)
    assert np.abs(resampled[1000:-1000]).max() < 1e-3


# --- channels, length ------------------------------------------------------------------------

def test_stereo_is_mixed_down_by_mean(tmp_path):
    left, right = sine(440, TARGET_RATE, 0.5), sine(1000, TARGET_RATE, 0.5, amplitude=0.3)
    path = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), TARGET_RATE,
                 subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path, TARGET_RATE), (left + right) / 2, atol=1e-7)


def test_multichannel_is_mixed_down_by_mean(tmp_path):
    channels = np.random.default_rng(1).uniform(-1, 1, (3000, 6)).astype(np.float32)
    path = write(tmp_path / "surround.wav", channels, TARGET_RATE, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path, TARGET_RATE), channels.mean(axis=1), atol=1e-6)


def test_max_seconds_truncates(tmp_path):
    original = sine(440, 44100, 10.0)
    path = write(tmp_path / "long.wav", original, 44100, subtype="FLOAT")

    np.testing.assert_array_equal(load_audio(path, 44100, max_seconds=2.5), original[:110250])
    assert len(load_audio(path, TARGET_RATE, max_seconds=2.5)) == 2.5 * TARGET_RATE
    assert len(load_audio(path, 44100, max_seconds=60)) == len(original)
    assert len(load_audio(path, 44100, max_seconds=0)) == 0


def test_max_seconds_decodes_only_the_frames_it_needs(tmp_path, monkeypatch):
    path = write(tmp_path / "long.wav", np.zeros(44100 * 60, np.float32), 44100, subtype="FLOAT")
    frames_asked = []
    original_read = soundfile.SoundFile.read

    def counting_read(self, frames=-1, *args, **kwargs):
        frames_asked.append(frames)
        return original_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(soundfile.SoundFile, "read", counting_read)
    load_audio(path, 44100, max_seconds=3)
    assert frames_asked and sum(frames_asked) == 3 * 44100


def test_long_files_are_read_in_blocks_and_joined(tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "_READ_BLOCK_FRAMES", 1000)
    original = sine(440, TARGET_RATE, 1.0)
    path = write(tmp_path / "clip.wav", original, TARGET_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, TARGET_RATE), original)


@pytest.mark.parametrize("bad_max_seconds", [-1.0, float("nan")])
def test_bad_max_seconds_is_a_value_error(tmp_path, bad_max_seconds):
    path = write(tmp_path / "clip.wav", sine(440, TARGET_RATE, 0.1), TARGET_RATE)
    with pytest.raises(ValueError, match="max_seconds"):
        load_audio(path, TARGET_RATE, max_seconds=bad_max_seconds)


@pytest.mark.parametrize("bad_rate", [0, -22050, 22050.0])
def test_bad_target_sample_rate_is_a_value_error(tmp_path, bad_rate):
    path = write(tmp_path / "clip.wav", sine(440, TARGET_RATE, 0.1), TARGET_RATE)
    with pytest.raises(ValueError, match="sample_rate") as raised:
        load_audio(path, bad_rate)
    assert not isinstance(raised.value, AudioError)  # the caller's mistake, not the file's


# --- valid but unusual content ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["empty.wav", "empty.ogg"])
def test_file_with_no_samples_gives_an_empty_array(tmp_path, name):
    path = write(tmp_path / name, np.zeros(0, np.float32), 44100)

    decoded = load_audio(path, TARGET_RATE)

    assert decoded.dtype == np.float32 and decoded.shape == (0,)
    assert audio_info(path) == (44100, 0, 1)


def test_empty_wav_with_trailing_bytes_is_still_empty_not_truncated(tmp_path):
    path = write(tmp_path / "empty.wav", np.zeros(0, np.float32), 44100, subtype="PCM_16")
    path.write_bytes(path.read_bytes() + b"\0\0\0\0")
    assert load_audio(path, TARGET_RATE).shape == (0,)


def test_silence_is_returned_as_is(tmp_path):
    path = write(tmp_path / "silence.wav", np.zeros(44100, np.float32), 44100)
    decoded = load_audio(path, TARGET_RATE)
    assert len(decoded) == TARGET_RATE and not decoded.any()


def test_nan_and_inf_samples_become_zero(tmp_path):
    original = sine(440, TARGET_RATE, 1.0)
    damaged = original.copy()
    damaged[[100, 200, 300]] = [np.nan, np.inf, -np.inf]
    path = write(tmp_path / "nan.wav", damaged, TARGET_RATE, subtype="FLOAT")

    decoded = load_audio(path, TARGET_RATE)
    expected = original.copy()
    expected[[100, 200, 300]] = 0
    np.testing.assert_array_equal(decoded, expected)

    resampled = load_audio(path, 16000)
    assert np.isfinite(resampled).all()
    assert np.abs(resampled).max() <= 0.51  # no burst spread from the bad samples


def test_samples_beyond_full_scale_are_clipped(tmp_path):
    path = write(tmp_path / "loud.wav", np.array([2.0, -3.0, 0.25], np.float32), TARGET_RATE,
                 subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, TARGET_RATE), [1.0, -1.0, 0.25])


def test_truncated_wav_gives_the_frames_it_holds(tmp_path):
    original = sine(440, 44100, 1.0)
    whole = write(tmp_path / "whole.wav", original, 44100, subtype="PCM_16").read_bytes()
    path = tmp_path / "truncated.wav"
    path.write_bytes(whole[: 44 + 2 * 10000])  # 44-byte header, then 10000 of 44100 frames

    assert audio_info(path) == (44100, 10000, 1)
    np.testing.assert_allclose(load_audio(path, 44100), original[:10000], atol=1 / 2**15)


# --- the 16-bit PCM WAV fast path ------------------------------------------------------------

def with_chunk_before_data(path, chunk_id, body):
    """The WAV at `path` with one more chunk inserted before its data chunk (padded if odd)."""
    data = path.read_bytes()
    at = data.index(b"data")
    chunk = chunk_id + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")
    out = bytearray(data[:at] + chunk + data[at:])
    struct.pack_into("<I", out, 4, len(out) - 8)
    path.write_bytes(out)
    return path


def libsndfile_decode(path):
    frames, _ = soundfile.read(path, dtype="int16", always_2d=True)
    return (frames.astype(np.float32) / 32768).mean(axis=1, dtype=np.float64).astype(np.float32)


PLAIN_PCM16 = {
    "mono": lambda p: write(p, sine(440, 44100, 0.5), 44100, subtype="PCM_16"),
    "stereo": lambda p: write(p, np.stack([sine(440, 44100, 0.5), sine(660, 44100, 0.5, 0.9)], 1), 44100,
                              subtype="PCM_16"),
    "extensible, 3 channels": lambda p: write(p, np.stack([sine(f, 16000, 0.5) for f in (300, 500, 700)], 1),
                                              16000, format="WAVEX", subtype="PCM_16"),
    "full scale": lambda p: write(p, np.array([-1.0, 1.0 - 2**-15, 0.5, -0.25], np.float32), 8000,
                                  subtype="PCM_16"),
    "odd LIST chunk before data": lambda p: with_chunk_before_data(
        write(p, sine(440, 22050, 0.5), 22050, subtype="PCM_16"), b"LIST", b"INFOISFT\x03\0\0\0ab\0"),
}


@pytest.mark.parametrize("make", PLAIN_PCM16.values(), ids=PLAIN_PCM16.keys())
def test_plain_pcm16_wav_takes_the_fast_path_with_libsndfiles_samples(tmp_path, make):
    path = make(tmp_path / "clip.wav")
    fast = audio._read_plain_pcm16_wav(path, None)
    assert fast is not None, "an ordinary 16-bit WAV should not need libsndfile"
    rate, samples = fast
    assert rate == soundfile.info(path).samplerate
    np.testing.assert_allclose(samples, libsndfile_decode(path), rtol=0, atol=2e-7)
    np.testing.assert_array_equal(load_audio(path, rate), samples)
    # Resampled, the fast path's samples give what libsndfile's would.
    resampled = audio.soxr.resample(libsndfile_decode(path), rate, 11025, quality=audio.RESAMPLE_QUALITY)
    np.testing.assert_allclose(load_audio(path, 11025), np.clip(resampled, -1, 1), atol=2e-7)


def test_fast_path_reads_only_max_seconds(tmp_path):
    original = sine(440, 44100, 4.0)
    path = write(tmp_path / "clip.wav", original, 44100, subtype="PCM_16")
    rate, samples = audio._read_plain_pcm16_wav(path, 1.5)
    assert rate == 44100 and len(samples) == round(1.5 * 44100)
    np.testing.assert_array_equal(samples, load_audio(path, 44100)[: len(samples)])


def data_before_fmt(path):
    data = path.read_bytes()
    fmt_at, data_at = data.index(b"fmt "), data.index(b"data")
    path.write_bytes(data[:fmt_at] + data[data_at:] + data[fmt_at:data_at])
    return path


# Files the fast path leaves to libsndfile: other sample formats, and anything unusual about the layout.
NOT_PLAIN_PCM16 = {
    "24-bit": lambda p: write(p, sine(440, 22050, 0.2), 22050, subtype="PCM_24"),
    "float": lambda p: write(p, sine(440, 22050, 0.2), 22050, subtype="FLOAT"),
    "8-bit": lambda p: write(p, sine(440, 22050, 0.2), 22050, subtype="PCM_U8"),
    "truncated": lambda p: truncated_copy(write(p, sine(440, 22050, 0.2), 22050, subtype="PCM_16"), 1000),
    "header only": lambda p: truncated_copy(write(p, sine(440, 22050, 0.2), 22050, subtype="PCM_16"), 44),
    "no samples": lambda p: write(p, np.zeros(0, np.float32), 22050, subtype="PCM_16"),
    "data before fmt": lambda p: data_before_fmt(write(p, sine(440, 22050, 0.2), 22050, subtype="PCM_16")),
    "FLAC named .wav": lambda p: write(p, sine(440, 22050, 0.2), 22050, format="FLAC", subtype="PCM_16"),
    "implausible rate": lambda p: wav_with_sample_rate_field(p.parent, 500),
}


@pytest.mark.parametrize("make", NOT_PLAIN_PCM16.values(), ids=NOT_PLAIN_PCM16.keys())
def test_anything_else_goes_through_libsndfile(tmp_path, make):
    assert audio._read_plain_pcm16_wav(make(tmp_path / "clip.wav"), None) is None


# --- bad input -------------------------------------------------------------------------------

def wav_with_sample_rate_field(tmp_path, sample_rate_field):
    path = write(tmp_path / "rate.wav", sine(440, 44100, 0.1), 44100, subtype="PCM_16")
    header = bytearray(path.read_bytes())
    assert header[12:16] == b"fmt "  # soundfile writes fmt first: the rate is at byte 24
    struct.pack_into("<I", header, 24, sample_rate_field)
    path.write_bytes(header)
    return path


def truncated_copy(path, n_bytes):
    cut = path.with_name("cut-" + path.name)
    cut.write_bytes(path.read_bytes()[:n_bytes])
    return cut


def make_missing(tmp_path):
    return tmp_path / "missing.wav"


def make_directory(tmp_path):
    (tmp_path / "folder.wav").mkdir()
    return tmp_path / "folder.wav"


def make_below_a_file(tmp_path):
    (tmp_path / "plain.wav").write_bytes(b"x")
    return tmp_path / "plain.wav" / "inner.wav"


def make_zero_bytes(tmp_path):
    (tmp_path / "zero.wav").write_bytes(b"")
    return tmp_path / "zero.wav"


def make_text(tmp_path):
    (tmp_path / "text.wav").write_text("fname,label\n00044347.wav,Hi-hat\n" * 20)
    return tmp_path / "text.wav"


def make_random_bytes(tmp_path):
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(2).bytes(10_000))
    return tmp_path / "noise.wav"


def make_header_only_wav(tmp_path):
    path = write(tmp_path / "clip.wav", sine(440, 44100, 1.0), 44100, subtype="PCM_16")
    return truncated_copy(path, 44)


def make_truncated_ogg(tmp_path):
    path = write(tmp_path / "clip.ogg", sine(440, 44100, 3.0), 44100)
    return truncated_copy(path, path.stat().st_size // 2)


def make_zero_rate(tmp_path):
    return wav_with_sample_rate_field(tmp_path, 0)


def make_absurdly_low_rate(tmp_path):
    return wav_with_sample_rate_field(tmp_path, 500)


def make_absurdly_high_rate(tmp_path):
    return wav_with_sample_rate_field(tmp_path, 2_000_000)


# (how to make the file, what the message must say); audio_info and load_audio both refuse them.
BAD_FILES = [
    (make_missing, ": file not found"),
    (make_directory, ": not a file (a directory)"),
    (make_below_a_file, ": cannot open (Not a directory)"),
    (make_zero_bytes, ": empty file (0 bytes)"),
    (make_text, ": not a readable audio file (Format not recognised"),
    (make_random_bytes, ": not a readable audio file (Format not recognised"),
    (make_header_only_wav, ": truncated, the header promises audio the file does not hold (RIFF"),
    (make_truncated_ogg, ": truncated, the header promises audio the file does not hold (Ogg"),
    (make_zero_rate, ": not a readable audio file ("),
    (make_absurdly_low_rate, ": implausible sample rate 500 Hz"),
    (make_absurdly_high_rate, ": implausible sample rate 2000000 Hz"),
]


@pytest.mark.parametrize("read", [audio_info, lambda path: load_audio(path, TARGET_RATE)],
                         ids=["audio_info", "load_audio"])
@pytest.mark.parametrize("make_file, message", BAD_FILES, ids=[b[0].__name__ for b in BAD_FILES])
def test_bad_file_raises_audio_error_naming_it(tmp_path, read, make_file, message):
    path = make_file(tmp_path)
    with pytest.raises(AudioError) as raised:
        read(path)
    assert str(raised.value).startswith(str(path) + message)
    assert isinstance(raised.value, ValueError)


def test_truncated_flac_raises_when_decoded(tmp_path):
    path = write(tmp_path / "clip.flac", sine(440, 44100, 3.0), 44100)
    cut = truncated_copy(path, path.stat().st_size // 2)

    assert audio_info(cut) == (44100, 3 * 44100, 1)  # the header alone looks fine
    with pytest.raises(AudioError) as raised:
        load_audio(cut, TARGET_RATE)
    assert str(raised.value).startswith(f"{cut}: corrupt or truncated audio data after 0 frames (")
