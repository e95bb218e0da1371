"""Option parsing from `--option key=value` text into the types an embedder's __init__ declares."""

from __future__ import annotations

from typing import Literal

import pytest

from embedx.contract.errors import OptionError
from embedx.contract.options import option_specs, parse_option_pairs, resolve_options


class Demo:
    def __init__(self, path: str, layers: list[int] | None = None, pooling: Literal["mean", "max"] = "mean",
                 lower: bool = False, scale: float = 1.0, size: int = 3):
        pass


def test_text_values_become_the_declared_types():
    opts = resolve_options("demo", Demo, {}, {"path": "a.bin", "layers": "-1,-2", "pooling": "max",
                                              "lower": "yes", "scale": "0.5", "size": "7"})
    assert opts == {"path": "a.bin", "layers": [-1, -2], "pooling": "max", "lower": True, "scale": 0.5, "size": 7}
    assert resolve_options("demo", Demo, {}, {"path": "p", "layers": "[1, 2]"})["layers"] == [1, 2]
    assert resolve_options("demo", Demo, {}, {"path": "p", "layers": "none"})["layers"] is None


def test_presets_sit_between_defaults_and_user_values():
    assert resolve_options("demo", Demo, {"path": "preset", "size": 5}, {"size": "9"})["path"] == "preset"
    assert resolve_options("demo", Demo, {"path": "preset", "size": 5}, {"size": "9"})["size"] == 9


@pytest.mark.parametrize("given, message", [
    ({}, "needs option 'path'"),
    ({"path": "p", "pooling": "median"}, "option 'pooling': 'median' is not a valid mean|max"),
    ({"path": "p", "size": "3.5"}, "option 'size': '3.5' is not a valid int"),
    ({"path": "p", "lower": "maybe"}, "expected true or false"),
    ({"path": "p", "colour": "red"}, "has no option 'colour'"),
])
def test_bad_options_name_the_option_and_embedder(given, message):
    with pytest.raises(OptionError, match=message):
        resolve_options("demo", Demo, {}, given)


def test_pairs_need_an_equals_sign():
    assert parse_option_pairs(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(OptionError, match="expected key=value"):
        parse_option_pairs(["oops"])


def test_specs_describe_types():
    specs = option_specs(Demo)
    assert specs["path"].required and specs["layers"].type_label == "list of int or none"
