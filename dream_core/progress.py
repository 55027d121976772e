"""The command line's progress on stderr: a step bar for a dream, and one line for work counted in items (a
clip's frames, a cluster's images, lines or shots). Redrawn in place in a terminal; a line now and then in a log."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

import torch
from tqdm import tqdm


class ProgressBar:
    """An `on_progress` callback drawing tqdm's bar on stderr: steps done, rate and ETA; redrawn in a terminal,
    a line now and then in a log. `label` may change between calls (training shows its epoch and loss)."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr  # looked up now, not when the module was imported
        self.bar: tqdm | None = None

    def __call__(self, done: int, total: int, _preview: torch.Tensor | None = None) -> None:
        if self.bar is None:
            terminal = self.stream.isatty()
            self.bar = tqdm(
                total=total,
                desc=self.label,
                unit="step",
                file=self.stream,
                dynamic_ncols=terminal,
                mininterval=0.1 if terminal else 10.0,
                ascii=not terminal,
            )
        self.bar.total = total
        self.bar.set_description_str(self.label, refresh=False)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()
            self.bar = None


@dataclass
class ItemProgress:
    """One line for work counted in items: done (of how many, when known), time, ETA, and what else is said
    (`note`, e.g. how many workers)."""

    label: str
    total: int | None
    unit: str
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    first: int = 0
    """Items done before this run started (a job going on): not counted in the rate."""
    head: str = "{label}: {count} {unit}"
    """How the line starts (a clip's: 'frame 3/24')."""

    def line(self, note: str = "") -> str:
        elapsed = time.monotonic() - self.started
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        eta = ""
        if self.total and self.done > self.first:
            eta = f"  eta {elapsed / (self.done - self.first) * (self.total - self.done):.0f}s"
        start = self.head.format(label=self.label, count=count, unit=self.unit)
        return f"{start}{f'  {note}' if note else ''}  {elapsed:.0f}s{eta}"

    def show(self, note: str = "") -> None:
        tty = sys.stderr.isatty()
        print(("\r" if tty else "") + self.line(note), file=sys.stderr, end="" if tty else "\n", flush=True)

    def end(self) -> None:
        """After the last `show`: the terminal's line is left behind."""
        if sys.stderr.isatty():
            print(file=sys.stderr)


def after_bar(message: str) -> str:
    """A message on a line of its own after a progress bar that a terminal redraws in place."""
    return ("\n" if sys.stderr.isatty() else "") + message
