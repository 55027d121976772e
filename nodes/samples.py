"""The pack's sample pictures and training folder, for example workflows on a fresh ComfyUI.

Example workflows name a sample the way any picture in ComfyUI's input folder is named,
`deepdream_astronaut.png` (a file of `samples/` under the name `deepdream_NAME`, at the top
of `input/`: the core lists only the top level there, and the 2026 frontend flags a
Load Image or Load Video value missing from that list), so they use the core nodes and a
user swaps in a picture of their own as usual. The training folder is
`deepdream_samples/shapes`, and workflows saved with the earlier names
(`deepdream_samples/astronaut.png`) still find their files there. ComfyUI checks that the
file exists in `input/` before any node runs, so a prompt handler (ComfyUI calls these
for every queued prompt, before validation) copies the samples a prompt names into
`input/` when they are missing there. Nothing happens at import but
registering the handler; nothing already in `input/` is overwritten or deleted; a
prompt that names no sample is left alone. A small frontend extension asks for the
same when a workflow is opened, so Load Image shows its picture before the first run.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
PREFIX = "deepdream_samples"
"""The folder inside ComfyUI's input folder that holds the copied training folder (and earlier names' files)."""
TOP_PREFIX = "deepdream_"
"""A bundled file at the top of ComfyUI's input folder: `deepdream_NAME` for `samples/NAME`."""
ROUTE = "/deepdream/samples"
MAX_VALUES = 1000
"""The most widget values one request to ROUTE is read for."""


def _name(value: object) -> str | None:
    """A prompt value as a path inside the input folder: without ComfyUI's " [input]", with forward slashes."""
    if not isinstance(value, str):
        return None
    return value.strip().removesuffix("[input]").strip().replace("\\", "/")


def _top_level(name: str) -> bool:
    return name.startswith(TOP_PREFIX) and "/" not in name


def sample_path(value: object) -> Path | None:
    """The bundled file or folder a prompt value names (`deepdream_samples/NAME`), or None.

    ComfyUI's " [input]" annotation is allowed; names that would leave the samples
    folder ('..', absolute paths) name nothing.
    """
    name = _name(value)
    if name is None:
        return None
    if _top_level(name):  # deepdream_astronaut.png: a file of samples/
        path = SAMPLES_DIR / name[len(TOP_PREFIX) :]
        return path if path.is_file() and path.name != "README.md" else None
    parts = PurePosixPath(name).parts
    if len(parts) < 2 or parts[0] != PREFIX or any(part in ("..", ".", "") for part in parts[1:]):
        return None
    path = SAMPLES_DIR.joinpath(*parts[1:])
    return path if path.exists() and path.name != "README.md" else None


def named_samples(prompt: dict) -> list[tuple[Path, bool]]:
    """Bundled samples named by any input of an API-format prompt, each once, and whether each is named at the
    top of the input folder (`deepdream_NAME`) or inside `deepdream_samples/`."""
    found: dict[tuple[Path, bool], None] = {}
    for node in prompt.values():
        inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
        for value in inputs.values():
            path = sample_path(value)
            if path is not None:
                found[(path, _top_level(_name(value) or ""))] = None
    return list(found)


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for child in sorted(path.rglob("*")):
        if child.is_file():
            yield child


def copy_missing(sample: Path, input_dir: str | os.PathLike, top_level: bool = False) -> list[Path]:
    """Copy a bundled sample (a file, or a folder's files) into `input_dir/deepdream_samples`, or a file to
    `input_dir/deepdream_NAME` (`top_level`).

    Only files missing there are copied; an existing file, the user's or an earlier
    copy, is never replaced. Each file appears whole or not at all (written under a
    temporary name, then linked into place). Returns the files written.
    """
    written = []
    for source in _files(sample):
        if top_level:
            target = Path(input_dir, TOP_PREFIX + source.name)
        else:
            target = Path(input_dir, PREFIX, source.relative_to(SAMPLES_DIR))
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            shutil.copyfile(source, partial)
            try:
                os.link(partial, target)  # fails if the file appeared meanwhile: never overwrites
            except FileExistsError:
                continue
            except (NotImplementedError, PermissionError):  # a file system without hard links
                if target.exists():
                    continue
                os.replace(partial, target)
            written.append(target)
        finally:
            partial.unlink(missing_ok=True)
    return written


def provide_samples(request: dict, input_dir: str | os.PathLike) -> list[Path]:
    """Copy into `input_dir` the samples that a queued prompt request names and lacks."""
    prompt = request.get("prompt") if isinstance(request, dict) else None
    written = []
    for sample, top_level in named_samples(prompt if isinstance(prompt, dict) else {}):
        try:
            written += copy_missing(sample, input_dir, top_level)
        except OSError as error:
            log.warning(
                "DeepDream: could not copy the sample %s into ComfyUI's input folder (%s). Put it there by "
                "hand as %s/%s, or pick another picture.",
                sample.name,
                error,
                PREFIX,
                sample.name,
            )
    if written:
        log.info("DeepDream: copied %d sample file(s) into ComfyUI's input folder for this workflow.", len(written))
    return written


def provide_for_values(values: list, input_dir: str | os.PathLike) -> list[Path]:
    """Copy into `input_dir` the samples that a list of widget values (an opened workflow's) names."""
    inputs = {str(i): value for i, value in enumerate(values[:MAX_VALUES])}
    return provide_samples({"prompt": {"0": {"inputs": inputs}}}, input_dir)


def register_sample_provider() -> None:
    """Have ComfyUI's server run `provide_samples` on every queued prompt (inside ComfyUI only)."""
    try:
        import folder_paths
        from server import PromptServer
    except ImportError:
        return
    server = getattr(PromptServer, "instance", None)
    if server is None or not hasattr(server, "add_on_prompt_handler"):
        log.warning(
            "DeepDream: this ComfyUI has no prompt handlers; copy the pack's samples/ into "
            "input/%s to run the example workflows.",
            PREFIX,
        )
        return

    def handler(request: dict) -> dict:
        provide_samples(request, folder_paths.get_input_directory())
        return request

    server.add_on_prompt_handler(handler)
    routes = getattr(server, "routes", None)
    if routes is not None:
        from aiohttp import web

        @routes.post(ROUTE)
        async def provide_for_opened_workflow(request):
            # The frontend extension (web/js/samples.js) posts a workflow's string values when it opens one,
            # so Load Image shows the sample before the first run too.
            try:
                values = (await request.json()).get("values", [])
            except (ValueError, AttributeError):
                return web.json_response({"error": "expected {'values': [...]}"}, status=400)
            if not isinstance(values, list):
                return web.json_response({"error": "expected {'values': [...]}"}, status=400)
            return web.json_response({"copied": len(provide_for_values(values, folder_paths.get_input_directory()))})
