"""Schema files are untrusted: no DTDs, no entities (so no XXE, no billion laughs), XInclude only next door."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickline.codecs import SchemaError, load_schema

from codecs_helpers import HEADER_TYPES

OPEN = '<sbe:messageSchema xmlns:sbe="http://fixprotocol.io/2016/sbe" xmlns:xi="http://www.w3.org/2001/XInclude" package="t" id="7">'


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    lol = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
           '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n]>\n'
           f'{OPEN}<types><type name="x" primitiveType="char" length="9">&lol2;</type></types></sbe:messageSchema>')
    with pytest.raises(SchemaError) as info:
        load_schema(write(tmp_path / "lol.xml", lol))
    assert str(info.value) == ("schema error (the schema author's fault, fix the schema): file=lol.xml line=2 "
                               "element=!DOCTYPE: document type declarations (DTDs) are not allowed in a schema "
                               "(untrusted input: no DTDs, no entities)")


def test_external_entity_is_refused_and_nothing_is_read(tmp_path: Path) -> None:
    secret = write(tmp_path / "secret.txt", "TOP SECRET")
    xxe = (f'<?xml version="1.0"?>\n<!DOCTYPE s [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
           f'{OPEN}<types><type name="x" primitiveType="char" length="9">&xxe;</type></types></sbe:messageSchema>')
    with pytest.raises(SchemaError) as info:
        load_schema(write(tmp_path / "xxe.xml", xxe))
    assert "element=!DOCTYPE: document type declarations (DTDs) are not allowed" in str(info.value)
    assert "TOP SECRET" not in str(info.value)


@pytest.mark.parametrize("href", ["../outside.xml", "sub/types.xml", "http://example.com/types.xml", "/etc/passwd",
                                  "file:///etc/passwd"])
def test_xinclude_only_of_files_next_to_the_schema(tmp_path: Path, href: str) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "types.xml", HEADER_TYPES)
    write(tmp_path / "outside.xml", HEADER_TYPES)
    schema_dir = tmp_path / "schemas"
    schema_dir.mkdir()
    path = write(schema_dir / "s.xml", f'<?xml version="1.0"?>\n{OPEN}\n<xi:include href="{href}"/>\n</sbe:messageSchema>')
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert str(info.value) == ("schema error (the schema author's fault, fix the schema): file=s.xml line=3 "
                               f"element=include: xi:include may only name a file next to the schema, got href={href}")


def test_symlink_next_to_the_schema_may_not_point_elsewhere(tmp_path: Path) -> None:
    write(tmp_path / "outside.xml", HEADER_TYPES)
    schema_dir = tmp_path / "schemas"
    schema_dir.mkdir()
    (schema_dir / "link.xml").symlink_to(tmp_path / "outside.xml")
    path = write(schema_dir / "s.xml", f'<?xml version="1.0"?>\n{OPEN}\n<xi:include href="link.xml"/>\n</sbe:messageSchema>')
    with pytest.raises(SchemaError, match="xi:include may only name a file next to the schema, got href=link.xml"):
        load_schema(path)


def test_xinclude_next_to_the_schema_works(tmp_path: Path) -> None:
    write(tmp_path / "types.xml", HEADER_TYPES)
    path = write(tmp_path / "s.xml", f'<?xml version="1.0"?>\n{OPEN}\n<xi:include href="types.xml"/>\n'
                                     '<sbe:message name="M" id="1"><field name="a" id="1" type="uint8"/></sbe:message>\n'
                                     '</sbe:messageSchema>')
    schema = load_schema(path)
    assert schema.header.size == 8 and schema.messages[0].block_length == 1


def test_xinclude_cycle_and_text_includes_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "a.xml", '<types xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="b.xml"/></types>')
    write(tmp_path / "b.xml", '<types xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="a.xml"/></types>')
    path = write(tmp_path / "s.xml", f'<?xml version="1.0"?>\n{OPEN}\n<xi:include href="a.xml"/>\n</sbe:messageSchema>')
    with pytest.raises(SchemaError, match="file=b.xml line=1 element=include: xi:include cycle or nesting too deep at href=a.xml"):
        load_schema(path)
    text = write(tmp_path / "t.xml", f'<?xml version="1.0"?>\n{OPEN}\n<xi:include href="a.xml" parse="text"/>\n</sbe:messageSchema>')
    with pytest.raises(SchemaError, match="line=3 element=include: only parse=xml includes are supported, got parse=text"):
        load_schema(text)


def test_malformed_xml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.xml", f'<?xml version="1.0"?>\n{OPEN}\n<types>\n</typo>\n</sbe:messageSchema>')
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert str(info.value) == ("schema error (the schema author's fault, fix the schema): file=bad.xml line=4 "
                               "element=?: not well-formed XML: mismatched tag")
