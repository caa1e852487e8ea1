"""The field rules of domain/validation.py, one by one (issue 17): names may
carry combining marks, descriptions take any text but control characters,
lone surrogates and bidirectional controls, hostnames follow part 2 §6."""
from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localbcc.domain import validation as v
from localbcc.errors import BceError, ErrorCode

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


# -- names ------------------------------------------------------------------------------

@pytest.mark.parametrize("good", [
    "a", "Z", "a" * 65, "名字", "中文-密钥_1", "a-b_c/d.e", "Web.Server/01",
    "cafe\u0301",                                # NFD "café": e + COMBINING ACUTE ACCENT
    "caf\u00e9",                                 # its composed form
    "x\u0938\u0930\u094d\u0935\u0930",           # "सर्वर" after a Latin letter (virama: Mn)
    "\u0938\u0930\u094d\u0935\u0930",            # Devanagari letters first (Lo)
    "\u0e40\u0e0b\u0e34\u0e23\u0e4c\u0e1f",      # Thai, with above-vowels and a thanthakhat (Mn)
    "a\u0915\u093e",                             # KA + vowel sign AA (Mc)
    "e\u0323\u0302",                             # two marks on one letter (NFD "ệ")
    "a\u20dd",                                   # an enclosing mark (Me)
    "\u00e9" + "e\u0301" * 32,                   # 65 code points
])
def test_names_that_pass(good):
    assert v.is_name(good)
    assert v.keypair_name({"name": good}) == good  # returned as sent, not normalised


@pytest.mark.parametrize("bad", [
    "", "1abc", "-abc", "_abc", ".abc", "/abc", "a b", " ab", "ab ", "a" * 66, "名" * 66,
    "a!b", "a@b", "a:b", "a\tb", "a\nb", "ab\n", "a\u3000b", "a\x00b", "a+b", "a\x1b[2Jb",
    "\u0301a",            # a mark first: it carries no letter
    "a1\u0301",           # a mark on a digit
    "a-\u0301",           # a mark on a symbol
    "a\u200db",           # ZWJ (Cf) is no letter, digit or allowed symbol
    "e" + "\u0301" * 65,  # 66 code points: marks count
])
def test_names_that_fail(bad):
    assert not v.is_name(bad)
    with pytest.raises(BceError) as info:
        v.keypair_name({"name": bad})
    assert info.value.code is ErrorCode.KeypairNameInvalid


@given(st.text(alphabet=st.characters(categories=("Lu", "Ll", "Lo")), min_size=1, max_size=20),
       st.lists(st.characters(categories=("Mn", "Mc", "Me")), max_size=3))
def test_a_letter_may_carry_any_marks(letters, marks):
    name = "".join(ch + "".join(marks) for ch in letters)
    assert v.is_name(name) == (len(name) <= 65)


@given(st.text(min_size=1, max_size=70))
def test_the_name_rule_unit_by_unit(name):
    """Independently written: a letter (with marks) first, then letters with their marks,
    digits and the four symbols; nothing else."""
    expected = 1 <= len(name) <= 65 and name[0].isalpha()
    prev_letter = False
    for ch in name:
        mark = unicodedata.category(ch) in ("Mn", "Mc", "Me")
        if mark:
            expected = expected and prev_letter
            continue
        prev_letter = ch.isalpha()
        expected = expected and (ch.isalnum() or ch in "-_/.")
    assert v.is_name(name) == expected


def test_instance_names_are_inappropriate_json_naming_the_field():
    assert v.instance_name({"name": "web-1"}) == "web-1"
    assert v.instance_name({}) is None and v.instance_name({"name": ""}) is None
    for bad in ("1web", "a b", "a" * 66, "a\x1bb", 5):
        with pytest.raises(BceError) as info:
            v.instance_name({"name": bad})
        assert info.value.code is ErrorCode.InappropriateJSON and "'name'" in info.value.message


# -- descriptions -----------------------------------------------------------------------

@pytest.mark.parametrize("good", [
    "", "plain", "x" * 140, "中文描述 with spaces, punctuation! ~ @#$%^&*()",
    "a\u3000b",                       # IDEOGRAPHIC SPACE, what CJK input methods type
    "no\u00a0break",                  # NO-BREAK SPACE
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # family emoji: a ZWJ sequence
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian with ZWNJ
    "cafe\u0301", "\u0938\u0930\u094d\u0935\u0930", "\u0e44\u0e17\u0e22",
    "\u200e\u200f",                   # LRM/RLM marks are not embedding/override/isolate
    "\ufeffbom", "\ue000private", "\u2028",
])
def test_descriptions_that_pass(good):
    assert v.is_text(good)
    assert v.keypair_description({"description": good}) == good  # stored as sent


@pytest.mark.parametrize("bad", [
    "x" * 141, "tab\there", "line\nbreak", "cr\r", "nul\x00", "bell\x07", "esc\x1b[31m",
    "del\x7f", "c1\x85", "c1\x9b", "lone\ud800", "lone\udfff",
    *[f"a{ch}b" for ch in BIDI],
])
def test_descriptions_that_fail(bad):
    assert not v.is_text(bad)
    with pytest.raises(BceError) as info:
        v.keypair_description({"description": bad})
    assert info.value.code is ErrorCode.KeypairDescriptionInvalid


@given(st.text(max_size=150))
def test_the_description_rule(text):
    bad = any(unicodedata.category(c) in ("Cc", "Cs") or c in BIDI for c in text)
    assert v.is_text(text) == (len(text) <= 140 and not bad)


def test_description_null_is_empty_and_other_types_are_inappropriate():
    assert v.keypair_description({}) == "" and v.keypair_description({"description": None}) == ""
    with pytest.raises(BceError) as info:
        v.keypair_description({"description": 5})
    assert info.value.code is ErrorCode.InappropriateJSON


# -- hostnames --------------------------------------------------------------------------

@pytest.mark.parametrize("good", [
    "ab", "a1", "web-1", "web-host", "db-7", "box", "a.b.c", "a-b.c-d", "i-abcd1234",
    "a" * 64, "x1-2.3y",
])
def test_hostnames_that_pass(good):
    assert v.is_hostname(good)
    assert v.hostname({"hostname": good}) == good


@pytest.mark.parametrize("bad", [
    "a", "a" * 65, "1ab", "-ab", ".ab", "Web", "wEb", "a--b", "a.-b", "a..b", "ab-", "ab.",
    "a_b", "a b", "a/b", "ab\n", "a\x1b]0;pwned\x07", "ab\x07", "a\nb", "名字", "café",
    "\uff41b",  # FULLWIDTH a
])
def test_hostnames_that_fail(bad):
    assert not v.is_hostname(bad)
    with pytest.raises(BceError) as info:
        v.hostname({"hostname": bad})
    assert info.value.code is ErrorCode.InappropriateJSON
    assert "'hostname'" in info.value.message


@given(st.text(alphabet="abz09-.", min_size=0, max_size=70))
def test_the_hostname_rule(text):
    expected = (2 <= len(text) <= 64 and text[0].isalpha() and text[-1] not in "-."
                and "--" not in text and ".." not in text and "-." not in text
                and ".-" not in text)
    assert v.is_hostname(text) == expected


def test_absent_or_empty_hostname_means_the_default():
    assert v.hostname({}) is None and v.hostname({"hostname": ""}) is None


# -- ids --------------------------------------------------------------------------------

def test_ids():
    assert v.is_id(v.new_id("k-"), "k-") and v.is_id("i-AbCd0123", "i-")
    for bad in ("k-abc", "k-abcdefghi", "i-abcdefgh", "k-abcdefg!", "k-abcdefg\n", "kabcdefgh"):
        assert not v.is_id(bad, "k-")
