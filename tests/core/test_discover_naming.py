"""Category-style names for groups of products (core.discover.naming.GroupNamer, distinct_names)."""

from __future__ import annotations

import numpy as np

from core.discover.naming import Candidate, GroupNamer, distinct_names, lead_phrase, lemma, name_key, plural, title_case


def names_of(titles_by_group: list[list[str]], **kw) -> list[str]:
    """The best candidate of each group (no sibling rule), from titles given group by group."""
    titles = [t for group in titles_by_group for t in group]
    labels = np.repeat(np.arange(len(titles_by_group)), [len(g) for g in titles_by_group])
    brands = kw.pop("brands", None)
    node_name = kw.pop("node_name", "")
    namer = GroupNamer(**kw)
    counts = namer.count(titles, labels, brands=brands, min_count=1)
    return [
        (namer.ranked(counts, [g], node_name=node_name) or [Candidate("", "", 0.0)])[0].text for g in range(len(titles_by_group))
    ]


def test_lemma_and_name_key_ignore_case_plurals_and_hyphens():
    assert [lemma(w) for w in ("heels", "dresses", "watches", "accessories", "shoes", "dress")] == [
        "heel",
        "dress",
        "watch",
        "accessory",
        "shoe",
        "dress",
    ]
    assert name_key("Sports Shoes") == name_key("sport shoe")
    assert name_key("T-Shirts") == name_key("tshirt")
    assert name_key("Heels") != name_key("Flats")


def test_names_are_plural_like_category_names():
    assert [plural(n) for n in ("Kurta", "Polo T-Shirt", "Dress", "Accessory", "Watch")] == [
        "Kurtas",
        "Polo T-Shirts",
        "Dresses",
        "Accessories",
        "Watches",
    ]
    assert [plural(n) for n in ("Heels", "Footwear", "Jewellery", "Leather", "Size 9")] == [
        "Heels",
        "Footwear",
        "Jewellery",
        "Leather",
        "Size 9",
    ]
    tops = ["Women Blue Top", "Women Red Top", "Women Top"]
    assert names_of([["Women Printed Kurta"] * 3, tops]) == ["Kurtas", "Tops"]  # "top" is no stop word here


def test_title_case_keeps_hyphens_and_small_words():
    assert title_case("running shoes") == "Running Shoes"
    assert title_case("t-shirts") == "T-Shirts"
    assert title_case("socks and tights") == "Socks and Tights"


def test_names_are_title_case_types_without_colours_that_do_not_separate():
    running = ["Men Black Running Shoes", "Women White Running Shoes", "Men Blue Running Shoes", "Men Black Running Shoes"]
    heels = ["Women Black Heels", "Women White Heels", "Women Blue Heels", "Women Black Heels"]
    assert names_of([running, heels]) == ["Running Shoes", "Heels"]


def test_a_colour_that_separates_the_group_stays_in_its_name():
    white = ["Men White Sneakers", "Women White Sneakers", "Men White Sneakers"]
    other = ["Men Black Sneakers", "Women Blue Sneakers", "Men Grey Sneakers"]
    first, second = names_of([white, other])
    assert first == "White Sneakers"
    assert "White" not in second and "Black" not in second


def test_no_candidate_name_repeats_a_lemma():
    heels = ["Women Heels Heel", "Women Party Heels Heel", "Women Heels Heel", "Heels Heel"]
    flats = ["Women Flats", "Women Ballerina Flats", "Women Flats", "Flats"]
    titles, labels = heels + flats, np.repeat([0, 1], 4)
    namer = GroupNamer()
    counts = namer.count(titles, labels, min_count=1)
    for group in (0, 1):
        ranked = namer.ranked(counts, [group])
        assert ranked
        for cand in ranked:
            lemmas = [lemma(w) for w in cand.text.lower().split()]
            assert len(lemmas) == len(set(lemmas)), cand.text  # never "Heels Heel"


def test_a_brand_never_names_a_group():
    # the type word is shared by both groups; only the brands tell them apart
    acme = ["Acme Trail Runners", "Acme Runners", "Acme Runners", "Acme Trail Runners"]
    bolt = ["Bolt Runners", "Bolt Road Runners", "Bolt Runners", "Bolt Runners"]
    names = names_of([acme, bolt], brands=["Acme"] * 4 + ["Bolt"] * 4)
    assert not any(brand in name for name in names for brand in ("Acme", "Bolt"))
    assert names[0] in ("Runners", "Trail Runners")


def test_brands_leave_only_their_own_titles():
    titles = [["F Sports Men Sports Shoes", "Puma Men Sports Shoes", "Nike Men Sports Shoes"], ["Bata Men Formal Shoes"] * 3]
    brands = ["F Sports", "Puma", "Nike", "Bata", "Bata", "Bata"]
    names = names_of(titles, brands=brands)
    assert names == ["Sports Shoes", "Formal Shoes"]  # "sports" left only the F Sports title, "Bata" left all three


def test_filler_or_size_words_alone_never_name_a_group():
    unisex = ["Unisex Size 9", "Unisex Size 10", "Unisex Size 8"]
    loafers = ["Men Loafers", "Men Brown Loafers", "Men Loafers"]
    names = names_of([unisex, loafers])
    assert names[0] == ""  # no candidate: every word is a filler or size word
    assert names[1] == "Loafers"


def test_a_material_alone_names_a_group_only_when_it_separates_it():
    leather = ["Leather Loafers", "Leather Brogues", "Leather Derbys", "Leather Oxfords"]
    canvas = ["Canvas Sneakers", "Canvas Sneakers", "Canvas Sneakers", "Canvas Sneakers"]
    names = names_of([leather, canvas])
    assert names[1] == "Canvas Sneakers"
    assert names[0] == "Leather"  # every product holds it and no sibling does: it is what separates the group
    mixed = [["Leather Loafers", "Suede Loafers"], ["Leather Sandals", "Suede Sandals"]]
    assert names_of(mixed) == ["Loafers", "Sandals"]


def test_the_node_name_is_never_proposed():
    titles = [["Men Black Shoes", "Men Brown Shoes", "Men Casual Shoes"], ["Women Heels"] * 3]
    first, _ = names_of(titles, node_name="Shoes")
    assert name_key(first) != name_key("Shoes")
    assert first == "Casual Shoes"


def cand(text: str, score: float = 1.0) -> Candidate:
    words = tuple(lemma(w) for w in text.lower().split())
    return Candidate(name_key(text), text, score, words)


def test_distinct_names_never_repeat_a_sibling_or_an_existing_child():
    ranked = [[cand("Casual Shoes"), cand("Sneakers")], [cand("Casual Shoes"), cand("Loafers")], [cand("Heels"), cand("Pumps")]]
    named = distinct_names(ranked, taken=["Heels"])
    assert [n["name"] for n in named] == ["Casual Shoes", "Loafers", "Pumps"]
    every_one_taken = distinct_names([[cand("Heels")], [cand("Heels")], [cand("Heels")]])
    assert [n["name"] for n in every_one_taken] == ["Heels", "Other Heels", "Heels 3"]
    assert named[1]["duplicate_of"] == 0  # its best name was taken by group 0
    assert named[2]["duplicate_of"] is None and named[2]["existing"] == "Heels"  # an existing child, not a sibling
    assert named[0]["existing"] is None


def test_a_name_inside_a_used_name_is_not_distinct():
    named = distinct_names([[cand("Casual Shoes")], [cand("Casual"), cand("Canvas Shoes")]])
    assert [n["name"] for n in named] == ["Casual Shoes", "Canvas Shoes"]


def test_duplicates_are_qualified_by_the_separating_word():
    named = distinct_names(
        [[cand("Sports Shoes")], [cand("Sports Shoes")]], qualify=lambda i, j, best: f"Women {best.text}" if i == 1 else None
    )
    assert [n["name"] for n in named] == ["Sports Shoes", "Women Sports Shoes"]


def test_lead_phrase_is_the_description_opening_up_to_its_first_preposition():
    assert lead_phrase("Jumper in a soft knit with ribbing.") == "Jumper"
    assert lead_phrase("Long-sleeved sports top in fast-drying fabric.") == "Long-sleeved sports top"
    assert lead_phrase("Cardigan, soft and warm") == "Cardigan"
    # an opening longer than a product phrase (a sentence) and an empty description give nothing
    assert lead_phrase("Stylish everyday sneakers look great every single day.") == ""
    assert lead_phrase("") == "" and lead_phrase(None) == ""


def test_descriptions_name_groups_whose_titles_are_style_names():
    # titles are style names that never repeat ("Nils0"): only the descriptions' openings say what the products are
    titles = [f"{name}{i}" for i, name in enumerate(["Nils"] * 6 + ["Mike"] * 6)]
    descriptions = ["Jumper in a soft knit."] * 6 + ["T-shirt in cotton jersey."] * 6
    labels = np.repeat([0, 1], 6)
    namer = GroupNamer()
    with_desc = namer.count(titles, labels, descriptions=descriptions, min_count=1)
    assert [namer.ranked(with_desc, [g])[0].text for g in (0, 1)] == ["Jumpers", "T-Shirts"]
    without = namer.count(titles, labels, min_count=1)
    assert not {"jumper", "tshirt"} & {c.key for g in (0, 1) for c in namer.ranked(without, [g])}
