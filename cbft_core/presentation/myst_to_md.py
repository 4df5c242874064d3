"""MyST Markdown of the chapters as plain Jupyter Markdown (what Colab, Binder and GitHub render).

:class:`Converter` rewrites one Markdown cell: glue roles become the glued
values (their format spec applied), ``{doc}``/``{ref}`` links to the published
pages, citations "(Author, year)", ``literalinclude`` the included lines as a
code block, admonitions block quotes, ``{math}`` dollar math; ``(label)=``
targets, ``%`` comments and equation labels are dropped; substitutions are
filled in. A role or directive it does not know is one
:class:`~cbft_core.errors.CbftError` naming it, never left in the output.
:data:`LEFTOVER` is the pattern of what Jupyter cannot render.
"""
from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import CbftError

__all__ = ["LEFTOVER", "GlueValue", "Converter", "format_glued_text", "include_lines", "leftovers"]

# What a Jupyter Markdown cell cannot render: a role, a directive fence, a colon fence, a target.
LEFTOVER = re.compile(r"\{[a-z][a-z:-]*\}`|^\s*(`{3,}|~{3,})\s*\{|^\s*:{3,}|^\s*\([\w.:-]+\)=\s*$", re.M)
_ROLE = re.compile(r"\{(?P<name>[a-z][a-z:-]*)\}`(?P<content>[^`]*)`")
_FENCE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,}|:{3,})\s*(?P<info>.*)$")
_TARGET = re.compile(r"^\s*\([\w.:-]+\)=\s*$")
_SUBSTITUTION = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")
_TITLE_LINK = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
_ADMONITIONS = {"admonition", "note", "warning", "tip", "hint", "important", "caution", "attention", "danger",
                "error", "seealso", "margin", "sidebar", "topic"}


@dataclass
class GlueValue:
    """The representations of one glued value (MIME type → data), as the notebook output stores them."""

    data: dict[str, Any]

    @classmethod
    def from_output(cls, output: Mapping[str, Any]) -> "GlueValue":
        prefix = output.get("metadata", {}).get("scrapbook", {}).get("mime_prefix", "")
        return cls({key[len(prefix):]: value for key, value in output.get("data", {}).items()
                    if key.startswith(prefix)})


def _literal(text: str) -> Any:
    from .record import _parse

    return _parse(text)


def format_glued_text(text: str, spec: str) -> str:
    """A glued ``text/plain`` value shown with a format spec, as MyST-NB's ``{glue:text}`` shows it:
    the text is read back as a Python literal, converted by the spec's type letter and formatted."""
    value = _literal(text)
    if not spec:
        return str(value)
    kind = spec[-1]
    try:
        if kind == "s":
            value = str(value)
        elif kind in "bcdoxX":
            value = int(value)
        elif kind in "eEfFgGn%":
            value = float(value)
        return format(value, spec)
    except (TypeError, ValueError) as exc:
        raise CbftError(f"cannot format glued value {text!r} with {spec!r}: {exc}") from None


def include_lines(path: Path, options: Mapping[str, str]) -> tuple[str, str]:
    """The text a ``literalinclude`` of ``path`` with ``options`` shows, and its language.

    Supported: ``pyobject`` (a function, class or ``Class.method``, decorators included), ``lines``
    (``1-3,7``, 1-based, of the file or of what pyobject selected), ``start-after``/``start-at``,
    ``end-before``/``end-at``, ``dedent`` and ``language``; ``caption``, ``linenos``,
    ``emphasize-lines`` and ``lineno-match`` change only the rendering and are ignored here.
    """
    if not path.is_file():
        raise CbftError(f"literalinclude: {path} does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    if "pyobject" in options:
        lines = _pyobject_lines(path, lines, options["pyobject"].strip())
    if "lines" in options:
        chosen: list[str] = []
        for part in options["lines"].split(","):
            first, _, last = part.strip().partition("-")
            start = int(first) if first else 1
            stop = int(last) if last else (start if not _ else len(lines))
            chosen += lines[start - 1:stop]
        lines = chosen
    for key, keep in (("start-after", False), ("start-at", True)):
        if key in options:
            hit = next((i for i, line in enumerate(lines) if options[key] in line), None)
            if hit is None:
                raise CbftError(f"literalinclude {path.name}: {key} {options[key]!r} not found")
            lines = lines[hit if keep else hit + 1:]
    for key, keep in (("end-before", False), ("end-at", True)):
        if key in options:
            hit = next((i for i, line in enumerate(lines) if options[key] in line), None)
            if hit is None:
                raise CbftError(f"literalinclude {path.name}: {key} {options[key]!r} not found")
            lines = lines[:hit + 1 if keep else hit]
    if "dedent" in options:
        amount = options["dedent"].strip()
        lines = textwrap.dedent("\n".join(lines)).split("\n") if not amount else [
            line[int(amount):] if not line[:int(amount)].strip() else line.lstrip() for line in lines]
    text = "\n".join(lines)
    language = options.get("language", "python" if path.suffix == ".py" else "").strip()
    return text, language


def _pyobject_lines(path: Path, lines: list[str], name: str) -> list[str]:
    tree = ast.parse("\n".join(lines))
    scope: list[ast.stmt] = tree.body
    node: Any = None
    for part in name.split("."):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            raise CbftError(f"literalinclude {path.name}: no object {name!r}")
        scope = node.body
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return lines[start - 1:node.end_lineno]


def leftovers(markdown: str) -> list[str]:
    """The MyST constructs of ``markdown`` that Jupyter would show raw (outside code blocks)."""
    found = []
    for segment, is_code in _segments(markdown):
        if not is_code:
            found += [m.group(0).strip() for m in LEFTOVER.finditer(segment)]
    return found


def _segments(markdown: str) -> list[tuple[str, bool]]:
    """``markdown`` split into (text, is a plain fenced code block) pieces, in order; a directive
    (a ``{name}`` fence or a colon fence) stays in a text piece, its closing fence included."""
    out: list[tuple[str, bool]] = []
    lines = markdown.split("\n")
    i, buffer = 0, []
    while i < len(lines):
        match = _FENCE_OPEN.match(lines[i])
        if match:
            end = _fence_end(lines, i, match["fence"])
            if match["fence"][0] in "`~" and not match["info"].startswith("{"):
                if buffer:
                    out.append(("\n".join(buffer), False))
                    buffer = []
                out.append(("\n".join(lines[i:end + 1]), True))
            else:
                buffer += lines[i:end + 1]
            i = end + 1
            continue
        buffer.append(lines[i])
        i += 1
    if buffer:
        out.append(("\n".join(buffer), False))
    return out


def _fence_end(lines: list[str], start: int, fence: str) -> int:
    """The index of the line closing the fence opened at ``start``: the next line of only the fence's
    character, at least as long (a nested fence is shorter or uses the other character); the last
    line if none does."""
    for j in range(start + 1, len(lines)):
        stripped = lines[j].strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            return j
    return len(lines) - 1


@dataclass
class Converter:
    """Rewrites the MyST of one document (``doc``: its path relative to the book's root, no suffix).

    ``glue``: the document's glued values by name; ``glue_of``: the glued values of another
    document (for ``{glue:}`doc::name```); ``page_url``: the published URL of a document (and an
    optional anchor); ``title_of``: a document's title; ``cite``: (keys, textual) → text, which also
    records the keys cited; ``labels``: target label → (document, title); ``substitutions``:
    ``{{ name }}`` values; ``root``: the book's source folder (for includes).
    """

    doc: str
    root: Path
    glue: Mapping[str, GlueValue]
    page_url: Callable[[str, str], str]
    title_of: Callable[[str], str]
    cite: Callable[[list[str], str], str]
    glue_of: Callable[[str], Mapping[str, GlueValue]] = lambda doc: {}
    labels: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    substitutions: Mapping[str, str] = field(default_factory=dict)
    attachments: dict[str, dict[str, str]] = field(default_factory=dict)

    # --- whole cells ------------------------------------------------------------------------------
    def convert(self, markdown: str) -> str:
        """``markdown`` (one cell) as plain Jupyter Markdown."""
        out = []
        for segment, is_code in _segments(markdown):
            out.append(segment if is_code else self._text(segment))
        result = "\n".join(out)
        left = leftovers(result)
        if left:
            raise CbftError(f"{self.doc}: MyST left after conversion: {left[:3]}")
        return result

    def _text(self, text: str) -> str:
        lines = text.split("\n")
        out: list[str] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            match = _FENCE_OPEN.match(line)
            if match and (match["info"].startswith("{") or match["fence"][0] == ":"):
                end = _fence_end(lines, i, match["fence"])
                out.append(self._directive(match["info"], lines[i + 1:end], match["indent"]))
                i = end + 1
                continue
            if _TARGET.match(line) or re.match(r"^\s*%", line):
                i += 1
                continue
            out.append(line)
            i += 1
        text = "\n".join(out)
        text = re.sub(r"\$\$\s*\(([\w.:-]+)\)", "$$", text)  # dollarmath equation labels
        text = _SUBSTITUTION.sub(self._substitute, text)
        return _ROLE.sub(self._role, text)

    def _substitute(self, match: re.Match) -> str:
        if match[1] not in self.substitutions:
            raise CbftError(f"{self.doc}: substitution {{{{ {match[1]} }}}} is not defined in _config.yml")
        return str(self.substitutions[match[1]])

    # --- directives -----------------------------------------------------------------------------
    def _directive(self, info: str, body: list[str], indent: str) -> str:
        head = re.match(r"^\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*)$", info.strip())
        if head is None:  # a colon fence with a plain language: a code block
            return "\n".join([f"{indent}```{info.strip()}", *body, f"{indent}```"])
        name, argument = head["name"], head["arg"].strip()
        options, content = _options(body)
        if name == "literalinclude":
            base = self.root if argument.startswith("/") else (self.root / self.doc).parent
            text, language = include_lines((base / argument.lstrip("/")).resolve(), options)
            caption = f"*{options['caption'].strip()}*\n\n" if options.get("caption") else ""
            return f"{caption}```{language}\n{text}\n```"
        if name in ("code-block", "code", "code-cell", "sourcecode"):
            return "\n".join([f"```{argument}", *content, "```"])
        if name == "math":
            return "$$\n" + "\n".join(content).strip() + "\n$$"
        if name in _ADMONITIONS:
            title = argument if name in ("admonition", "topic", "sidebar", "margin") else (
                name.capitalize() + (f": {argument}" if argument else ""))
            inner = self._text("\n".join(content)).strip("\n")
            quoted = [f"> **{self._text(title)}**", ">"] if title else []
            quoted += [f"> {line}" if line.strip() else ">" for line in inner.split("\n")]
            return "\n".join(quoted)
        if name in ("glue", "glue:", "glue:any", "glue:figure", "glue:md", "glue:math"):
            key = argument
            value = self._glued(key)
            if name == "glue:math" and "text/latex" in value.data:
                return "$$\n" + str(value.data["text/latex"]).strip().strip("$") + "\n$$"
            if name == "glue:md":
                return self._markdown_value(value, options.get("format", "commonmark"))
            caption = self._text("\n".join(content)).strip()
            shown = self._any(key, value, block=True)
            return shown + (f"\n\n*{caption}*" if caption else "")
        if name == "raw" and argument == "html":
            return "\n".join(content)
        raise CbftError(f"{self.doc}: directive {{{name}}} has no plain-Markdown form in the reader notebooks")

    # --- roles ------------------------------------------------------------------------------------
    def _role(self, match: re.Match) -> str:
        name, content = match["name"], match["content"]
        if name in ("glue", "glue:", "glue:any"):
            return self._any(content, self._glued(content), block=False)
        if name == "glue:text":
            key, _, spec = content.rpartition(":") if ":" in content.replace("::", "") else (content, "", "")
            key = key or content
            value = self._glued(key)
            if "text/plain" not in value.data:
                raise CbftError(f"{self.doc}: glued {key!r} has no text/plain to show")
            return format_glued_text(str(value.data["text/plain"]), spec or "s")
        if name == "glue:md":
            key, _, fmt = content.rpartition(":") if ":" in content.replace("::", "") else (content, "", "")
            return self._markdown_value(self._glued(key or content), fmt or "commonmark")
        if name == "doc":
            text, target = _title_and_target(content)
            doc = _resolve_doc(self.doc, target)
            return f"[{text or self.title_of(doc)}]({self.page_url(doc, '')})"
        if name in ("ref", "numref"):
            text, label = _title_and_target(content)
            if label not in self.labels:
                raise CbftError(f"{self.doc}: {{{name}}} target {label!r} is not a label of the book")
            doc, title = self.labels[label]
            return f"[{text or title}]({self.page_url(doc, label)})"
        if name == "eq":
            return f"({content})"
        if name == "math":
            return f"${content}$"
        if name.startswith("cite"):
            style = name.partition(":")[2] or "p"
            keys = [k.strip() for k in content.split(",") if k.strip()]
            return self.cite(keys, style)
        if name in ("sub", "sup"):
            return f"<{name}>{content}</{name}>"
        if name == "abbr":
            return re.sub(r"\s*\(.*\)$", "", content)
        if name in ("kbd", "file", "samp", "command"):
            return f"`{content}`"
        if name in ("term", "guilabel"):
            return _title_and_target(content)[0] or _title_and_target(content)[1]
        if name == "download":
            text, target = _title_and_target(content)
            return text or target
        raise CbftError(f"{self.doc}: role {{{name}}} has no plain-Markdown form in the reader notebooks")

    # --- glued values -----------------------------------------------------------------------------
    def _glued(self, key: str) -> GlueValue:
        doc, sep, name = key.partition("::")
        values = self.glue_of(_resolve_doc(self.doc, doc)) if sep else self.glue
        name = name if sep else key
        if name not in values:
            where = doc if sep else self.doc
            raise CbftError(f"{self.doc}: {name!r} is not glued in the committed outputs of {where}")
        return values[name]

    def _markdown_value(self, value: GlueValue, fmt: str) -> str:
        if "text/markdown" not in value.data:
            raise CbftError(f"{self.doc}: a {{glue:md}} value has no text/markdown")
        text = str(value.data["text/markdown"])
        return self._text(text) if fmt == "myst" else text

    def _any(self, key: str, value: GlueValue, block: bool) -> str:
        data = value.data
        for mime in ("image/png", "image/jpeg"):
            if mime in data:
                name = f"{key.replace('::', '-').replace('/', '-')}.{mime.split('/')[1]}"
                self.attachments[name] = {mime: "".join(data[mime]) if isinstance(data[mime], list)
                                          else str(data[mime])}
                return f"![{key}](attachment:{name})"
        if "text/markdown" in data:
            return str(data["text/markdown"])
        if "text/latex" in data:
            latex = str(data["text/latex"]).strip().strip("$")
            return f"$${latex}$$" if block else f"${latex}$"
        if "text/plain" in data:
            return format_glued_text(str(data["text/plain"]), "")
        raise CbftError(f"{self.doc}: glued {key!r} has nothing Markdown can show ({sorted(data)})")


def _options(body: list[str]) -> tuple[dict[str, str], list[str]]:
    """A directive body's ``:name: value`` options (or a ``---`` YAML block) and its content."""
    options: dict[str, str] = {}
    lines = list(body)
    if lines and lines[0].strip() == "---":
        import yaml

        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is not None:
            options = {str(k): str(v) for k, v in (yaml.safe_load("\n".join(lines[1:end])) or {}).items()}
            return options, lines[end + 1:]
    while lines and re.match(r"^\s*:[\w-]+:", lines[0]):
        key, _, value = lines.pop(0).strip()[1:].partition(":")
        options[key] = value.strip()
    while lines and not lines[0].strip():
        lines.pop(0)
    return options, lines


def _title_and_target(content: str) -> tuple[str, str]:
    match = _TITLE_LINK.match(content.strip())
    return (match["text"].strip(), match["target"].strip()) if match else ("", content.strip())


def _resolve_doc(current: str, target: str) -> str:
    """A ``{doc}`` target as a document path relative to the book's root (no suffix)."""
    target = re.sub(r"\.(md|ipynb)$", "", target)
    if target.startswith("/"):
        return target.lstrip("/")
    parts: list[str] = list(Path(current).parent.parts)
    for part in Path(target).parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)
