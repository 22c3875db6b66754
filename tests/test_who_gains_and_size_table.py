"""Helpers added for lessons 02 and 03: who gains per site, and the wide size table."""

import pandas as pd
import pytest

import fedlab as fl


def test_who_gains_counts_sites_against_both_baselines():
    per_site = pd.DataFrame(
        {"train images": [10, 20, 30],
         "local-only": [0.9, 0.5, 0.7],
         "FedAvg": [0.6, 0.8, 0.7],
         "Mine": [0.7, 0.8, 0.6995]},
        index=["a", "b", "c"])
    g = fl.evaluation.who_gains(per_site)
    assert list(g.index) == ["local-only", "FedAvg", "Mine"]
    assert g.loc["FedAvg", "worst site"] == "a"
    assert g.loc["FedAvg", "its accuracy"] == pytest.approx(0.6)
    assert g.loc["Mine", "mean over sites"] == pytest.approx((0.7 + 0.8 + 0.6995) / 3)
    # 0.7 > 0.6 at a; tie at b; -0.0005 at c is within tol: a tie
    assert g.loc["Mine", "beats FedAvg at"] == 1
    assert g.loc["Mine", "trails FedAvg at"] == 0
    assert g.loc["local-only", "beats FedAvg at"] == 1
    assert g.loc["local-only", "trails FedAvg at"] == 1
    assert g.loc["FedAvg", "beats local-only at"] == 1
    assert g.loc["Mine", "beats local-only at"] == 1


def test_who_gains_without_baselines_has_no_counts():
    g = fl.evaluation.who_gains(pd.DataFrame({"x": [0.2, 0.4]}, index=["s1", "s2"]))
    assert list(g.columns) == ["worst site", "its accuracy", "mean over sites"]


def test_model_size_table_is_wide_and_keeps_orders():
    models, codecs = ["cnn", "mlp"], ["int8", "identity"]
    table = fl.comm.sizes.model_size_table(models, codecs)
    long = fl.comm.model_sizes(models, codecs)
    assert list(table.index) == models
    assert list(table.columns) == ["parameters", "MB (int8)", "MB (identity)"]
    for _, row in long.iterrows():
        assert table.loc[row["model"], f"MB ({row['codec']})"] == pytest.approx(row["mb"])
        assert table.loc[row["model"], "parameters"] == row["parameters"]
    assert (table["MB (int8)"] < table["MB (identity)"]).all()


def test_who_gains_takes_the_setup_columns_by_name():
    import pandas as pd
    import pytest

    import fedlab as fl

    table = pd.DataFrame({"beds": [10, 500], "FedAvg": [0.6, 0.9], "Ditto": [0.8, 0.85]},
                         index=["site-1", "site-2"])
    out = fl.evaluation.who_gains(table, setups=["FedAvg", "Ditto"])
    assert list(out.index) == ["FedAvg", "Ditto"]
    assert out.loc["Ditto", "beats FedAvg at"] == 1 and out.loc["Ditto", "trails FedAvg at"] == 1
    with pytest.raises(ValueError, match="setups must be columns"):
        fl.evaluation.who_gains(table, setups=["FedProx"])
