"""Text from a registry made safe to print on a terminal or in a CI log.

A registry chooses its error messages, platform fields and label values. Printed as they are,
a control character could rewrite the terminal, and a line beginning with ``::`` is a GitHub
Actions workflow command (``::add-mask::``, ``::stop-commands::``...). Every such character is
written as a Python escape instead, so each piece of server text stays on one line.
"""

from __future__ import annotations

WORKFLOW_COMMAND = "::"


def escape_char(char: str) -> str:
    r"""``char`` as a Python escape (``\x1b``, ``\u202e``), if it must not be printed as is.

    What Python does not call printable is escaped: controls, format characters (bidi overrides,
    zero-width), surrogates, private and unassigned code points, every separator but the space.
    """
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every control, format and line-breaking character escaped: one line."""
    if text.isprintable() and text.isascii():
        return text  # the common case, quickly
    return "".join(escape_char(char) for char in text)


def safe_line(line: str) -> str:
    """One printable line that cannot begin a GitHub Actions workflow command."""
    line = printable(line)
    stripped = line.lstrip()
    if stripped.startswith(WORKFLOW_COMMAND):
        indent = len(line) - len(stripped)
        line = line[:indent] + "\\x3a" + stripped[1:]
    return line


def safe_lines(text: str) -> str:
    """Multi-line ``text`` with :func:`safe_line` applied to every line; line breaks kept."""
    return "\n".join(safe_line(line) for line in text.split("\n"))
