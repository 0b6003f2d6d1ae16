"""Features of one clip: log-mel, MFCC or framed waveform, from the decoded signal.

The log-mel spectrogram is librosa's (`melspectrogram` with a centred, zero-padded periodic Hann
STFT, Slaney mel filters, `power_to_db` with amin 1e-10, no top_db) computed in float32 with the
window, filterbank and DCT matrices built once per process, and equal to librosa's within float32
rounding (tests/test_features.py checks this; `make bench` times both).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from competition.config import FeatureConfig

AMIN = 1e-10  # power_to_db's floor: silence reads -100 dB


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) float32: librosa.filters.mel's Slaney-scale, Slaney-normalised
    triangles, rebuilt in numpy because importing librosa.filters (and scipy.signal) costs a second."""
    f_sp = 200.0 / 3                        # Slaney's mel scale: linear below 1 kHz, log above
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp

    def hz_to_mel(hz):
        hz = np.asarray(hz, np.float64)
        return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep,
                        hz / f_sp)

    def mel_to_hz(mel):
        return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    ramps = edges[:, None] - fft_hz[None, :]
    widths = np.diff(edges)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _spectrogram_matrices(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float,
                          n_mfcc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(window, sparse mel basis, DCT matrix), float32, built once per parameter set. The mel basis
    is sparse (each mel band spans a few FFT bins; 3% of its entries are nonzero), which cuts the
    filterbank product's cost against a dense matmul."""
    import scipy.fft
    import scipy.sparse

    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)  # periodic Hann
    mel_basis = scipy.sparse.csr_matrix(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax))
    dct = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc]  # librosa.feature.mfcc's
    return window, mel_basis, np.ascontiguousarray(dct.T.astype(np.float32))


def log_mel(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """(frames, n_mels) float32 log-mel power in dB of a mono float32 signal at config.sample_rate."""
    import scipy.fft

    window, mel_basis, _ = _spectrogram_matrices(
        config.sample_rate, config.n_fft, config.n_mels, config.fmin,
        config.fmax or config.sample_rate / 2, config.n_mfcc)
    n_fft, hop = config.n_fft, config.hop_length
    # Empty and very short clips are padded with silence, as before centring, so every clip has frames.
    length = max(len(signal), n_fft)
    padded = np.zeros(length + 2 * (n_fft // 2), np.float32)
    padded[n_fft // 2: n_fft // 2 + len(signal)] = signal
    # Frames as columns: the spectrum comes out (bins, frames), the C-contiguous layout the sparse
    # product reads without copying it first.
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop].T * window[:, None]
    spectrum = scipy.fft.rfft(frames, axis=0, overwrite_x=True)  # complex64 (bins, frames)
    squares = spectrum.view(np.float32)  # re, im, re, im, ... along each row
    np.square(squares, out=squares)
    power = squares[:, 0::2] + squares[:, 1::2]
    mel = np.ascontiguousarray((mel_basis @ power).T)
    np.maximum(mel, AMIN, out=mel)
    np.log10(mel, out=mel)
    mel *= 10.0
    return mel


def compute_features(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """(frames, bins) float32 features of a mono float32 signal at config.sample_rate."""
    if config.kind == "wave":
        hop = config.hop_length
        n_frames = max(1, -(-len(signal) // hop))
        padded = np.zeros(n_frames * hop, np.float32)
        padded[: len(signal)] = signal
        return padded.reshape(n_frames, hop)
    logmel = log_mel(np.asarray(signal, np.float32), config)
    if config.kind == "mfcc":
        _, _, dct = _spectrogram_matrices(config.sample_rate, config.n_fft, config.n_mels, config.fmin,
                                          config.fmax or config.sample_rate / 2, config.n_mfcc)
        return logmel @ dct
    return logmel


def blank_features(config: FeatureConfig) -> np.ndarray:
    return compute_features(np.zeros(0, np.float32), config)


def decode(path: str | Path, config: FeatureConfig, notes: list[str] | None = None) -> np.ndarray:
    """The signal features are computed from: mono float32 at config.sample_rate, at most max_seconds
    (what was cut or missing appended to `notes`)."""
    from competition.audio import load_audio

    return load_audio(path, config.sample_rate, max_seconds=config.max_seconds, notes=notes)


def features_of_file(path: str | Path, config: FeatureConfig, notes: list[str] | None = None) -> np.ndarray:
    return compute_features(decode(path, config, notes), config)
