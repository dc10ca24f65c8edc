"""What a failed build raises: the step that failed and the lines of its log that say why.

The open tools write thousands of log lines; a user needs the two or three that matter (Yosys'
parser error, nextpnr's over-100% utilisation line and its placement error, the clock that missed
its target). The exceptions carry those lines, the log's path and the step, and their first line of
text is self-contained so that a one-line error printer (hwsim.cli.user_errors) still says enough.
"""

from __future__ import annotations

import re
from pathlib import Path


class BitstreamError(RuntimeError):
    """A step of the bitstream flow failed (synthesis, place and route, packing)."""

    def __init__(self, step: str, message: str, log: str | Path | None = None, excerpt: list[str] | tuple = ()):
        self.step, self.message, self.log, self.excerpt = step, message, str(log) if log else None, list(excerpt)
        first = f"{step} failed: {message}"
        if self.excerpt:
            first += f": {self.excerpt[-1].strip()}"
        lines = [first + (f" (log: {self.log})" if self.log else "")]
        lines += [f"  | {line}" for line in self.excerpt]
        super().__init__("\n".join(lines))


class DesignDoesNotFit(BitstreamError):
    """The placer ran out of some resource (LUTs, block RAMs, multipliers, I/O) on the device."""


class TimingNotMet(BitstreamError):
    """No seed reached the requested clock; the report and the bitstream at the achieved Fmax are
    still written."""


class ToolMissing(BitstreamError):
    """A yowasp executable is not installed."""


_ERROR = re.compile(r"\bERROR\b|\bError\b|\berror:")  # Yosys/nextpnr "ERROR:", Trellis "Error:"
_OVERFULL = re.compile(r"^\s*(Info:\s*)?\s*(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%")
_NO_FIT = re.compile(r"no BELs remaining|not enough|exceeds|too many|Unable to place", re.IGNORECASE)


def overfull_lines(lines: list[str]) -> list[str]:
    """nextpnr utilisation lines of resources used beyond what the device has."""
    out = []
    for line in lines:
        m = _OVERFULL.match(line)
        if m and int(m.group(3)) > int(m.group(4)):
            out.append(line.rstrip())
    return out


def excerpt(log_text: str, context: int = 2, limit: int = 12) -> list[str]:
    """The error lines of a tool log with ``context`` lines before each, at most ``limit`` lines (the
    last ones: tools end with the fatal error)."""
    lines = log_text.splitlines()
    keep: list[int] = []
    for i, line in enumerate(lines):
        if _ERROR.search(line):
            keep += range(max(0, i - context), i + 1)
    picked = sorted(set(keep))
    if not picked:  # no error line: the log's end is the best evidence
        return [line.rstrip() for line in lines[-limit:] if line.strip()]
    out = [lines[i].rstrip() for i in picked if lines[i].strip()]
    return out[-limit:]


_SOURCE_ERROR = re.compile(r"^(?P<file>[^\s:]+\.s?vh?):(?P<line>\d+): ERROR")


def source_lines(lines: list[str], cwd: Path) -> list[str]:
    """The Verilog lines a Yosys error points at ("file.v:17: ERROR: ..."), as "file.v:17 | text"."""
    out = []
    for line in lines:
        m = _SOURCE_ERROR.match(line.strip())
        if not m:
            continue
        path, number = cwd / m["file"], int(m["line"])
        try:
            text = path.read_text(errors="replace").splitlines()[number - 1]
        except (OSError, IndexError):
            continue
        out.append(f"{m['file']}:{number} | {text.rstrip()}")
    return out


def classify(step: str, log: Path, returncode: int, cwd: Path | None = None) -> BitstreamError:
    """The exception for a tool that exited with ``returncode``, chosen and worded from its log
    (``cwd``: the tool's working directory, to quote the source line of a Verilog error)."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    lines = excerpt(text)
    if cwd is not None:
        quoted = source_lines(lines, cwd)
        if quoted:
            lines = lines[:-1] + quoted + lines[-1:]  # the error itself stays last (it heads the message)
    over = overfull_lines(text.splitlines())
    if over or any(_NO_FIT.search(line) for line in lines if _ERROR.search(line)):
        quoted = over + [line for line in lines if _ERROR.search(line)]
        return DesignDoesNotFit(step, "the design does not fit the device", log, quoted or lines)
    return BitstreamError(step, f"the tool exited with code {returncode}", log, lines)
