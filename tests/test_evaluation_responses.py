"""The responses file as users send it: separators, yes/no, NaN cells, missing clients, bad rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.core.errors import ConfigError, DataValidationError, NotFoundError
from tasks.core.io import atomic_write_parquet
from tasks.core.config import from_conf
from tasks.evaluation import readout as ev
from tasks.evaluation.responses import join_responses, parse_responses, read_responses, read_responses_file
from tests.test_evaluation import IDS, RESPONSE, campaign_frame, manifest, responses_frame

CFG = from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", n_boot=0)


def write_csv(path, text: str):
    path.write_text(text)
    return path


def test_csv_with_semicolons_yes_no_and_empty_revenue_of_non_responders(tmp_path):
    lines = ["client_id;response;revenue;delivered"]
    for cid, r, rev in zip(IDS, RESPONSE, [10.0, 20.0, 0, 0, 6.0, 0, 0, 4.0, 8.0, 12.0, 4.0, 0]):
        lines.append(f"{cid};{'yes' if r else 'no'};{rev if r else ''};{'' if cid > 8 else 1}")
    path = write_csv(tmp_path / "back.csv", "\n".join(lines) + "\n")
    resp = read_responses(path, np.array(IDS))
    assert resp["response"].tolist() == RESPONSE
    assert resp.loc[resp["response"] == 0, "revenue"].eq(0).all() and resp["revenue"].sum() == 64.0
    assert resp["delivered"].isna().sum() == 4 and (resp["delivered"].dropna() == 1).all()


def test_positive_names_the_value_that_counts_as_one(tmp_path):
    path = write_csv(tmp_path / "r.csv", "client_id,response\n1,purchase\n2,none\n3,Purchase\n")
    assert read_responses(path, np.array(IDS), positive="purchase")["response"].tolist() == [1, 0, 1]
    bad = write_csv(tmp_path / "bad.csv", "client_id,response\n1,purchase\n2,none\n3,maybe\n")
    with pytest.raises(DataValidationError, match=r"other than 'purchase' and 'maybe'.*line\(s\) 3 of bad.csv"):
        read_responses(bad, np.array(IDS), positive="purchase")


def test_unknown_client_ids_name_the_lines_and_the_ids(tmp_path):
    path = write_csv(tmp_path / "r.csv", "client_id,response\n1,1\n99,0\n2,1\n100,1\n")
    with pytest.raises(DataValidationError) as err:
        read_responses(path, np.array(IDS))
    msg = str(err.value)
    assert "2 row(s) for client ids that are not in the campaign at line(s) 3, 5 of r.csv (client ids [99, 100])" in msg
    assert "\n" not in msg


def test_duplicates_and_non_binary_responses_name_rows_and_ids(tmp_path):
    dup = pd.concat([responses_frame(), responses_frame().iloc[[3]]], ignore_index=True)
    atomic_write_parquet(dup, tmp_path / "dup.parquet")
    with pytest.raises(DataValidationError, match=r"2 row\(s\) repeat a client id .* row\(s\) 4, 13 of dup.parquet "
                                                  r"\(client ids \[4, 4\]\)"):
        read_responses(tmp_path / "dup.parquet", np.array(IDS))
    path = write_csv(tmp_path / "r.csv", "client_id,response\n1,1\n2,2\n3,maybe\n")
    with pytest.raises(DataValidationError, match=r"2 non-binary response value\(s\) \['2', 'maybe'\] at line\(s\) 3, 4 "
                                                  r"of r.csv \(client ids \[2, 3\]\); .*evaluate.positive"):
        read_responses(path, np.array(IDS))


def test_empty_response_negative_revenue_and_missing_column(tmp_path):
    path = write_csv(tmp_path / "r.csv", "client_id,response,revenue\n1,1,5\n2,,0\n")
    with pytest.raises(DataValidationError, match=r"1 empty response value\(s\) at line\(s\) 3 .*client ids \[2\]\); "
                                                  "drop those rows"):
        read_responses(path, np.array(IDS))
    path = write_csv(tmp_path / "n.csv", "client_id,response,revenue\n1,1,-5\n")
    with pytest.raises(DataValidationError, match=r"negative or infinite revenue .*client ids \[1\]"):
        read_responses(path, np.array(IDS))
    path = write_csv(tmp_path / "e.csv", "client_id,response,revenue\n1,1,\n")
    with pytest.raises(DataValidationError, match=r"responder\(s\) with an empty revenue"):
        read_responses(path, np.array(IDS))
    with pytest.raises(DataValidationError, match=r"missing column\(s\) \['response'\]"):
        parse_responses(pd.DataFrame({"client_id": [1], "y": [1]}))
    with pytest.raises(NotFoundError, match="simulate_responses"):
        read_responses_file(tmp_path / "absent.csv")


def test_no_revenue_column_leaves_revenue_out():
    joined = join_responses(campaign_frame(), responses_frame().drop(columns="revenue"))
    res = ev.evaluate_campaign(joined, manifest(), CFG)
    assert res["targeted_vs_control"]["revenue"] is None
    assert {r["outcome"] for r in res["secondary"]} == {"response"} and len(res["secondary"]) == 3
    assert "incremental_revenue" not in res["profit"]["targeted"] and "profit" in res["profit"]["targeted"]


def test_missing_clients_observed_by_default_non_responder_or_error_on_request():
    resp = responses_frame().iloc[:-2]  # clients 11 and 12 (random_target) have no row
    joined = join_responses(campaign_frame(), resp)
    assert joined["has_outcome"].sum() == 10 and joined["response"].isna().sum() == 2
    res = ev.evaluate_campaign(joined, manifest(), CFG)
    assert res["n_analysed"] == 10 and res["analysed_groups"]["random_target"] == 2
    assert res["random_target_vs_control"]["response"]["n_t"] == 2
    filled = join_responses(campaign_frame(), resp, missing_responses="non_responder")
    tail = filled.set_index("client_id").loc[[11, 12]]
    assert tail["response"].tolist() == [0, 0] and tail["revenue"].tolist() == [0.0, 0.0]
    res = ev.evaluate_campaign(filled, manifest(), from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", n_boot=0, 
                                                                      missing_responses="non_responder"))
    assert res["random_target_vs_control"]["response"]["n_t"] == 4 and res["outcomes"]["counted_as_non_responders"] == 2
    assert res["checks"]["items"]["missing_outcomes"]["status"] == "not_applicable"
    with pytest.raises(DataValidationError, match=r"2 of 12 campaign client\(s\) have no response row .*client ids "
                                                  r"\[11, 12\]"):
        join_responses(campaign_frame(), resp, missing_responses="error")
    with pytest.raises(ConfigError, match="missing_responses"):
        join_responses(campaign_frame(), resp, missing_responses="drop")


def doubled() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The twelve clients twice (the copies with ids + 100): four clients per arm above the cutoff."""
    camp, resp = campaign_frame(), responses_frame()
    return (pd.concat([camp, camp.assign(client_id=camp["client_id"] + 100)], ignore_index=True),
            pd.concat([resp, resp.assign(client_id=resp["client_id"] + 100)], ignore_index=True))


def test_missing_outcomes_give_worst_case_bounds_of_the_primary_effect():
    camp, resp = doubled()
    resp = resp[~resp["client_id"].isin([1, 6])]  # targeted above (responded) and control above (did not)
    res = ev.evaluate_campaign(join_responses(camp, resp), manifest(), CFG)
    b = res["missing_sensitivity"]
    # assigned above the cutoff: targeted 1, 2, 101, 102 (known responders: 3); control 5, 6, 105, 106 (known: 2)
    assert (b["missing_treated"], b["missing_control"]) == (1, 1)
    assert b["lower"] == pytest.approx(3 / 4 - 3 / 4) and b["upper"] == pytest.approx(4 / 4 - 2 / 4)
    # the estimate itself uses the clients with an outcome: 3/3 - 2/3
    assert res["targeted_vs_control"]["response"]["estimate"] == pytest.approx(1 - 2 / 3)
    assert ev.evaluate_campaign(join_responses(camp, doubled()[1]), manifest(), CFG)["missing_sensitivity"] is None


def test_per_protocol_beside_intention_to_treat():
    resp = responses_frame().assign(delivered=[1, 0, np.nan, np.nan] + [np.nan] * 4 + [1, 1, 0, 1])
    res = ev.evaluate_campaign(join_responses(campaign_frame(), resp), manifest(), CFG)
    pp = res["per_protocol"]
    assert "not randomised" in pp["note"]
    # delivered among targeted above: client 1 only -> fewer than 2: not estimable
    assert pp["targeted_vs_control"] is None
    rt = pp["random_target_vs_control"]
    # random_target delivered: 9 (1), 10 (1), 12 (0) vs control [1, 0, 0, 1]
    assert rt["delivered"] == 3 and rt["response"]["estimate"] == pytest.approx(2 / 3 - 0.5)
    # the intention-to-treat effect is unchanged by delivery
    assert res["random_target_vs_control"]["response"]["estimate"] == pytest.approx(0.25)
    assert ev.evaluate_campaign(join_responses(campaign_frame(), responses_frame()), manifest(),
                                CFG)["per_protocol"] is None


def test_string_ids_and_float_ids_with_nan_cells(tmp_path):
    raw = pd.DataFrame({"client_id": ["1", "2.0", " 3"], "response": [True, False, np.nan], "revenue": [1.5, None, None]})
    with pytest.raises(DataValidationError, match=r"1 empty response value\(s\) at row\(s\) 3 \(client ids \[3\]\)"):
        parse_responses(raw, np.array(IDS))
    out = parse_responses(raw.iloc[:2], np.array(IDS))
    assert out["client_id"].tolist() == [1, 2] and out["response"].tolist() == [1, 0]
    with pytest.raises(DataValidationError, match=r"without an integer client id at row\(s\) 1 \(client ids \['x'\]\)"):
        parse_responses(pd.DataFrame({"client_id": ["x"], "response": [1]}))
