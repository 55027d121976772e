"""Writing results without ever losing the user's files.

Three rules, checked or kept for every file the command line and the engine write:

* never over an input: an output that is one of the inputs (same path, or the same file
  by inode through another path or a link), or a folder that holds one, is refused;
* never over an existing file unless asked (`overwrite`), and never two results to one
  name (`distinct_names`);
* whole or not at all: a file is written under a temporary name beside its final one
  and renamed into place only when complete (`written_whole`), so a failure, a full
  disk or a kill leaves nothing under the final name and the previous file untouched.

All checks run before any work (`check_outputs`), so nothing is refused after an hour
of dreaming.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import DreamError

PARTIAL = ".partial-"
"""Part of every temporary name: `.NAME.partial-PID-XXXX.SUFFIX`, hidden, beside the final file."""


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name one file: equal when resolved, or the same inode (hard links, other mounts)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_outputs(
    outputs: Iterable[Path],
    inputs: Iterable[Path],
    overwrite: bool,
    folders: Iterable[Path] = (),
) -> None:
    """Refuse, in one line and before any work, what would destroy or lose a file.

    `outputs` are the files a command will write; `folders` the folders it will fill
    (frames), which must not be or hold an input either. Existing outputs are refused
    unless `overwrite`; an existing non-empty frames folder too (it would keep stale
    frames of a longer run). Each output's folder must be writable (it is created now).
    """
    inputs = [Path(p) for p in inputs if p is not None]
    outputs = [Path(p) for p in outputs]
    folders = [Path(p) for p in folders]
    for output in outputs:
        for source in inputs:
            if _same(output, source):
                raise DreamError(f"The output {output} is the input {source}: it would be destroyed. "
                                 "Write to another file.")  # fmt: skip
    for folder in folders:
        for source in inputs:
            if _inside(source, folder) or _same(folder, source):
                raise DreamError(f"The output folder {folder} holds the input {source}: it would be overwritten. "
                                 "Write to another folder.")  # fmt: skip
    if not overwrite:
        existing = [p for p in outputs if p.exists()]
        existing += [f for f in folders if f.is_dir() and any(f.iterdir())]
        existing += [f for f in folders if f.exists() and not f.is_dir()]
        if existing:
            names = ", ".join(str(p) for p in existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3
                                                              else "")  # fmt: skip
            raise DreamError(f"{names} already exist{'s' if len(existing) == 1 else ''}; add --overwrite to "
                             "replace, or choose another output.")  # fmt: skip
    for place in {p.parent for p in outputs} | {f.parent for f in folders}:
        _check_writable(place)


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".deepdream-check-"):
            pass
    except OSError as error:
        raise DreamError(f"Cannot write into {folder}: {error.strerror or error}. Choose another output.") from error


def _usual_mode(path: Path, mode: int) -> None:
    """Give a temporary file or folder the permissions a plain open() or mkdir() would have (mkstemp's are
    private), so the renamed result is like any other file the user writes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def partial_path(final: Path) -> Path:
    """A fresh temporary name beside `final`, with its suffix (writers choose formats by it)."""
    final = Path(final)
    handle, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.stem}{PARTIAL}{os.getpid()}-",
                                    suffix=final.suffix)  # fmt: skip
    try:
        os.close(handle)
        _usual_mode(Path(name), 0o666)
    except BaseException:  # SIGTERM right here: no stray temporary file
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)


def partial_folder(final: Path) -> Path:
    """A fresh temporary folder beside `final`."""
    folder = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}{PARTIAL}{os.getpid()}-"))
    _usual_mode(folder, 0o777)
    return folder


@contextlib.contextmanager
def written_whole(final: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write `final` to; renamed onto `final` when the block ends without error.

    On any error, Ctrl-C or SIGTERM the temporary file is removed and `final` (if it was
    there) is untouched. Two writers of one file never interleave: each has its own
    temporary name, and the rename is atomic.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = None
    try:
        temporary = partial_path(final)
        yield temporary
        os.replace(temporary, final)
    except BaseException:
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink()
        raise


@contextlib.contextmanager
def folder_written_whole(final: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder to fill; it replaces `final` (and whatever was in it) only when complete."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_folder(final)
    try:
        yield temporary
        replace_folder(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def replace_folder(filled: Path, final: Path) -> None:
    """Put a filled temporary folder in the final one's place (an old one, allowed by --overwrite, goes:
    stale frames of a longer earlier run must not stay among the new ones)."""
    if final.exists():
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
        os.replace(final, old / final.name)
        os.replace(filled, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(filled, final)


def distinct_names(inputs: Sequence[Path], ending: str = "_dream.png") -> dict[Path, str]:
    """An output file name for every input, never the same for two: `NAME_dream.png`, with the
    input's suffix (`pic_jpg_dream.png`) and then its folder added where names would collide
    (a file given twice is one input)."""
    inputs = list(dict.fromkeys(inputs))
    def name(path: Path, level: int) -> str:
        parts = [path.stem]
        if level >= 1:
            parts.append(path.suffix.lstrip(".").lower() or "file")
        if level >= 2:
            parts.insert(0, path.parent.name or "root")
        return "_".join(parts) + ending

    names: dict[Path, str] = {}
    for level in range(3):
        chosen = {path: name(path, level) for path in inputs}
        counts: dict[str, int] = {}
        for value in chosen.values():
            counts[value.lower()] = counts.get(value.lower(), 0) + 1
        for path in inputs:
            if path not in names and (counts[chosen[path].lower()] == 1 or level == 2):
                names[path] = chosen[path]
    taken: dict[str, int] = {}
    for path in inputs:  # still equal (the same file given twice): number them
        key = names[path].lower()
        taken[key] = taken.get(key, 0) + 1
        if taken[key] > 1:
            names[path] = names[path].removesuffix(ending) + f"_{taken[key]}" + ending
    return names


def file_identity(path: Path) -> list:
    """A file as a resumable job remembers it: where, how large, when last changed."""
    stat = Path(path).stat()
    return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]


def job_text(args: Any, files: Iterable[Path]) -> str:
    """A command's identity for going on after a stop: its arguments (not how the work is spread, nor where it
    goes) and the files it reads. The same command on unchanged files gives the same text."""
    left_out = ("func", "overwrite", "verbose", "ray", "workers", "worker_threads", "inputs")
    job = {key: str(value) for key, value in sorted(vars(args).items()) if key not in left_out}
    job["files"] = [file_identity(path) for path in files]
    return json.dumps(job, sort_keys=True)
