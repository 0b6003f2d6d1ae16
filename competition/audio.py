"""Decode any audio file the kit meets into float32 mono samples at one sample rate.

`load_audio` is the kit's only decoder and `audio_info` reads just a file's header. Both accept
whatever libsndfile reads (WAV 8/16/24/32-bit integer and 32/64-bit float, FLAC, OGG/Vorbis, AIFF,
MP3, ...) at any plausible sample rate, and raise `AudioError`, a `ValueError` whose message starts
with the path, for a file they cannot use. How each kind of bad or unusual input is handled:

- missing path: AudioError "<path>: file not found". A directory: "<path>: not a file (a
  directory)". Any other reason the OS refuses to open it: "<path>: cannot open (<OS reason>)".
- 0-byte file: AudioError "<path>: empty file (0 bytes)".
- not audio (text, random bytes; the file name does not matter): AudioError "<path>: not a readable
  audio file (<libsndfile's reason>)".
- truncated file, its header promising more audio than the file holds: libsndfile counts only the
  frames actually present (WAV, AIFF, AU, ...) and those are decoded and returned, with a note
  saying so (see `notes` below).
  If not a single frame is present, AudioError "<path>: truncated, the header promises audio the
  file does not hold (<libsndfile's note>)". An Ogg stream cut short counts as this case too:
  libsndfile cannot find its end and reports no frames at all.
- compressed data the decoder cannot get through (a truncated or damaged FLAC loses sync):
  AudioError "<path>: corrupt or truncated audio data after <n> frames (<libsndfile's reason>)";
  nothing partial is returned, as libsndfile does not say which samples of the failed read are good.
- valid file with 0 frames: an empty float32 array. Empty audio is valid; the caller decides what
  it means (FSDKaggle2018's test set has three such clips).
- all-zero audio: returned as is; silence is valid audio.
- NaN or infinite samples (float WAV): replaced by 0 before resampling, which would otherwise smear
  them over the whole clip.
- samples beyond [-1, 1] (float files, or resampling overshoot on full-scale audio): clipped to
  [-1, 1], the range callers rely on.
- unusual sample rate (below 8 kHz or above 96 kHz): resampled like any other.
- implausible sample rate, outside 1 kHz to 768 kHz (a corrupt header): AudioError "<path>:
  implausible sample rate <rate> Hz". A rate of 0 never gets this far: libsndfile refuses such a
  header when opening, which reads "not a readable audio file (... SF_INFO struct incomplete.)".

`audio_info` reads only the header, so it raises every error above except "corrupt or truncated
audio data", which shows only while decoding.

Nothing is changed silently: given a `notes` list, `load_audio` appends one line for each thing
the caller should tell the user: a file cut to `max_seconds`, a file shorter than its header says.
"""

import numbers
import os
import stat
import struct

import numpy as np
import soundfile
import soxr

from competition.errors import KitError

# Slowest and fastest sample rates taken as real; anything else is a corrupt header. 768 kHz is
# the highest rate recording hardware offers.
MIN_PLAUSIBLE_SAMPLE_RATE = 1_000
MAX_PLAUSIBLE_SAMPLE_RATE = 768_000

# soxr's 'HQ' (20-bit precision): about the cost of the 16-bit qualities, cheaper than 'QQ' for the
# common 2:1 case, while 'VHQ' costs more for precision far below what the features keep.
RESAMPLE_QUALITY = "HQ"

# Frames decoded per read call. It bounds the memory a header promising absurdly many frames can
# make us allocate before decoding fails; a typical clip is read in one call.
_READ_BLOCK_FRAMES = 1 << 22

# Header bytes searched for a WAV file's `data` chunk on the fast path, and its format tags.
_WAV_HEADER_BYTES = 1 << 16
_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE

# How libsndfile's header log notes a file cut short: a size field the file cannot back reads
# "data : 8820 (should be 0)", an Ogg stream that stops early "File ended unexpectedly".
_TRUNCATION_NOTES = ("(should be ", "ended unexpectedly")


class AudioError(KitError, ValueError):
    """Raised with a message that names the file and the problem."""


def audio_info(path) -> tuple[int, int, int]:
    """Return (sample_rate, n_frames, n_channels) of an audio file, reading only its header.

    For WAV and similar uncompressed formats n_frames counts the frames actually present, so a
    truncated file reports fewer than its header promised; for FLAC it is the header's own count.
    Raises AudioError as described in the module docstring.
    """
    with _open_sound_file(path) as sound_file:
        return sound_file.samplerate, sound_file.frames, sound_file.channels


def load_audio(path, sample_rate: int, *, max_seconds: float | None = None,
               notes: list[str] | None = None) -> np.ndarray:
    """Decode an audio file to float32 mono in [-1, 1] at `sample_rate` Hz.

    Channels are averaged and the audio is resampled with soxr. With `max_seconds`, only that
    much of the start of the file is decoded. The result may have length 0. Raises AudioError
    for a file it cannot use (see the module docstring) and ValueError for bad arguments; appends
    to `notes` what was cut or missing.
    """
    notes = [] if notes is None else notes
    if not (isinstance(sample_rate, numbers.Integral) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if max_seconds is not None and not max_seconds >= 0:  # `not >=` also rejects NaN
        raise ValueError(f"max_seconds must be None or >= 0, got {max_seconds!r}")

    pcm16 = _read_plain_pcm16_wav(path, max_seconds, notes)
    if pcm16 is not None:
        # Integer samples scaled by 1/32768 are finite and inside [-1, 1): nothing to repair or clip
        # unless resampling overshoots.
        file_rate, samples = pcm16
        if file_rate == sample_rate or not samples.size:
            return samples
        return np.clip(soxr.resample(samples, file_rate, sample_rate, quality=RESAMPLE_QUALITY), -1.0, 1.0)

    with _open_sound_file(path) as sound_file:
        file_rate = sound_file.samplerate
        n_frames = sound_file.frames
        truncation_note = _truncation_note(sound_file.extra_info, prefer_data=True)
        if truncation_note:
            notes.append(f"shorter than its header says: {n_frames / file_rate:.2f} s present ({truncation_note})")
        n_frames = _cut(n_frames, file_rate, max_seconds, notes)
        samples = _read_mono(sound_file, n_frames, path)

    if not np.isfinite(samples).all():  # the check is far cheaper than an unconditional repair
        np.nan_to_num(samples, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    if file_rate != sample_rate and samples.size:
        samples = soxr.resample(samples, file_rate, sample_rate, quality=RESAMPLE_QUALITY)
    return np.clip(samples, -1.0, 1.0, out=samples)


def _cut(n_frames: int, rate: int, max_seconds: float | None, notes: list[str]) -> int:
    """The frames to decode: all, or the first max_seconds' worth, noted when that cuts the file."""
    if max_seconds is None or n_frames <= max_seconds * rate:
        return n_frames
    notes.append(f"cut to its first {max_seconds:g} s of {n_frames / rate:.1f} s (max_seconds)")
    return round(max_seconds * rate)


def _read_plain_pcm16_wav(path, max_seconds: float | None,
                          notes: list[str] | None = None) -> tuple[int, np.ndarray] | None:
    """(sample rate, mono float32 samples) of a whole, ordinary 16-bit PCM WAV file, or None.

    The common case (Freesound's and UrbanSound8K's clips) read without libsndfile: parsing the RIFF
    header here and reading the samples into an array costs much less than opening the file with
    soundfile (`make bench` times decoding). "Ordinary" is strict: RIFF/WAVE, a 16-bit integer
    PCM `fmt ` chunk (plain or WAVE_FORMAT_EXTENSIBLE) before a nonempty `data` chunk of whole
    frames that the file holds entirely, within the first 64 KiB. Anything else, truncated files
    included, returns None and goes through libsndfile, which owns every error message; the
    samples are identical either way (tests/test_audio.py compares them).
    """
    try:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode) or status.st_size < 44:
            return None
        with open(path, "rb") as handle:
            head = handle.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"WAVE":  # other formats leave after 12 bytes
                return None
            layout = _pcm16_wav_layout(head + handle.read(_WAV_HEADER_BYTES - 12), status.st_size)
            if layout is None:
                return None
            rate, channels, data_offset, n_frames = layout
            cut: list[str] = []
            n_frames = _cut(n_frames, rate, max_seconds, cut)
            frames = np.empty((n_frames, channels), dtype="<i2")
            handle.seek(data_offset)
            if handle.readinto(frames) != frames.nbytes:
                return None
    except OSError:
        return None  # libsndfile's path reports it
    if notes is not None:  # only once the fast path succeeds; otherwise libsndfile's path notes it
        notes.extend(cut)
    samples = np.multiply(frames, np.float32(1 / 32768), dtype=np.float32)
    return rate, _mixed_down(samples, channels)


def _pcm16_wav_layout(head: bytes, file_size: int) -> tuple[int, int, int, int] | None:
    """(sample rate, channels, data offset, frames) from the start of a RIFF/WAVE file (its first 12
    bytes checked by the caller) that is an ordinary 16-bit PCM WAV, or None."""
    position, fmt = 12, None
    while position + 8 <= len(head):
        chunk_id, size = head[position:position + 4], int.from_bytes(head[position + 4:position + 8], "little")
        body = position + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + size > len(head):
                return None
            tag, channels, rate = struct.unpack_from("<HHI", head, body)
            block_align, bits = struct.unpack_from("<HH", head, body + 12)
            if tag == _WAVE_FORMAT_EXTENSIBLE and size >= 40:
                tag = int.from_bytes(head[body + 24:body + 26], "little")  # the SubFormat GUID's first field
            if tag != _WAVE_FORMAT_PCM or bits != 16 or channels < 1 or block_align != 2 * channels:
                return None
            if not MIN_PLAUSIBLE_SAMPLE_RATE <= rate <= MAX_PLAUSIBLE_SAMPLE_RATE:
                return None
            fmt = (rate, channels)
        elif chunk_id == b"data":
            if fmt is None or size == 0 or size % (2 * fmt[1]) or body + size > file_size:
                return None
            return fmt[0], fmt[1], body, size // (2 * fmt[1])
        position = body + size + (size & 1)  # chunks are padded to an even length
    return None


def _open_sound_file(path) -> soundfile.SoundFile:
    """Open `path` with libsndfile, turning every way that can fail into an AudioError."""
    # stat, not open: an extra open is a sizeable share of a WAV clip's whole decode.
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise AudioError(f"{path}: file not found") from None
    except OSError as error:
        raise AudioError(f"{path}: cannot open ({error.strerror})") from None
    if stat.S_ISDIR(status.st_mode):
        raise AudioError(f"{path}: not a file (a directory)")
    if status.st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")

    try:
        sound_file = soundfile.SoundFile(path)
    except soundfile.LibsndfileError as error:
        _raise_if_unopenable(path)
        raise AudioError(f"{path}: not a readable audio file ({error.error_string})") from None

    problem = None
    if not MIN_PLAUSIBLE_SAMPLE_RATE <= sound_file.samplerate <= MAX_PLAUSIBLE_SAMPLE_RATE:
        problem = f"implausible sample rate {sound_file.samplerate} Hz"
    elif sound_file.frames == 0:
        truncation_note = _truncation_note(sound_file.extra_info)
        if truncation_note:
            problem = (
                f"truncated, the header promises audio the file does not hold ({truncation_note})"
            )
    if problem:
        sound_file.close()
        raise AudioError(f"{path}: {problem}")
    return sound_file


def _raise_if_unopenable(path) -> None:
    """The OS's own reason (permission denied, ...) where libsndfile only says "System error"."""
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise AudioError(f"{path}: cannot open ({error.strerror})") from None


def _truncation_note(libsndfile_log: str, *, prefer_data: bool = False) -> str | None:
    """The line of libsndfile's header log showing the file was cut short, or None."""
    lines = [line.strip() for line in libsndfile_log.splitlines() if any(note in line for note in _TRUNCATION_NOTES)]
    if prefer_data:  # the data chunk's own line says how much audio is missing, the RIFF line only bytes
        return next((line for line in lines if line.startswith("data")), lines[0] if lines else None)
    return lines[0] if lines else None


def _read_mono(sound_file: soundfile.SoundFile, n_frames: int, path) -> np.ndarray:
    """Decode up to `n_frames` frames from the current position, averaged over channels."""
    # 16-bit PCM (Freesound's and UrbanSound8K's WAV) is read as integers and scaled here: libsndfile's
    # own conversion to float costs several times more. The scale is its own, 1/32768, so the samples are the same.
    read_type = "int16" if sound_file.subtype == "PCM_16" else "float32"
    blocks = []
    n_decoded = 0
    try:
        while n_decoded < n_frames:
            n_asked = min(n_frames - n_decoded, _READ_BLOCK_FRAMES)
            block = sound_file.read(n_asked, dtype=read_type, always_2d=True)
            blocks.append(block)
            n_decoded += len(block)
            if len(block) < n_asked:  # the file ended early
                break
    except soundfile.LibsndfileError as error:
        raise AudioError(
            f"{path}: corrupt or truncated audio data after {n_decoded} frames"
            f" ({error.error_string})"
        ) from None

    if not blocks:
        return np.empty(0, dtype=np.float32)
    frames = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    if read_type == "int16":
        frames = np.multiply(frames, np.float32(1 / 32768), dtype=np.float32)
    return _mixed_down(frames, sound_file.channels)


def _mixed_down(frames: np.ndarray, channels: int) -> np.ndarray:
    """(frames, channels) float32 averaged to mono."""
    if channels == 1:
        return frames[:, 0]
    # A matrix-vector product averages far faster than frames.mean(axis=1) over so short an axis.
    return frames @ np.full(channels, 1 / channels, dtype=np.float32)
