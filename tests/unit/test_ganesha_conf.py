"""Ganesha's config syntax: what parses, what is refused, and render → parse → render."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.exports.ganesha_conf import (
    MAX_DEPTH,
    Block,
    ConfError,
    Directive,
    Node,
    Param,
    Value,
    param,
    parse,
    render,
)

SAMPLE = """\
# a comment before anything
%include "/etc/ganesha/other.conf"   # and one after
CEPH { Ceph_Conf = "/etc/ceph/ceph.conf"; }
EXPORT {
    Export_Id = 101;          # ids are 16-bit
    Path = "/export/home/alpha";
    pseudo = '/export/home/alpha';
    Protocols = 3, 4;
    FSAL {
        Name = VFS;
    }
    CLIENT { Clients = 10.0.0.1, @netgroup, 10.1.0.0/16; Access_Type = RW; }
}
"""


def test_blocks_parameters_lists_comments_and_include_parse() -> None:
    include, ceph, export = parse(SAMPLE)
    assert include == Directive("include", "/etc/ganesha/other.conf")
    assert isinstance(ceph, Block) and ceph.inline and ceph.value("ceph_conf") == "/etc/ceph/ceph.conf"
    assert isinstance(export, Block) and not export.inline
    assert export.value("EXPORT_ID") == "101" and export.value("Pseudo") == "/export/home/alpha"
    assert export.values("Protocols") == ("3", "4") and export.value("Protocols") is None
    assert export.values("Squash") is None
    (fsal,) = export.blocks("fsal")
    assert fsal.value("Name") == "VFS" and not fsal.inline
    (client,) = export.blocks("CLIENT")
    assert client.inline and client.values("Clients") == ("10.0.0.1", "@netgroup", "10.1.0.0/16")
    assert Param("Path", (Value("/export/home/alpha", True),)) in export.items


def test_what_homevol_writes_reads_back_as_written() -> None:
    nodes = parse(SAMPLE)
    again = render(nodes)
    assert parse(again) == nodes
    assert render(parse(again)) == again
    assert "CLIENT { Clients = 10.0.0.1, @netgroup, 10.1.0.0/16; Access_Type = RW; }" in again
    assert "    FSAL {\n        Name = VFS;\n    }\n" in again


@pytest.mark.parametrize("text", [
    "EXPORT { Path = \"/a; }", "EXPORT { Path = /a }", "EXPORT { Path /a; }", "EXPORT {", "}",
    "EXPORT { Path = ; }", "EXPORT { Clients = a, ; }", "{ }", "EXPORT Path = 1;", "%include",
    "%include \"unclosed", "9EXPORT { }", "EXPORT { %include \"x\" }", "EXPORT { Path = \"a\nb\"; }",
    "A {" * (MAX_DEPTH + 1) + "}" * (MAX_DEPTH + 1),
])
def test_what_is_not_config_is_a_conf_error(text: str) -> None:
    with pytest.raises(ConfError):
        parse(text)


@pytest.mark.parametrize("value", ['a"b', "a\nb", "a;b", "a{b", "a}b", "a\\", "a\rb", "a\x00b"])
def test_a_value_that_could_inject_config_is_refused(value: str) -> None:
    with pytest.raises(ConfError, match="cannot be written"):
        render([Block("EXPORT", (param("Path", value, quoted=True),))])
    with pytest.raises(ConfError, match="cannot be written"):
        render([Block("EXPORT", (param("Clients", value),))])
    with pytest.raises(ConfError, match="cannot be written"):
        render([Directive("include", value)])


@pytest.mark.parametrize("value", ["a b", "a,b", "a=b", "#a", "'a", "%a", ""])
def test_a_bare_value_must_stay_one_word(value: str) -> None:
    with pytest.raises(ConfError):
        render([Block("CLIENT", (param("Clients", value),))])
    assert parse(render([Block("X", (param("Path", value, quoted=True),))])) == (
        Block("X", (param("Path", value, quoted=True),)),)


@pytest.mark.parametrize("name", ["", "a b", "EXPORT{", "1x", "a-b"])
def test_names_that_are_not_names_are_refused(name: str) -> None:
    with pytest.raises(ConfError):
        render([Block(name)])
    with pytest.raises(ConfError):
        render([Block("X", (param(name, "1"),))])


# ----- properties -----------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
bare = st.text(alphabet=string.ascii_letters + string.digits + "_./@:*+-!~$&?[]()<>|^`", min_size=1,
               max_size=12)
quoted = st.text(alphabet=st.characters(blacklist_characters='"\n\r;{}\\',
                                        blacklist_categories=("Cc", "Cs")), max_size=12)
values = st.one_of(bare.map(Value), quoted.map(lambda t: Value(t, True)))
params = st.builds(Param, names, st.lists(values, min_size=1, max_size=4).map(tuple))


def _blocks(children: st.SearchStrategy[Block]) -> st.SearchStrategy[Block]:
    return st.builds(Block, names, st.lists(st.one_of(params, children), max_size=4).map(tuple),
                     st.booleans())


blocks = st.recursive(st.builds(Block, names, st.lists(params, max_size=4).map(tuple), st.booleans()),
                      _blocks, max_leaves=12)
directives = st.builds(Directive, st.sampled_from(["include", "url"]), quoted)
documents = st.lists(st.one_of(blocks, directives), max_size=4)


def _flat(node: Node, inline: bool = False) -> Node:
    """A tree as it reads back: inside a block written on one line, every block is on one line."""
    if isinstance(node, Directive):
        return node
    inline = inline or node.inline
    return Block(node.name, tuple(i if isinstance(i, Param) else _flat(i, inline) for i in node.items),
                 inline)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_render_parse_render_is_the_identity(nodes: list[Node]) -> None:
    text = render(nodes)
    back = parse(text)
    assert back == tuple(_flat(n) for n in nodes)
    assert render(back) == text


grammar = st.text(alphabet='{}=;,#"\'%\n \tEXPORT_id1/.@-', max_size=80)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=80), grammar))
def test_parse_of_any_text_raises_nothing_but_conf_error(text: str) -> None:
    try:
        nodes = parse(text)
    except ConfError:
        return
    assert all(isinstance(n, Block | Directive) for n in nodes)
