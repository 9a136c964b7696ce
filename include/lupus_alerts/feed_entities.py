"""Small internal entities of a feed's DOCTYPE, expanded within limits before any parser runs.

Some feeds declare an entity or two in their DOCTYPE (feedparser's test suite has the case
`<!ENTITY id "tag:example.com,">`). Refusing every declaration cost such a journal its whole
feed; expanding them with an XML parser is how entity bombs work. So they are expanded here, on
the bytes, by rules narrow enough to reason about, and the document handed on has no internal
subset left:

- only general entities with a literal value (`<!ENTITY name "value">`); an external entity
  (SYSTEM/PUBLIC, NDATA), a parameter entity (`<!ENTITY % ...>`, `%name;`), markup (`<`) in a
  value, a reference to an undeclared entity, a cycle, or a subset that cannot be read refuses
  the whole document;
- at most `MAX_ENTITIES` declarations, each value at most `MAX_ENTITY_BYTES` once expanded, at
  most `MAX_ENTITY_DEPTH` entities deep (an entity may be made of entities that are made of
  none), and at most `MAX_EXPANSION_BYTES` added to the document in all: a billion-laughs bomb
  fails the depth and size limits, a quadratic blow-up (one large entity referenced many times)
  the total;
- references are replaced in text and attribute values, never inside CDATA sections, comments
  or processing instructions (where XML does not expand them either); quotes in a value are
  written as `&quot;`/`&apos;` so that it cannot end an attribute. Character references in a
  value are kept as references: they are decoded once, as text, never turned into markup (XML
  proper would decode them when the entity is declared and parse the result as markup).

Works on documents in ASCII-compatible encodings (UTF-8, Latin-n, cp125x), which is what feeds
use; a document in UTF-16/32, UTF-7 or EBCDIC that declares entities is left alone here and
refused by `feeds.refuse_unsafe_xml`, which runs on the result. ElementTree-style limits on the
same three axes are what libexpat 2.4+ and defusedxml settled on; these are stricter.
"""

from __future__ import annotations

import re

MAX_ENTITIES = 32
MAX_ENTITY_BYTES = 1024
MAX_ENTITY_DEPTH = 2
MAX_EXPANSION_BYTES = 1_000_000
_PREDEFINED = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})

_NAME = rb"[A-Za-z_:][-A-Za-z0-9._:]*"
_QUOTED = rb"(?:\"[^\"]*\"|'[^']*')"
_DOCTYPE = re.compile(
    rb"<!DOCTYPE\s+("
    + _NAME
    + rb")((?:\s+(?:SYSTEM\s+"
    + _QUOTED
    + rb"|PUBLIC\s+"
    + _QUOTED
    + rb"\s+"
    + _QUOTED
    + rb"))?)\s*(\[|>)"
)
# What may come before the DOCTYPE: a BOM, the XML declaration, comments, PIs, white space.
_PROLOG = re.compile(rb"(?:\xef\xbb\xbf)?(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.S)
_SUBSET_TOKEN = re.compile(
    rb"(?P<space>\s+)"
    rb"|(?P<comment><!--.*?-->)"
    rb"|(?P<pi><\?.*?\?>)"
    rb"|(?P<internal><!ENTITY\s+(?P<name>" + _NAME + rb")\s+(?P<value>" + _QUOTED + rb")\s*>)"
    rb"|(?P<entity><!ENTITY\b)"
    rb"|(?P<markupdecl><!(?:ELEMENT|ATTLIST|NOTATION)\b(?:[^>\"']|" + _QUOTED + rb")*>)"
    rb"|(?P<end>\]\s*>)",
    re.S,
)
_REFERENCE = re.compile(rb"&(#[0-9]+|#x[0-9A-Fa-f]+|" + _NAME + rb");")
# In the body, CDATA sections, comments and PIs are skipped whole; references elsewhere expand.
_BODY_TOKEN = re.compile(rb"<!\[CDATA\[.*?\]\]>|<!--.*?-->|<\?.*?\?>|&(" + _NAME + rb");", re.S)


class EntityRefused(ValueError):
    """The DOCTYPE declares something this module will not expand; the message says what."""


def expand_internal_entities(data: bytes) -> bytes:
    """`data` with its DOCTYPE's internal entities expanded and its internal subset removed.

    Returns `data` unchanged when its prolog has no DOCTYPE with an internal subset. Raises
    `EntityRefused` for anything outside the rules in the module docstring.
    """
    m = _DOCTYPE.search(data)
    if m is None or m.group(3) != b"[" or _PROLOG.match(data, 0, m.start()).end() != m.start():
        return data
    values: dict[bytes, bytes] = {}
    pos = m.end()
    while True:
        t = _SUBSET_TOKEN.match(data, pos)
        if t is None:
            raise EntityRefused(f"unreadable DOCTYPE internal subset at byte {pos}")
        pos = t.end()
        kind = t.lastgroup
        if kind == "end":
            break
        if kind == "entity":
            raise EntityRefused("the DOCTYPE declares an external or parameter entity")
        if kind == "internal":
            if len(values) >= MAX_ENTITIES:
                raise EntityRefused(f"the DOCTYPE declares more than {MAX_ENTITIES} entities")
            value = t.group("value")[1:-1]
            if len(value) > MAX_ENTITY_BYTES:
                raise EntityRefused(
                    f"entity {t.group('name').decode()} is longer than {MAX_ENTITY_BYTES} bytes"
                )
            values.setdefault(t.group("name"), value)  # the first declaration binds (XML 1.0, 4.2)
    if not values:
        return data[: m.start()] + _bare_doctype(m) + data[pos:]
    resolved = _resolve_all(values)
    return data[: m.start()] + _bare_doctype(m) + _expand_body(data, pos, resolved)


def _bare_doctype(m: re.Match[bytes]) -> bytes:
    # The name and external id stay (feedparser reads the Netscape RSS 0.91 DTD's id).
    return b"<!DOCTYPE " + m.group(1) + m.group(2) + b">"


def _resolve_all(values: dict[bytes, bytes]) -> dict[bytes, bytes]:
    # name -> (replacement text, height: 1 for an entity made of no entities, 2 for one made of
    # those, ...); memoised, so each value is expanded once however often it is referenced.
    resolved: dict[bytes, tuple[bytes, int]] = {}

    def resolve(name: bytes, chain: tuple[bytes, ...]) -> tuple[bytes, int]:
        if name in resolved:
            return resolved[name]
        if name in chain:
            raise EntityRefused(f"entity {name.decode()} refers to itself")
        raw = values[name]
        if b"<" in raw or b"%" in raw:
            raise EntityRefused(f"entity {name.decode()} holds markup or a parameter reference")
        out: list[bytes] = []
        size = 0
        height = 1
        last = 0
        for ref in _REFERENCE.finditer(raw):
            piece = raw[last : ref.start()]
            target = ref.group(1)
            if target.startswith(b"#") or target in _PREDEFINED:
                piece += ref.group(0)  # decoded once, later, as text
            elif target in values:
                text, inner = resolve(target, (*chain, name))
                height = max(height, inner + 1)
                if height > MAX_ENTITY_DEPTH:
                    raise EntityRefused(f"entities are nested more than {MAX_ENTITY_DEPTH} deep")
                piece += text
            else:
                raise EntityRefused(f"entity {name.decode()} refers to undeclared {target.decode()}")
            out.append(piece)
            size += len(piece)
            if size > MAX_ENTITY_BYTES:
                raise EntityRefused(f"entity {name.decode()} expands past {MAX_ENTITY_BYTES} bytes")
            last = ref.end()
        tail = raw[last:]
        if b"&" in tail:
            raise EntityRefused(f"entity {name.decode()} holds a malformed reference")
        text = b"".join(out) + tail
        if len(text) > MAX_ENTITY_BYTES:
            raise EntityRefused(f"entity {name.decode()} expands past {MAX_ENTITY_BYTES} bytes")
        resolved[name] = (text, height)
        return resolved[name]

    for name in values:
        resolve(name, ())
    # Quotes as references: a value can then never close the attribute it is used in.
    return {k: v.replace(b'"', b"&quot;").replace(b"'", b"&apos;") for k, (v, _h) in resolved.items()}


def _expand_body(data: bytes, start: int, resolved: dict[bytes, bytes]) -> bytes:
    out: list[bytes] = []
    grown = 0
    last = start
    for t in _BODY_TOKEN.finditer(data, start):
        name = t.group(1)
        if name is None or name not in resolved:
            continue  # CDATA, comment, PI, or a predefined/undeclared reference: left as written
        value = resolved[name]
        grown += len(value) - len(t.group(0))
        if grown > MAX_EXPANSION_BYTES:
            raise EntityRefused(f"entity expansion would add more than {MAX_EXPANSION_BYTES} bytes")
        out.append(data[last : t.start()])
        out.append(value)
        last = t.end()
    out.append(data[last:])
    return b"".join(out)
