"""N-MNIST (Orchard et al. 2015), neuromorphic: MNIST digits recorded by an event camera.

Layout (the official ``Train.zip`` / ``Test.zip`` unpacked): ``data_dir/Train/<digit>/*.bin``
and ``data_dir/Test/<digit>/*.bin``.  Each ``.bin`` file is a sequence of 40-bit
events, 5 bytes each: ``x`` (byte 0), ``y`` (byte 1), polarity (bit 7 of byte
2) and a 23-bit timestamp in µs (bits 6–0 of byte 2, then bytes 3 and 4, big
endian).  The sensor is 34 × 34 pixels.

Each recording becomes a static *event-count frame* of shape ``(2, 34, 34)``:
``x[p, y, x]`` = number of events of polarity ``p`` at pixel ``(x, y)``, divided
by the recording's largest count (so values lie in ``[0, 1]``); timing is
discarded.  A file whose size is not a multiple of 5 bytes, or with an address
outside the sensor, raises :class:`~conserve_verified.errors.InvalidArgument`
naming the file.
"""

from __future__ import annotations

import pathlib

import numpy as np

from ..errors import InvalidArgument

__all__ = ["SENSOR", "event_frame", "load_nmnist_arrays", "read_events"]

#: Sensor size (pixels per side).
SENSOR = 34


def read_events(path: pathlib.Path) -> np.ndarray:
    """Events of one file as an int64 array of rows ``(x, y, polarity, timestamp_us)``.

    Identity: for bytes ``b0..b4`` of an event, ``x = b0``, ``y = b1``,
    ``p = b2 >> 7`` and ``t = ((b2 & 0x7F) << 16) | (b3 << 8) | b4``.
    """
    try:
        raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as exc:
        raise InvalidArgument("N-MNIST file", str(path), f"cannot be read: {exc}") from None
    if raw.size % 5:
        raise InvalidArgument(
            "N-MNIST file", str(path), f"has {raw.size} bytes, not a multiple of 5 (40-bit events)"
        )
    ev = raw.reshape(-1, 5).astype(np.int64)
    x, y, b2 = ev[:, 0], ev[:, 1], ev[:, 2]
    t = ((b2 & 0x7F) << 16) | (ev[:, 3] << 8) | ev[:, 4]
    if ev.size and (x.max() >= SENSOR or y.max() >= SENSOR):
        raise InvalidArgument(
            "N-MNIST file",
            str(path),
            f"address ({int(x.max())}, {int(y.max())}) outside the {SENSOR}x{SENSOR} sensor",
        )
    return np.stack([x, y, b2 >> 7, t], axis=1)


def event_frame(events: np.ndarray) -> np.ndarray:
    """``(2, 34, 34)`` float32 event counts per polarity and pixel, divided by their maximum.

    Identity: ``frame * max_count`` sums to the number of events; an empty recording
    gives zeros.
    """
    frame = np.zeros((2, SENSOR, SENSOR), dtype=np.float32)
    if events.size:
        np.add.at(frame, (events[:, 2], events[:, 1], events[:, 0]), 1.0)
        frame /= frame.max()
    return frame


def _split(root: pathlib.Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    folder = root / name
    frames, labels = [], []
    for digit in range(10):
        d = folder / str(digit)
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.bin")):
            frames.append(event_frame(read_events(f)))
            labels.append(digit)
    if not frames:
        raise InvalidArgument(
            "data_dir", str(root), f"has no N-MNIST recordings {name}/<digit>/*.bin"
        )
    return np.stack(frames), np.asarray(labels, dtype=np.int64)


def load_nmnist_arrays(
    data_dir: pathlib.Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: event-count frames ``(N, 2, 34, 34)``, labels."""
    x_tr, y_tr = _split(data_dir, "Train")
    x_te, y_te = _split(data_dir, "Test")
    return x_tr, y_tr, x_te, y_te
