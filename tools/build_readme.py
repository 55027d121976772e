"""Rewrite the README's tables made from code: the command-line flags (from the parser,
dream_core.cli.flags_markdown), the training options and the channel-picture options (from the option
table).

    python tools/build_readme.py

The tables sit between `<!-- cli-flags -->` / `<!-- /cli-flags -->` and
`<!-- train-options -->` / `<!-- /train-options -->` and `<!-- channel-options -->` /
`<!-- /channel-options -->`; tests fail when they differ from
what this writes.
"""

from __future__ import annotations

from pathlib import Path

from dream_core.cli import flags_markdown
from dream_core.options import CHANNEL_OPTIONS, TRAIN_OPTIONS, markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = {
    "cli-flags": flags_markdown,
    "train-options": lambda: markdown_table(options=TRAIN_OPTIONS),
    "channel-options": lambda: markdown_table(options=CHANNEL_OPTIONS),
}


def with_flags_table(text: str) -> str:
    """The README text with each block between its markers replaced by the current table."""
    for name, table in BLOCKS.items():
        start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
        head, found, rest = text.partition(start)
        if not found or end not in rest:
            raise SystemExit(f"README.md lacks the markers {start} ... {end}")
        text = f"{head}{start}\n{table()}\n{end}{rest.partition(end)[2]}"
    return text


if __name__ == "__main__":
    README.write_text(with_flags_table(README.read_text()))
    print(f"wrote the flags table into {README.name}")
