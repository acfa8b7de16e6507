"""Names of groups whose titles name no type of their own ("Men Black Shoe" under Shoes): they are named by how
their descriptions qualify the node's name (`GroupNamer.qualified`, `Hierarchy(describe_typeless=True)`), and such a
group is shown as a part of the sibling of that name. Expected names are written by hand from the titles and
descriptions below."""

from __future__ import annotations

import numpy as np

from core.discover.levels import Hierarchy
from core.discover.naming import GroupNamer

PER = 20


def test_qualified_phrases_are_a_modifier_and_the_noun_within_a_sentence():
    namer = GroupNamer()
    text = "These casual shoes from Nike are light. Great for running: shoes that last, the Nike shoes."
    assert namer.qualified(text, "shoe", "Nike") == {("casual", "shoes")}  # "these", "the": stop words; ":" ends a phrase
    assert namer.qualified(text, "shoe") == {("casual", "shoes"), ("nike", "shoes")}  # without its brand
    assert namer.qualified("Comfy running shoe and walking shoes", "shoe") == {("running", "shoe"), ("walking", "shoes")}
    assert namer.qualified("Casual shoes by Puma", "shoe", "Puma") == {("casual", "shoes")}
    assert namer.qualified("Puma shoes", "shoe", "Puma") == set()  # the brand is no modifier
    assert namer.qualified("casual casual shoes", "shoe", max_words=3) == {("casual", "shoes")}  # no repeated word


def three_groups(typeless_descriptions: list[str]):
    """Leaf 0: casual shoes, leaf 1: formal shoes (their titles say so), leaf 2: titles with no type word
    ("Men Black Shoe"), described by `typeless_descriptions` (cycled); well apart in X."""
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8) * 5
    X = np.vstack([c + rng.normal(scale=0.1, size=(PER, 8)) for c in centres])
    labels = np.repeat(np.arange(3), PER)
    colours = ["Black", "White", "Brown", "Grey"]
    titles = (
        [f"Men {colours[i % 4]} Casual Shoes" for i in range(PER)]
        + [f"Men {colours[i % 4]} Formal Shoes" for i in range(PER)]
        + [f"Men {colours[i % 4]} Shoe" for i in range(PER)]
    )
    descriptions = (
        ["Relaxed shoes for the weekend."] * PER
        + ["Leather upper and a sleek toe."] * PER
        + [typeless_descriptions[i % len(typeless_descriptions)] for i in range(PER)]
    )
    return X, labels, titles, descriptions


def names_at_three(describe: bool, typeless_descriptions: list[str]) -> list[tuple[str, list[str]]]:
    X, labels, titles, descriptions = three_groups(typeless_descriptions)
    hier = Hierarchy(node_name="Shoes", k_min=2, k_max=3, describe_typeless=describe)
    hier.fit(X, labels, titles, descriptions=descriptions)
    return sorted((g["name"], sorted(p["name"] for p in g["parts"])) for g in hier.level(3))


def test_a_typeless_group_is_named_by_its_descriptions_and_shown_as_part_of_its_namesake():
    said = ["A pair of casual shoes with laces.", "These black casual shoes suit jeans.", "Comfortable casual shoes."]
    assert names_at_three(False, said) == [("Casual Shoes", []), ("Formal Shoes", []), ("Other Shoes", [])]
    # its descriptions call them casual shoes: one proposal "Casual Shoes" of the two groups (the part: no title word
    # separates it from its namesake, both "Men <colour> ...": "Other Casual Shoes")
    assert names_at_three(True, said) == [("Casual Shoes", ["Casual Shoes", "Other Casual Shoes"]), ("Formal Shoes", [])]


def test_a_typeless_group_whose_descriptions_qualify_the_name_only_by_colour_stays_other():
    said = ["Smart black shoes.", "Classic white shoes.", "Brown shoes with laces."]
    assert names_at_three(True, said) == [("Casual Shoes", []), ("Formal Shoes", []), ("Other Shoes", [])]


def test_a_typeless_group_described_by_a_new_kind_gets_that_name():
    said = ["Light running shoes for the track.", "Cushioned running shoes.", "Running shoes with mesh."]
    assert names_at_three(True, said) == [("Casual Shoes", []), ("Formal Shoes", []), ("Running Shoes", [])]


def test_a_typeless_group_joins_its_namesake_even_when_that_is_not_among_its_nearest_groups():
    """Six groups: the typeless one lies between Sports Shoes, Heels and Flats (its three nearest), far from Casual
    Shoes; its descriptions call it casual shoes: it is still shown as a part of "Casual Shoes"."""
    rng = np.random.default_rng(1)
    centres = np.vstack([np.eye(5, 8) * 5, 5 * (np.eye(8)[2] + np.eye(8)[3] + np.eye(8)[4]) / np.sqrt(3)])
    X = np.vstack([c + rng.normal(scale=0.05, size=(PER, 8)) for c in centres])
    labels = np.repeat(np.arange(6), PER)
    kinds = ["Casual Shoes", "Formal Shoes", "Sports Shoes", "Heels", "Flats", "Shoe"]
    titles = [f"Men {['Black', 'White'][i % 2]} {kind}" for kind in kinds for i in range(PER)]
    descriptions = ["Relaxed for the weekend."] * (5 * PER) + ["A pair of casual shoes with laces."] * PER
    hier = Hierarchy(node_name="Shoes", k_min=2, k_max=6).fit(X, labels, titles, descriptions=descriptions)
    groups = {g["name"]: sorted(p["name"] for p in g["parts"]) for g in hier.level(6)}
    assert groups == {
        "Casual Shoes": ["Casual Shoes", "Other Casual Shoes"],
        "Formal Shoes": [],
        "Sports Shoes": [],
        "Heels": [],
        "Flats": [],
    }
