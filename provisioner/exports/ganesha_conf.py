"""Ganesha's config syntax as a tree: parsed the way Ganesha reads it, written so it reads back.

homevol reads its EXPORT blocks back through this parser (not by pattern matching), and writes
them through the same module, which refuses any value that Ganesha could read as more syntax: a
path or client from outside must never add a block or a parameter. The grammar covered is the
part of Ganesha's that an export file uses (Ceph's mgr nfs module reads the same shapes)::

    document  = { block | directive }
    block     = NAME "{" { param | block } "}"
    param     = KEY "=" value { "," value } ";"
    value     = WORD | '"' text '"' | "'" text "'"
    directive = "%" NAME target          (to the end of the line: %include "file", %url "...")

``#`` starts a comment to the end of the line, outside quotes. Names and keys are compared
without case, as Ganesha does; comments and layout are not kept, except whether a block was
written on one line (``CLIENT { Clients = a, b; Access_Type = RW; }``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import HomevolError

MAX_DEPTH = 16  # Ganesha's own blocks nest three deep; deeper text is refused, not recursed into
INDENT = "    "
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD_RE = re.compile(r"[^\s{}=;,#\"']+")
_BARE_RE = re.compile(r"[^\s{}=;,#\"'%\\\x00-\x1f\x7f]+")  # what is written without quotes
_UNQUOTABLE_RE = re.compile(r'["\n\r;{}\\\x00-\x1f\x7f]')  # what no quoted value may hold


class ConfError(HomevolError):
    """Text that is not Ganesha config, or a value that cannot be written safely into one."""


@dataclass(frozen=True)
class Value:
    text: str
    quoted: bool = False


@dataclass(frozen=True)
class Param:
    key: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Block:
    name: str
    items: tuple[Param | Block, ...] = ()
    inline: bool = False  # written on one line (its sub-blocks too)

    def blocks(self, name: str) -> tuple[Block, ...]:
        return tuple(b for b in self.items if isinstance(b, Block) and _same(b.name, name))

    def values(self, key: str) -> tuple[str, ...] | None:
        """The values of the first parameter ``key``, or None when there is none."""
        for item in self.items:
            if isinstance(item, Param) and _same(item.key, key):
                return tuple(v.text for v in item.values)
        return None

    def value(self, key: str) -> str | None:
        """The value of ``key`` when it has exactly one."""
        found = self.values(key)
        return found[0] if found is not None and len(found) == 1 else None


@dataclass(frozen=True)
class Directive:
    name: str  # include | url
    target: str


Node = Block | Directive


def _same(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


def param(key: str, *values: str, quoted: bool = False) -> Param:
    return Param(key, tuple(Value(v, quoted) for v in values))


# ----- reading --------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Token:
    kind: str  # { } = ; , word string directive
    text: str
    line: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, line = 0, 1
    while pos < len(text):
        char = text[pos]
        if char == "\n":
            line += 1
            pos += 1
        elif char.isspace():
            pos += 1
        elif char in "#%":
            end = text.find("\n", pos)
            end = len(text) if end == -1 else end
            if char == "%":
                tokens.append(_Token("directive", text[pos + 1:end], line))
            pos = end
        elif char in "{}=;,":
            tokens.append(_Token(char, char, line))
            pos += 1
        elif char in "\"'":
            end = text.find(char, pos + 1)
            if end == -1 or "\n" in text[pos:end]:
                raise ConfError(f"line {line}: a string is not closed on its line")
            tokens.append(_Token("string", text[pos + 1:end], line))
            pos = end + 1
        else:
            match = _WORD_RE.match(text, pos)
            if match is None:  # pragma: no cover - every other character starts a word
                raise ConfError(f"line {line}: unexpected {char!r}")
            tokens.append(_Token("word", match.group(), line))
            pos = match.end()
    return tokens


def _directive(token: _Token) -> Directive:
    """``%name target [# comment]``: the target quoted or one word."""
    match = re.fullmatch(r"([A-Za-z_]+)[ \t]+(?:\"([^\"]*)\"|'([^']*)'|([^\s#\"']+))[ \t]*(?:#.*)?",
                         token.text)
    if match is None:
        raise ConfError(f"line {token.line}: %{token.text.strip()} is not a directive with a target")
    target = next(g for g in match.groups()[1:] if g is not None)
    return Directive(match.group(1), target)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def _peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, kind: str, what: str) -> _Token:
        token = self._peek()
        if token is None or token.kind != kind:
            where = f"line {token.line}: found {token.text!r}" if token else "at the end"
            raise ConfError(f"{where}, expected {what}")
        self.pos += 1
        return token

    def _name(self, what: str) -> _Token:
        token = self._take("word", what)
        if not _NAME_RE.fullmatch(token.text):
            raise ConfError(f"line {token.line}: {token.text!r} is not a {what}")
        return token

    def document(self) -> tuple[Node, ...]:
        nodes: list[Node] = []
        while (token := self._peek()) is not None:
            if token.kind == "directive":
                nodes.append(_directive(token))
                self.pos += 1
            else:
                nodes.append(self._block(self._name("block name"), 1))
        return tuple(nodes)

    def _block(self, name: _Token, depth: int) -> Block:
        if depth > MAX_DEPTH:
            raise ConfError(f"line {name.line}: blocks nested deeper than {MAX_DEPTH}")
        opening = self._take("{", "'{'")
        items: list[Param | Block] = []
        while (token := self._peek()) is not None and token.kind != "}":
            key = self._name("parameter or block name")
            following = self._peek()
            items.append(self._block(key, depth + 1) if following and following.kind == "{"
                         else self._param(key))
        closing = self._take("}", "'}'")
        return Block(name.text, tuple(items), opening.line == closing.line)

    def _param(self, key: _Token) -> Param:
        self._take("=", f"'=' after {key.text}")
        values = [self._value()]
        while (token := self._peek()) is not None and token.kind == ",":
            self.pos += 1
            values.append(self._value())
        self._take(";", f"';' after the value of {key.text}")
        return Param(key.text, tuple(values))

    def _value(self) -> Value:
        token = self._peek()
        if token is None or token.kind not in ("word", "string"):
            raise ConfError(f"line {token.line if token else 'end'}: expected a value")
        self.pos += 1
        return Value(token.text, token.kind == "string")


def parse(text: str) -> tuple[Node, ...]:
    """The blocks and directives of a config text; ConfError for anything else."""
    return _Parser(text).document()


# ----- writing --------------------------------------------------------------------------------

def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ConfError(f"{name!r} cannot be written as a Ganesha block or parameter name")
    return name


def _value(value: Value) -> str:
    if value.quoted:
        if _UNQUOTABLE_RE.search(value.text):
            raise ConfError(f"{value.text!r} cannot be written into a Ganesha config")
        return f'"{value.text}"'
    if not _BARE_RE.fullmatch(value.text):
        raise ConfError(f"{value.text!r} cannot be written into a Ganesha config unquoted")
    return value.text


def _param(item: Param) -> str:
    if not item.values:
        raise ConfError(f"{item.key} has no value")
    return f"{_check_name(item.key)} = {', '.join(_value(v) for v in item.values)};"


def _block(block: Block, indent: str, inline: bool = False) -> str:
    name = _check_name(block.name)
    if inline or block.inline:
        inner = " ".join(_block(i, "", True) if isinstance(i, Block) else _param(i)
                         for i in block.items)
        return f"{name} {{ {inner} }}" if inner else f"{name} {{ }}"
    inner_indent = indent + INDENT
    lines = [f"{name} {{"]
    lines += [inner_indent + (_block(i, inner_indent) if isinstance(i, Block) else _param(i))
              for i in block.items]
    return "\n".join([*lines, indent + "}"])


def _node(node: Node) -> str:
    if isinstance(node, Directive):
        if not re.fullmatch(r"[A-Za-z_]+", node.name) or _UNQUOTABLE_RE.search(node.target):
            raise ConfError(f"%{node.name} {node.target!r} cannot be written into a Ganesha config")
        return f'%{node.name} "{node.target}"'
    return _block(node, "")


def render(nodes: tuple[Node, ...] | list[Node]) -> str:
    """The config text of ``nodes``, one per line (a block over several); ConfError for a
    name or value that Ganesha would read as something else."""
    return "".join(_node(node) + "\n" for node in nodes)
