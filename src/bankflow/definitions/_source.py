"""Reading BPMN/DMN files safely: size limits, no entities, no network.

A definition file comes from an analyst's laptop, so it is treated as untrusted input:
lxml never resolves external entities or fetches anything, a DOCTYPE is refused outright
(billion-laughs and XXE both need one), and oversized files are refused before parsing.

Bytes do not bound the work a file causes (every later pass costs per element, and a
16 MB file holds over half a million elements), so ``read`` counts elements while lxml
parses and stops at a budget: a file past it is refused after building at most the
budget's elements, before any of the expensive passes.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from bankflow._text import shorten
from bankflow.models import Diagnostic

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_DEPLOYMENT_BYTES",
    "MAX_FILE_BYTES",
    "Reading",
    "SourceFile",
    "collect",
    "parse",
    "read",
]

MAX_FILE_BYTES = 16_000_000  # 16 MB, as the messages say
MAX_DEPLOYMENT_BYTES = 10 * MAX_FILE_BYTES  # 160 MB read into memory for one deployment
MAX_ATTRIBUTES = 1_000  # of one element; real files have a dozen at most
BPMN_SUFFIXES = (".bpmn", ".bpmn20.xml")
DMN_SUFFIXES = (".dmn",)
_BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
_DMN_NS_PREFIXES = ("http://www.omg.org/spec/DMN/", "https://www.omg.org/spec/DMN/")


@dataclass(frozen=True)
class SourceFile:
    """``display`` is the path as the user knows it (used in diagnostics); ``name`` is
    the resource name stored with the deployment."""

    display: str
    name: str
    content: bytes

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def kind(self) -> str:
        return "dmn" if self.name.lower().endswith(DMN_SUFFIXES) else "bpmn"


def _error(file: str, rule: str, message: str, line: int | None = None) -> Diagnostic:
    return Diagnostic(file=file, line=line, rule=rule, message=message)


def _is_definition_file(path: Path) -> bool:
    return path.name.lower().endswith(BPMN_SUFFIXES + DMN_SUFFIXES)


def collect(paths: list[Path]) -> tuple[list[SourceFile], list[Diagnostic]]:
    """Expand files and directories into the definition files they hold.

    Files are read until the deployment holds ``MAX_DEPLOYMENT_BYTES``; the file that
    would pass it is refused and the rest are not read."""
    found: list[tuple[Path, str]] = []
    problems: list[Diagnostic] = []
    for path in paths:
        try:
            path.stat()
        except (OSError, ValueError) as exc:  # missing, name too long, no permission...
            reason = (
                "no such file or directory"
                if isinstance(exc, FileNotFoundError)
                else (f"cannot be read: {getattr(exc, 'strerror', None) or exc}")
            )
            problems.append(_error(shorten(str(path), 200), "file", reason))
            continue
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and _is_definition_file(p))
            if not inside:
                problems.append(_error(str(path), "file", "no .bpmn, .bpmn20.xml or .dmn files"))
            found += [(file, file.relative_to(path).as_posix()) for file in inside]
        elif path.is_file():
            if not _is_definition_file(path):
                problems.append(_error(str(path), "file", "not a .bpmn, .bpmn20.xml or .dmn file"))
                continue
            found.append((path, path.name))
        else:
            problems.append(_error(str(path), "file", "no such file or directory"))
    files: list[SourceFile] = []
    total = 0
    for number, (path, name) in enumerate(found):
        total += _read(path, name, files, problems)
        if total > MAX_DEPLOYMENT_BYTES:
            files.pop()
            rest = len(found) - number - 1
            problems.append(
                _error(
                    str(path),
                    "deployment-too-large",
                    f"the files of this deployment hold more than "
                    f"{MAX_DEPLOYMENT_BYTES / 1_000_000:.0f} MB; this file passes that"
                    + (f" and the {rest} after it were not read" if rest else "")
                    + ": deploy them in several deployments",
                )
            )
            break
    return files, problems


def _read(path: Path, name: str, files: list[SourceFile], problems: list[Diagnostic]) -> int:
    """Bytes read into ``files`` (0 when the file is refused)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.append(
                _error(
                    str(path),
                    "file",
                    f"file is {size / 1_000_000:.1f} MB; the limit is "
                    f"{MAX_FILE_BYTES / 1_000_000:.0f} MB",
                )
            )
            return 0
        with path.open("rb") as handle:  # bounded even if the file grew since stat()
            content = handle.read(MAX_FILE_BYTES + 1)
        if len(content) > MAX_FILE_BYTES:
            problems.append(_error(str(path), "file", "file is larger than the limit"))
            return 0
        files.append(SourceFile(display=str(path), name=name, content=content))
        return len(content)
    except OSError as exc:
        problems.append(_error(str(path), "file", f"cannot read: {exc.strerror or exc}"))
        return 0


_ROOT_START = re.compile(rb"<[A-Za-z_]")
_PROLOG_DECLARATION = re.compile(rb"<!(DOCTYPE|ENTITY)")


def _prolog(content: bytes) -> bytes:
    """What comes before the root element: the only place a DOCTYPE can be (text that
    quotes one inside the document is just text)."""
    match = _ROOT_START.search(content)
    return content if match is None else content[: match.start()]


@dataclass(frozen=True)
class Reading:
    """What ``read`` found: the document's root element or the reason it cannot be used,
    and how many elements lxml built on the way (all of them, or ``budget + 1`` when the
    budget ran out at line ``over_budget_at``)."""

    result: etree._Element | Diagnostic
    elements: int
    over_budget_at: int | None = None


def parse(source: SourceFile) -> etree._Element | Diagnostic:
    """The document's root element, or the reason it cannot be used (no element budget:
    for files that were within the limits when they were deployed)."""
    return read(source).result


def read(source: SourceFile, *, budget: int | None = None) -> Reading:
    """Parse ``source``, building at most ``budget`` elements: past it lxml stops, the
    result is a ``file-too-large`` diagnostic and ``over_budget_at`` the line where the
    budget ran out (the caller says which limit that was)."""
    if len(source.content) > MAX_FILE_BYTES:
        return Reading(_error(source.display, "file", "file is larger than the limit"), 0)
    if _PROLOG_DECLARATION.search(_prolog(source.content)):
        refused = _error(
            source.display,
            "xml",
            "DOCTYPE and entity declarations are not allowed in BPMN/DMN files",
        )
        return Reading(refused, 0)
    # iterparse builds the same tree as fromstring and hands over each element as it
    # opens, so counting costs one Python step per element and stopping leaves the rest
    # of the file unparsed (bench/deploy_limits.py measures it).
    events = etree.iterparse(
        io.BytesIO(source.content),
        events=("start",),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,  # libxml2's own caps: 10 MB per text node, nesting depth 256
        remove_blank_text=False,
    )
    count = 0
    try:
        for _, element in events:
            count += 1
            if budget is not None and count > budget:
                line = element.sourceline
                over = _error(
                    source.display,
                    "file-too-large",
                    f"the file has more than {budget:,} XML elements",
                    line,
                )
                return Reading(over, count, line)
            if len(element.attrib) > MAX_ATTRIBUTES:
                too_wide = Diagnostic(
                    file=source.display,
                    line=element.sourceline,
                    element_id=_short_id(element.get("id")),
                    rule="file-too-large",
                    message=f"element {etree.QName(element).localname} has more than "
                    f"{MAX_ATTRIBUTES:,} attributes (the limit per element); a BPMN or DMN "
                    "element has a few dozen at most",
                )
                return Reading(too_wide, count)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) else None
        return Reading(
            _error(source.display, "xml", f"not well-formed XML: {shorten(exc.msg)}", line), count
        )
    root = events.root
    if root is None:  # lxml raises on an empty document; kept for the type checker
        return Reading(_error(source.display, "xml", "no root element"), count)
    return Reading(_check_root(source, root), count)


def _short_id(value: str | None) -> str | None:
    return None if value is None else value[:100]


def _check_root(source: SourceFile, root: etree._Element) -> etree._Element | Diagnostic:
    if root.getroottree().docinfo.doctype:
        return _error(source.display, "xml", "DOCTYPE declarations are not allowed")
    namespace = etree.QName(root).namespace or ""
    expected_dmn = source.kind == "dmn"
    if namespace == _BPMN_NS and not expected_dmn:
        return root
    if namespace.startswith(_DMN_NS_PREFIXES) and expected_dmn:
        return root
    what = "DMN" if expected_dmn else "BPMN 2.0"
    return _error(
        source.display,
        "xml",
        f"root element {etree.QName(root).localname!r} in namespace {namespace!r} is not "
        f"{what} definitions",
        root.sourceline,
    )
