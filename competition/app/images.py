"""The spectrogram as a PNG: log-mel frames coloured and encoded with numpy and zlib.

One pixel per frame and mel band, low frequencies at the bottom; the page scales it and draws the
axes. Encoding the pixels directly is far cheaper than drawing a matplotlib figure, which would be a
large share of the time an answer takes.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

DYNAMIC_RANGE_DB = 80.0  # levels this far below the clip's loudest are drawn black

# A dark-to-bright palette (after matplotlib's magma): anchor colours, interpolated to 256 levels.
_ANCHORS = np.array([[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]],
                    np.float64)
PALETTE = np.stack([np.interp(np.linspace(0, len(_ANCHORS) - 1, 256), np.arange(len(_ANCHORS)), _ANCHORS[:, c])
                    for c in range(3)], axis=1).round().astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of an (height, width, 3) uint8 array."""
    height, width, _ = rgb.shape
    rows = np.zeros((height, 1 + 3 * width), np.uint8)  # each row: filter type 0, then its pixels
    rows[:, 1:] = rgb.reshape(height, 3 * width)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, truecolour, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def spectrogram_png(logmel: np.ndarray) -> bytes:
    """(frames, mels) dB -> PNG, mels high and frames wide, scaled over DYNAMIC_RANGE_DB below the peak."""
    image = np.asarray(logmel, np.float32).T[::-1]
    if not image.size:
        image = np.zeros((1, 1), np.float32)
    top = float(image.max())
    levels = np.clip((image - (top - DYNAMIC_RANGE_DB)) / DYNAMIC_RANGE_DB, 0.0, 1.0)
    return png_bytes(PALETTE[(levels * 255).round().astype(np.uint8)])
