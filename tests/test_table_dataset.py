"""The generic table dataset (conf/data/table.yaml): any CSV or Parquet table read, checked
and turned into features by configuration alone, on messy tables the tests build."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.core.config import from_conf
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError
from tasks.data.datasets import TabularDataConfig, describe, feature_frame, load_tabular_dataset
from tasks.data.table import read_wide_table, sniff_separator, table_content_hash
from tests.fixtures.tables import bank_frame, rct_frame, write_bank, write_rct


def table_cfg(path, **settings) -> TabularDataConfig:
    return from_conf(TabularDataConfig, "data/table", path=str(path), **settings)


def load(path, **settings):
    return load_tabular_dataset(table_cfg(path, **settings), ".")


# --------------------------------------------------------------------------- reading
@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_the_separator_is_detected(tmp_path, sep):
    df = pd.DataFrame({"a": [1, 2, 3], "note": ["x, y", "z; w", "plain"], "c": [0.5, None, 2.0]})
    path = tmp_path / "t.csv"
    df.to_csv(path, sep=sep, index=False)
    assert sniff_separator(path) == sep
    pd.testing.assert_frame_equal(read_wide_table(path), df)


def test_decimal_commas_in_a_semicolon_file_are_numbers(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id;amount;code;total\n1;12,5;1,2;1.234,56\n2;-0,25;x;12\n3;;3;2 345,1\n4;7;4;\n")
    df = read_wide_table(path)
    assert df["amount"].tolist()[:2] == [12.5, -0.25] and np.isnan(df["amount"][2]) and df["amount"][3] == 7.0
    assert df["total"].tolist()[:3] == [1234.56, 12.0, 2345.1]
    assert df["code"].tolist() == ["1,2", "x", "3", "4"]       # not every value a number: left as text
    comma = tmp_path / "c.csv"                                  # in a comma file a comma is never a decimal mark
    comma.write_text('id,amount\n1,"12,5"\n2,"3,0"\n')
    assert read_wide_table(comma)["amount"].tolist() == ["12,5", "3,0"]


MESSY = (
    "id;spend;opt_in;region;code;amount;note;empty\n"
    "1;10;True;north;007;12;a;\n"
    "2;11;False;south;008;13;b;\n"
    "3;;True;;x9;12,5;;\n"
    "4;14;;east;010;1.234,5;c;\n"
    "5;15;False;north;011;;d;\n"
)


@pytest.mark.parametrize("rows", [1, 2, 3, 200_000])
def test_a_csv_read_in_chunks_has_the_whole_files_types_and_values(tmp_path, rows):
    """Chunks of any size, joined, are the file as pandas reads it whole: integers with a gap
    in a later chunk are floats, true/false flags with a gap are objects, a code column numeric
    in its first chunks and text later is the text written (leading zeros kept), a column of
    numbers written with decimal commas is floats even where the first chunks hold whole
    numbers only, a column without any value is floats."""
    from tasks.data.table import iter_csv, scan_csv

    path = tmp_path / "messy.csv"
    path.write_text(MESSY)
    layout = scan_csv(path, rows=rows)
    joined = pd.concat(list(iter_csv(path, layout, rows=rows)), ignore_index=True)
    whole = pd.read_csv(path, sep=";", dtype={"code": "str"})
    expected = whole.assign(amount=[12.0, 13.0, 12.5, 1234.5, np.nan])
    pd.testing.assert_frame_equal(joined, expected)
    pd.testing.assert_frame_equal(read_wide_table(path), expected)
    assert layout.rows == 5 and layout.decimal_comma == ("amount",)
    assert str(layout.dtypes["opt_in"]) == "object" and str(layout.dtypes["empty"]) == "float64"
    some = pd.concat(list(iter_csv(path, layout, columns=["note", "id"], rows=rows)), ignore_index=True)
    pd.testing.assert_frame_equal(some, expected[["id", "note"]])


def test_a_comma_column_with_text_in_another_chunk_stays_text(tmp_path):
    from tasks.data.table import iter_csv, scan_csv

    path = tmp_path / "t.csv"
    path.write_text("id;v\n1;1,5\n2;2,5\n3;abc\n")
    layout = scan_csv(path, rows=2)
    assert layout.decimal_comma == ()
    assert pd.concat(list(iter_csv(path, layout, rows=2)))["v"].tolist() == ["1,5", "2,5", "abc"]


def test_parquet_file_and_folder_and_their_content_hash(tmp_path):
    df = rct_frame(200)
    file = tmp_path / "rct.parquet"
    df.to_parquet(file, index=False)
    folder = tmp_path / "parts"
    folder.mkdir()
    df.iloc[:120].to_parquet(folder / "part-0.parquet", index=False)
    df.iloc[120:].to_parquet(folder / "part-1.parquet", index=False)
    pd.testing.assert_frame_equal(read_wide_table(file), df)
    assert len(read_wide_table(folder)) == 200
    before = table_content_hash(folder)
    assert before == table_content_hash(folder) and len(before) == 64
    df.iloc[120:].assign(visits=0.0).to_parquet(folder / "part-1.parquet", index=False)
    assert table_content_hash(folder) != before
    ds = load(folder, target="response", treatment="is_treatment")
    assert ds.name == "parts" and len(ds.frame) == 200 and ds.source["sha256"] == table_content_hash(folder)


def test_missing_empty_and_unparseable_files(tmp_path):
    with pytest.raises(NotFoundError, match=r"absent.csv does not exist; .*data.path="):
        read_wide_table(tmp_path / "absent.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataValidationError, match="is empty"):
        read_wide_table(tmp_path / "empty.csv")
    (tmp_path / "bad.csv").write_text('a,b\n1,2\n3,"4\n5,6,7,8\n')
    with pytest.raises(DataValidationError, match="cannot parse bad.csv"):
        read_wide_table(tmp_path / "bad.csv")
    (tmp_path / "latin.csv").write_bytes("name,x\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataValidationError, match="not UTF-8"):
        read_wide_table(tmp_path / "latin.csv")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(NotFoundError, match="holds no .parquet file"):
        read_wide_table(tmp_path / "empty_dir")


# --------------------------------------------------------------------------- target and arms
def test_bank_table_yes_no_target_known_after_and_missing_values(tmp_path):
    path = write_bank(tmp_path, 800)
    ds = load(path, target="y", positive="yes", known_after=["duration"])
    raw = bank_frame(800)
    assert ds.name == "bank" and ds.id_column == "client_id"
    assert ds.frame["client_id"].tolist() == list(range(800))
    assert ds.frame["y"].tolist() == (raw["y"] == "yes").astype(int).tolist()
    assert ds.categorical == ["job", "marital"] and ds.known_after == ["duration"]
    X = feature_frame(ds)
    assert "duration" not in X.columns and "y" not in X.columns and "client_id" not in X.columns
    assert {"job_retired", "marital_single", "balance", "age"} <= set(X.columns)
    assert X["balance"].isna().sum() == raw["balance"].isna().sum() > 0  # NaN passes through to LightGBM
    d = describe(ds)
    assert d["excluded_columns"]["known_after"] == ["duration"]
    assert d["missing_values"]["balance"]["count"] == int(raw["balance"].isna().sum())
    assert d["missing_values"]["job"]["share"] == pytest.approx(raw["job"].isna().mean())
    # yes/no is recognised without data.positive too
    assert load(path, target="y").frame["y"].sum() == (raw["y"] == "yes").sum()


def test_an_ambiguous_target_names_its_values(tmp_path):
    df = bank_frame(300).assign(outcome=lambda d: np.where(d["y"] == "yes", "subscribed", "declined"))
    path = tmp_path / "b.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"column 'outcome': the target is not binary: values "
                                                  r"'declined' x \d+, 'subscribed' x \d+; .*data.positive="):
        load(path, target="outcome")
    ds = load(path, target="outcome", positive="subscribed", drop=["y"])
    assert ds.frame["outcome"].sum() == (df["y"] == "yes").sum()
    with pytest.raises(ConfigError, match="key 'positive': 'Subscribed!' is not a value .*'declined'"):
        load(path, target="outcome", positive="Subscribed!")
    df.loc[[3, 7], "outcome"] = np.nan
    df.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"2 empty target value.*rows \[3, 7\]"):
        load(path, target="outcome", positive="subscribed")


@pytest.mark.parametrize("arms", [("treated", "control"), ("yes", "no"), ("Yes", "No")])
def test_string_arms_unbalanced(tmp_path, arms):
    path = write_rct(tmp_path, 1000, arms=arms)
    ds = load(path, target="response", treatment="is_treatment", known_after=["spend_after"], id_column="client")
    raw = rct_frame(1000, arms=arms)
    assert ds.frame["is_treatment"].tolist() == (raw["is_treatment"] == arms[0]).astype(int).tolist()
    assert 0.65 < ds.frame["is_treatment"].mean() < 0.75
    assert ds.source["arms"] == {"column": "is_treatment", "treated": [arms[0]], "control": [arms[1]]}
    X = feature_frame(ds)
    assert not {"client", "is_treatment", "response", "spend_after"} & set(X.columns)


def test_named_arms_an_unknown_arm_and_excluded_arms(tmp_path):
    df = rct_frame(900, arms=("email", "none"))
    df.loc[df.index[:50], "is_treatment"] = "holdout"
    path = tmp_path / "rct.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"'email' x \d+, 'none' x \d+, 'holdout' x 50; name the arms "
                                                  r"with data.treated=<value> and data.control=<value>"):
        load(path, target="response", treatment="is_treatment", drop=["client"])
    with pytest.raises(DataValidationError, match=r"50 row\(s\) in an arm that is neither treated nor control: "
                                                  r"'holdout' x 50"):
        load(path, target="response", treatment="is_treatment", treated="email", control="none", drop=["client"])
    ds = load(path, target="response", treatment="is_treatment", treated="email", control="none",
              exclude_arms=["holdout"], drop=["client"])
    assert len(ds.frame) == 850 and ds.source["excluded_rows"] == {"holdout": 50}
    assert ds.frame["client_id"].min() == 50  # the row number of the file, not of the rows kept
    # one arm named: the one remaining value is the other
    assert load(path, target="response", treatment="is_treatment", treated="email", drop=["client"],
                exclude_arms=["holdout"]).frame["is_treatment"].sum() == (df["is_treatment"] == "email").sum()
    with pytest.raises(ConfigError, match="key 'treatment': data.treated"):
        load(path, target="response", treated="email")


# --------------------------------------------------------------------------- columns and ids
def test_missing_columns_name_the_key_and_the_columns_present(tmp_path):
    path = write_bank(tmp_path, 100)
    with pytest.raises(DataValidationError, match=r"column 'outcome': data.target names column\(s\) \['outcome'\] "
                                                  r"that the table does not have; its columns are \['age', 'job', "):
        load(path, target="outcome")
    with pytest.raises(ConfigError, match=r"key 'target': name the outcome column .*\['age', 'job'"):
        load(path)
    with pytest.raises(DataValidationError, match=r"data.known_after names column\(s\) \['call_length'\]"):
        load(path, target="y", known_after=["call_length"])
    with pytest.raises(ConfigError, match="key 'path': give the table"):
        load_tabular_dataset(from_conf(TabularDataConfig, "data/table", target="y"), ".")


def test_id_column_duplicates_empty_and_a_client_id_column(tmp_path):
    df = rct_frame(300)
    df.loc[10, "client"] = df.loc[20, "client"]
    path = tmp_path / "rct.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"column 'client': 2 rows share an id \(e.g. \['c00020'\]\).*"
                                                  r"rows \[10, 20\]"):
        load(path, target="response", treatment="is_treatment", id_column="client")
    df.rename(columns={"client": "client_id"}).to_csv(path, index=False)
    with pytest.raises(ConfigError, match="data.id_column=client_id"):
        load(path, target="response", treatment="is_treatment")


def test_a_text_column_with_too_many_values_is_not_one_hot_encoded(tmp_path):
    df = rct_frame(400)
    path = tmp_path / "rct.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"column 'client': 400 distinct values: too many .*data.drop"):
        load(path, target="response", treatment="is_treatment")
    assert "client" not in feature_frame(load(path, target="response", treatment="is_treatment", drop=["client"]))
