"""Rewrite the README's table of command-line flags from the parser (dream_core.cli.flags_markdown).

    python tools/build_readme.py

The table sits between `<!-- cli-flags -->` and `<!-- /cli-flags -->`; tests fail
when it differs from what this writes.
"""

from __future__ import annotations

from pathlib import Path

from dream_core.cli import flags_markdown

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- cli-flags -->", "<!-- /cli-flags -->"


def with_flags_table(text: str) -> str:
    """The README text with the block between the markers replaced by the current table."""
    head, found, rest = text.partition(START)
    if not found or END not in rest:
        raise SystemExit(f"README.md lacks the markers {START} ... {END}")
    return f"{head}{START}\n{flags_markdown()}\n{END}{rest.partition(END)[2]}"


if __name__ == "__main__":
    README.write_text(with_flags_table(README.read_text()))
    print(f"wrote the flags table into {README.name}")
