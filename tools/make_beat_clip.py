"""Make `samples/beat.mov`: the pan of `samples/pan.mov` (its video packets copied: the same PNG frames) with a
generated soundtrack, silent for the first second and four drum hits in the second, for the audio-reactive example.

    python tools/make_beat_clip.py

Each hit is a low thump (a 60 -> 40 Hz sine) and a short noise burst, both decaying within 0.2 s; seeded, so the
file comes out the same every time on one PyAV.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RATE = 22050
LENGTH = 2.0
HITS = (1.0, 1.25, 1.5, 1.75)


def soundtrack() -> np.ndarray:
    t = np.arange(int(RATE * LENGTH)) / RATE
    noise = np.random.default_rng(29).standard_normal(t.size)
    sound = np.zeros_like(t)
    for hit in HITS:
        after = t - hit
        on = after >= 0
        decay = np.exp(-np.where(on, after, 0) / 0.06) * on
        thump = np.sin(2 * np.pi * (60 * after - 50 * after**2)) * decay
        sound += 0.6 * thump + 0.25 * noise * np.exp(-np.where(on, after, 0) / 0.02) * on
    return (sound / np.abs(sound).max() * 0.8).astype(np.float32)


def main() -> None:
    source_path, output = ROOT / "samples" / "pan.mov", ROOT / "samples" / "beat.mov"
    sound = soundtrack()
    with av.open(str(source_path)) as source, av.open(str(output), "w") as container:
        video_in = source.streams.video[0]
        video_out = container.add_stream_from_template(video_in)
        audio = container.add_stream("aac", rate=RATE, layout="mono")
        for packet in source.demux(video_in):
            if packet.dts is None:
                continue
            packet.stream = video_out
            container.mux(packet)
        chunk = 1024
        for start in range(0, sound.size, chunk):
            frame = av.AudioFrame.from_ndarray(sound[None, start : start + chunk], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    print(f"wrote {output} ({output.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
