"""Settings from the environment, and the product catalog read from CSV."""

from __future__ import annotations

import io
from dataclasses import fields
from pathlib import Path

import pytest

from persona.catalog import Product, data_dir, default_catalog_path, read_catalog
from persona.settings import TOPICS, Settings

# --- settings ---------------------------------------------------------------------------------


def test_an_empty_environment_gives_the_defaults():
    assert Settings.from_env({}) == Settings()


def test_ints_and_floats_are_parsed_and_strings_kept():
    s = Settings.from_env({
        "PERSONA_PARTITIONS": "4", "PERSONA_REPLICATION": "3", "PERSONA_WEB_PORT": "7000",
        "PERSONA_SNAPSHOT_EVERY": "2.5", "PERSONA_APP_ID": "persona-test", "PERSONA_WEB_HOST": "0.0.0.0",
    })
    assert (s.partitions, s.replication, s.web_port) == (4, 3, 7000)
    assert all(type(v) is int for v in (s.partitions, s.replication, s.web_port))
    assert s.snapshot_every == 2.5 and type(s.snapshot_every) is float
    assert (s.app_id, s.web_host) == ("persona-test", "0.0.0.0")
    assert s.bootstrap == Settings().bootstrap  # untouched


@pytest.mark.parametrize("name, value", [("PERSONA_PARTITIONS", "eight"), ("PERSONA_WEB_PORT", "66.5"),
                                         ("PERSONA_SNAPSHOT_EVERY", "soon")])
def test_a_bad_number_is_an_error(name, value):
    with pytest.raises(ValueError):
        Settings.from_env({name: value})


def test_only_persona_variables_in_upper_case_count():
    assert Settings.from_env({"PARTITIONS": "2", "persona_partitions": "2", "PERSONA_NOT_A_SETTING": "x"}) == Settings()


def test_from_env_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("PERSONA_PARTITIONS", "16")
    monkeypatch.setenv("PERSONA_BOOTSTRAP", "kafka-1:9092")
    s = Settings.from_env()
    assert s.partitions == 16 and s.bootstrap == "kafka-1:9092"


def test_broker_url_with_one_host():
    assert Settings(bootstrap="127.0.0.1:9092").broker_url == "kafka://127.0.0.1:9092"


def test_broker_url_with_several_hosts():
    s = Settings.from_env({"PERSONA_BOOTSTRAP": "k1:9092, k2:9093,k3:9094"})
    assert s.broker_url == "kafka://k1:9092;kafka://k2:9093;kafka://k3:9094"


def test_faust_reads_every_broker_of_the_url():
    urls = pytest.importorskip("faust.utils.urls")
    parsed = urls.urllist(Settings(bootstrap="k1:9092,k2:9093").broker_url, default_scheme="kafka")
    assert [(u.scheme, u.host, u.port) for u in parsed] == [("kafka", "k1", 9092), ("kafka", "k2", 9093)]


def test_topics_are_the_topic_settings_with_distinct_names():
    s = Settings()
    assert {"events_topic", "catalog_topic", "dlq_topic", "aggregates_topic"} <= set(TOPICS)
    assert set(TOPICS) == {f.name for f in fields(Settings) if f.name.endswith("_topic")}
    names = [getattr(s, t) for t in TOPICS]
    assert len(set(names)) == len(names)
    assert all(n.startswith("persona.") for n in names)


# --- catalog: the shared CSV ------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog() -> list[Product]:
    path = default_catalog_path()
    if not path.is_file():
        pytest.skip(f"shared catalog not found at {path}")
    return read_catalog(path)


def test_the_real_catalog_has_2115_products_with_unique_ids(catalog):
    assert len(catalog) == 2115
    assert len({p.item_id for p in catalog}) == 2115
    assert len({p.brand for p in catalog}) == 236
    assert all(p.item_id and p.brand and p.name for p in catalog)


def test_the_real_catalog_notes_are_lower_case_tuples(catalog):
    for p in catalog:
        for notes in (p.notes, p.top_notes, p.heart_notes, p.base_notes):
            assert isinstance(notes, tuple)
            assert all(n and n == n.strip().lower() for n in notes), (p.item_id, notes)
    assert sum(bool(p.notes) for p in catalog) == len(catalog)


def test_the_real_catalog_first_row_is_read_field_by_field(catalog):
    # the first data line of perfume_final.csv, column by column
    p = catalog[0]
    assert (p.item_id, p.brand, p.name, p.category, p.gender) == (
        "12855", "Hugo Boss", "BOSS Bottled", "Eau de Toilette", "Men")
    assert (p.price, p.rating, p.reviews, p.family) == (739.0, 4.9, 144, "fruity")
    assert p.notes == ("apple", "bergamot", "lemon", "geranium", "carnation", "cinnamon", "sandalwood",
                       "vetiver", "cedar")
    assert (p.top_notes, p.heart_notes, p.base_notes) == (
        ("apple", "bergamot", "lemon"), ("geranium", "carnation", "cinnamon"), ("sandalwood", "vetiver", "cedar"))
    assert p.title == "Hugo Boss BOSS Bottled Eau de Toilette"
    assert p.url.endswith("index_12855.aspx") and p.image.startswith("https://")


def test_the_real_catalog_numbers_are_plausible(catalog):
    assert all(p.price > 0 for p in catalog)
    assert all(0 <= p.rating <= 5 for p in catalog)
    assert all(p.reviews >= 0 for p in catalog)
    assert {p.gender for p in catalog} == {"Men", "Women", "Unisex"}


def test_a_path_a_str_and_an_open_file_read_the_same(catalog):
    path = default_catalog_path()
    with open(path, newline="", encoding="utf-8") as f:
        from_file = read_catalog(f)
    assert read_catalog(str(path)) == catalog == from_file


# --- catalog: hand-made CSV -------------------------------------------------------------------


HEADER = ("perfume_id,brand,name,category,gender,base_price,notes,top_note,heart_note,base_note,fragrance,"
          "customer_rating,review_count,url,image\n")


def rows(*lines: str) -> io.StringIO:
    return io.StringIO(HEADER + "".join(line + "\n" for line in lines))


def test_notes_are_split_stripped_and_lower_cased():
    [p] = read_catalog(rows('1,B,N,Parfum,Men,10," Rose ,  JASMINE,,Sea Salt ",Rose,,"Sea Salt",floral,4.5,3,,'))
    assert p.notes == ("rose", "jasmine", "sea salt")
    assert (p.top_notes, p.heart_notes, p.base_notes) == (("rose",), (), ("sea salt",))


def test_empty_numbers_take_their_defaults():
    [p] = read_catalog(rows("1,B,N,,,,,,,,,,,,"))
    assert (p.price, p.rating, p.reviews) == (0.0, 0.0, 0)
    assert p.notes == () and p.family == "" and p.title == "B N"


@pytest.mark.parametrize("column, bad", [(5, "abc"), (11, "great"), (12, "1.5")])
def test_a_bad_number_raises_value_error_naming_the_line(column, bad):
    good = ["2", "B", "N", "Parfum", "Men", "10", "rose", "", "", "", "floral", "4.5", "3", "", ""]
    broken = ["4", *good[1:]]
    broken[column] = bad
    source = rows(",".join(good), ",".join(["3", *good[1:]]), ",".join(broken))
    with pytest.raises(ValueError, match=r"catalog line 4\b") as err:
        read_catalog(source)
    assert {5: "price", 11: "rating", 12: "reviews"}[column] in str(err.value)


def test_an_empty_item_id_is_an_error():
    with pytest.raises(ValueError, match="catalog line 2"):
        read_catalog(rows(",B,N,,,,,,,,,,,,"))


def test_data_dir_follows_persona_data(monkeypatch, tmp_path):
    monkeypatch.setenv("PERSONA_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    assert default_catalog_path() == Path(tmp_path) / "catalog" / "perfume_final.csv"
