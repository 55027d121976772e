"""A video render's work folder: its dreamed frames on their way to the output, kept so a stopped render goes on.

`.OUTPUT.work` beside the output holds the job's identity (`job.json`: its arguments and its input files by
content), a frame PNG per dreamed frame and what the next frame needs (`state.pt`). Three things here keep an
output from ever mixing what it should not:

* one render at a time: the folder is locked while a render uses it, and a second render to the same output is
  refused in one line instead of clearing the first one's frames under it;
* another job (other arguments, or an input whose content changed) starts afresh;
* a damaged folder (a frame missing, cut short or unreadable) is found before it is used: a render goes on from
  the last frame whose predecessors are all whole, or starts afresh, and the output is never made from it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import types
from pathlib import Path

from .errors import DreamError
from .outputs import written_whole

fcntl: types.ModuleType | None
try:
    import fcntl
except ImportError:  # Windows: no advisory locks; renders to one output must not run at once there
    fcntl = None

PNG_START = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def whole_png(path: Path) -> bool:
    """Whether `path` is a PNG written to its end (signature and closing chunk), without decoding it."""
    try:
        with path.open("rb") as handle:
            start = handle.read(8)
            handle.seek(0, os.SEEK_END)
            if handle.tell() < len(PNG_START) + len(PNG_END):
                return False
            handle.seek(-len(PNG_END), os.SEEK_END)
            return start == PNG_START and handle.read() == PNG_END
    except OSError:
        return False


class WorkFolder:
    """The work folder of a render to `output`, locked from `open()` to `close()` (or the end of a `with` block)."""

    def __init__(self, output: Path, job: str) -> None:
        output = Path(output).resolve()  # `-o .` names the folder itself
        self.output = output
        self.path = output.parent / f".{output.name}.work"
        self.job = job
        self._lock: int | None = None

    def __enter__(self) -> WorkFolder:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def open(self) -> bool:
        """Lock the folder (made if need be) and keep its frames if they are this job's; True if they are."""
        self._take_lock()
        job_file = self.path / "job.json"
        if job_file.is_file() and job_file.read_text() == self.job:
            return True
        self.clear()
        with written_whole(job_file) as partial:
            partial.write_text(self.job)
        return False

    def _take_lock(self) -> None:
        for _ in range(5):  # the folder may be removed between making it and locking it: a finished render's
            self.path.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.path, os.O_RDONLY)
            if fcntl is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(handle)
                    raise DreamError(
                        f"Another render to {self.output} is running (it is using {self.path}); wait "
                        "for it to end, or write to another output."
                    ) from None
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == os.fstat(handle).st_ino:
                    self._lock = handle
                    return
            os.close(handle)
        raise DreamError(f"{self.path} keeps being removed by another program; write to another output.")

    def close(self) -> None:
        """Let go of the folder (its frames stay for the next run)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def restart(self) -> None:
        """Start the job afresh: the folder emptied, the job's identity written back."""
        self.clear()
        with written_whole(self.path / "job.json") as partial:
            partial.write_text(self.job)

    def clear(self) -> None:
        """Empty the folder (it stays, locked)."""
        for entry in self.path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def remove(self) -> None:
        """The output is complete: the folder goes."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.close()

    def frame(self, index: int) -> Path:
        return self.path / f"frame_{index:05d}.png"

    def whole_frames(self, count: int) -> int:
        """How many of the first `count` frames are there and whole, counted from frame 0 up to the first that
        is not."""
        for index in range(count):
            if not whole_png(self.frame(index)):
                return index
        return count

    def check_frames(self, count: int) -> None:
        """Refuse to make an output from frames 0..count-1 unless all are whole; a damaged folder is cleared, so
        the same command run again renders afresh instead of failing the same way."""
        whole = self.whole_frames(count)
        if whole < count:
            self.clear()
            raise DreamError(
                f"Frame {whole} of the render in {self.path} is missing or damaged (was the folder "
                "changed during the render?). The folder was cleared: run the same command again to "
                "render afresh."
            )
