"""Writing results without ever losing the user's files.

Four rules, checked or kept for every file the command line and the engine write:

* never over an input: an output that is one of the inputs (same path, or the same file
  by inode through another path or a link), or a folder that holds one, is refused;
* never over an existing file unless asked (`overwrite`), and never two results to one
  name (`distinct_names`);
* whole or not at all: a file is written under a temporary name beside its final one
  and renamed into place only when complete (`written_whole`), so a failure, a full
  disk or a kill leaves nothing under the final name and the previous file untouched;
* only its own: in a folder, a command replaces or removes only the files it writes
  there (named outputs, or `FRAME` files), whatever else the folder holds.

All checks run before any work (`check_outputs`), so nothing is refused after an hour
of dreaming.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

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


MAX_NAME_BYTES = 255
"""The longest file name most file systems take (ext4, APFS, NTFS: 255 bytes or characters)."""

FRAME = re.compile(r"frame_\d{4,}\.png")
"""The files a frames folder's owner writes (`frame_00012.png`): the only ones it ever replaces or removes there."""


def own_frames(folder: Path) -> list[Path]:
    """The frames a command writing PNG frames into `folder` made there (or would have): nothing else in it."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if FRAME.fullmatch(p.name) and not p.is_dir())


def check_outputs(
    outputs: Iterable[Path],
    inputs: Iterable[Path],
    overwrite: bool,
    folders: Iterable[Path] = (),
    replace_hint: str = "allow replacing them",
) -> None:
    """Refuse, in one line and before any work, what would destroy or lose a file.

    `outputs` are the files a command will write; `folders` the folders it will fill with PNG frames (`FRAME`
    names), which must not be or hold an input either. Existing outputs, and frames already in a folder, are
    refused unless `overwrite`; with it, only those files are replaced (`fill_frames`): whatever else a folder
    holds stays. Each output's folder must be writable (it is created now), and each name short enough to
    write. `replace_hint`: how the host allows replacing (the command line's flag).
    """
    inputs = [Path(p) for p in inputs if p is not None]
    outputs = [Path(p) for p in outputs]
    folders = [Path(p) for p in folders]
    for output in outputs:
        check_name(output)
        if output.is_dir():
            raise DreamError(f"The output {output} is a folder; give a file name (or another folder's).")
        for source in inputs:
            if _same(output, source):
                raise DreamError(
                    f"The output {output} is the input {source}: it would be destroyed. Write to another file."
                )
    for folder in folders:
        for source in inputs:
            if _inside(source, folder) or _same(folder, source):
                raise DreamError(
                    f"The output folder {folder} holds the input {source}: it would be overwritten. "
                    "Write to another folder."
                )
        if folder.exists() and not folder.is_dir():
            raise DreamError(f"The output folder {folder} is a file; give a folder name (or another file's).")
    if not overwrite:
        existing = [p for p in outputs if p.exists()] + [f for f in folders if own_frames(f)]
        if existing:
            names = ", ".join(str(p) for p in existing[:3]) + (
                f" and {len(existing) - 3} more" if len(existing) > 3 else ""
            )
            raise DreamError(
                f"{names} already exist{'s' if len(existing) == 1 else ''}; {replace_hint}, or choose another output."
            )
    for place in {p.parent for p in outputs} | {f.parent for f in folders}:
        _check_writable(place)


def check_name(path: Path) -> None:
    """Refuse an output name longer than file systems take (asked about before it is used in any other way)."""
    size = len(path.name.encode("utf-8", "surrogateescape"))
    if size > MAX_NAME_BYTES:
        raise DreamError(
            f"The output name {path.name[:40]}... is {size} bytes long; file systems take at most "
            f"{MAX_NAME_BYTES}. Choose a shorter name."
        )


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


def _short(stem: str) -> str:
    """`stem` cut so that a temporary name made from it (`.STEM.partial-PID-XXXXXXXX.SUFFIX`) stays within
    `MAX_NAME_BYTES` for any final name that does."""
    room = MAX_NAME_BYTES - 100
    return stem.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def sweep_dead_partials(final: Path, stem: str) -> None:
    """Remove what a killed earlier writer of `final` left (`.STEM.partial-PID-...` of a process that is gone):
    a kill -9 cannot clean up after itself, so the next writer of the same file does."""
    prefix = f".{_short(stem)}{PARTIAL}"
    for leftover in final.parent.glob(f"{glob.escape(prefix)}*"):
        pid = leftover.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    leftover.unlink()


def partial_path(final: Path) -> Path:
    """A fresh temporary name beside `final`, with its suffix (writers choose formats by it)."""
    final = Path(final)
    sweep_dead_partials(final, final.stem)
    handle, name = tempfile.mkstemp(
        dir=final.parent, prefix=f".{_short(final.stem)}{PARTIAL}{os.getpid()}-", suffix=final.suffix
    )
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
    sweep_dead_partials(final, final.name)
    folder = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{_short(final.name)}{PARTIAL}{os.getpid()}-"))
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
def frames_written_whole(final: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder to fill with `FRAME` files; they go into `final` only when the block ends without error
    (`fill_frames`), and a failure leaves `final` as it was."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_folder(final)
    try:
        yield temporary
        fill_frames(final, own_frames(temporary))
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def fill_frames(final: Path, frames: Sequence[Path]) -> None:
    """Move finished `frames` into the folder `final`. Frames of an earlier, longer run (replaced as asked) go:
    they must not stay among the new ones. Nothing else in `final` is touched: the folder may hold the user's
    other files, and only this command's own are ever removed."""
    final.mkdir(parents=True, exist_ok=True)
    names = {frame.name for frame in frames}
    for stale in own_frames(final):
        if stale.name not in names:
            stale.unlink()
    for frame in frames:
        os.replace(frame, final / frame.name)


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
    """A file as a resumable job remembers it: where, how large, and a digest of its content (size and time can
    lie: a file rewritten and given its old time back with `touch -r` is another file)."""
    path = Path(path)
    if path.is_dir():  # a folder of frames: its files are named one by one
        return [str(path.resolve()), "folder"]
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return [str(path.resolve()), path.stat().st_size, digest.hexdigest()]
