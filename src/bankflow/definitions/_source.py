"""Reading BPMN/DMN files safely: size limits, no entities, no network.

A definition file comes from an analyst's laptop, so it is treated as untrusted input:
lxml never resolves external entities or fetches anything, a DOCTYPE is refused outright
(billion-laughs and XXE both need one), and oversized files are refused before parsing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from bankflow.models import Diagnostic

__all__ = ["MAX_FILE_BYTES", "SourceFile", "collect", "parse"]

MAX_FILE_BYTES = 16_000_000  # 16 MB, as the messages say
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
    """Expand files and directories into the definition files they hold."""
    files: list[SourceFile] = []
    problems: list[Diagnostic] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_definition_file(p))
            if not found:
                problems.append(_error(str(path), "file", "no .bpmn, .bpmn20.xml or .dmn files"))
            for file in found:
                _read(file, file.relative_to(path).as_posix(), files, problems)
        elif path.is_file():
            if not _is_definition_file(path):
                problems.append(_error(str(path), "file", "not a .bpmn, .bpmn20.xml or .dmn file"))
                continue
            _read(path, path.name, files, problems)
        else:
            problems.append(_error(str(path), "file", "no such file or directory"))
    return files, problems


def _read(path: Path, name: str, files: list[SourceFile], problems: list[Diagnostic]) -> None:
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
            return
        files.append(SourceFile(display=str(path), name=name, content=path.read_bytes()))
    except OSError as exc:
        problems.append(_error(str(path), "file", f"cannot read: {exc.strerror or exc}"))


_ROOT_START = re.compile(rb"<[A-Za-z_]")
_PROLOG_DECLARATION = re.compile(rb"<!(DOCTYPE|ENTITY)")


def _prolog(content: bytes) -> bytes:
    """What comes before the root element: the only place a DOCTYPE can be (text that
    quotes one inside the document is just text)."""
    match = _ROOT_START.search(content)
    return content if match is None else content[: match.start()]


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


def parse(source: SourceFile) -> etree._Element | Diagnostic:
    """The document's root element, or the reason it cannot be used."""
    if len(source.content) > MAX_FILE_BYTES:
        return _error(source.display, "file", "file is larger than the limit")
    if _PROLOG_DECLARATION.search(_prolog(source.content)):
        return _error(
            source.display,
            "xml",
            "DOCTYPE and entity declarations are not allowed in BPMN/DMN files",
        )
    try:
        root = etree.fromstring(source.content, _parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) else None
        return _error(source.display, "xml", f"not well-formed XML: {exc.msg}", line)
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
