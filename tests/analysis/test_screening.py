import pandas as pd

from mosplatform.analysis import p808_screening, screening_summary


def _base() -> pd.DataFrame:
    rows = []
    for p in ("a", "b", "c", "d", "e"):
        for i in range(6):
            rows.append({"participant": p, "item": f"x{i}", "question": "q", "condition": "c1",
                         "score": float(1 + (i % 5)), "item_kind": "regular",
                         "expected_score": None, "play_count": 1, "heard_fraction": 1.0,
                         "excluded": False, "exclusion_reason": None})
        rows.append({"participant": p, "item": "gold1", "question": "q", "condition": "qc:gold",
                     "score": 5.0, "item_kind": "gold", "expected_score": 5.0,
                     "play_count": 1, "heard_fraction": 1.0, "excluded": False,
                     "exclusion_reason": None})
        rows.append({"participant": p, "item": "trap1", "question": "q", "condition": "qc:trap",
                     "score": 2.0, "item_kind": "trap", "expected_score": 2.0,
                     "play_count": 1, "heard_fraction": 1.0, "excluded": False,
                     "exclusion_reason": None})
    return pd.DataFrame(rows)


def test_clean_table_keeps_everyone_and_only_regular_items():
    cleaned, excl = p808_screening(_base())
    assert excl.empty
    assert set(cleaned["item_kind"]) == {"regular"} and cleaned["participant"].nunique() == 5
    assert list(excl.columns[:3]) == ["participant", "rule", "detail"]


def test_gold_tolerance_is_plus_minus_one():
    d = _base()
    gold = d["item_kind"] == "gold"
    d.loc[gold & (d["participant"] == "a"), "score"] = 4.0  # |4-5| = 1: passes
    d.loc[gold & (d["participant"] == "b"), "score"] = 3.0  # |3-5| = 2: fails
    cleaned, excl = p808_screening(d)
    assert excl["participant"].tolist() == ["b"] and excl["rule"].tolist() == ["gold"]
    assert "answered 3, expected 5" in excl["detail"].iloc[0]
    assert "b" not in set(cleaned["participant"]) and "a" in set(cleaned["participant"])


def test_trap_must_match_exactly():
    d = _base()
    d.loc[(d["item_kind"] == "trap") & (d["participant"] == "c"), "score"] = 3.0
    _, excl = p808_screening(d)
    assert excl[["participant", "rule"]].values.tolist() == [["c", "trap"]]
    assert "asked for 2" in excl["detail"].iloc[0]


def test_unplayed_ratings_are_dropped_not_the_participant():
    d = _base()
    d.loc[(d["participant"] == "d") & (d["item"] == "x0"), "play_count"] = 0
    d.loc[(d["participant"] == "d") & (d["item"] == "x1"), "heard_fraction"] = 0.5
    d.loc[(d["participant"] == "d") & (d["item"] == "x2"), "heard_fraction"] = 0.8  # = threshold
    cleaned, excl = p808_screening(d)
    assert sorted(excl["item"]) == ["x0", "x1"] and set(excl["scope"]) == {"rating"}
    assert set(excl["rule"]) == {"unplayed"}
    kept = cleaned.loc[cleaned["participant"] == "d", "item"].tolist()
    assert kept == ["x2", "x3", "x4", "x5"]


def test_zero_variance_participant_is_excluded():
    d = _base()
    d.loc[(d["participant"] == "e") & (d["item_kind"] == "regular"), "score"] = 3.0
    cleaned, excl = p808_screening(d)
    assert excl[["participant", "rule"]].values.tolist() == [["e", "zero_variance"]]
    assert "all 6 ratings on question q were 3" in excl["detail"].iloc[0]
    assert "e" not in set(cleaned["participant"])
    # Fewer ratings than the minimum: not judged.
    _, excl = p808_screening(d, min_ratings_for_variance=7)
    assert excl.empty


def test_admin_exclusion_is_listed_once_with_its_reason():
    d = _base()
    d.loc[d["participant"] == "a", ["excluded", "exclusion_reason"]] = [True, "duplicate"]
    cleaned, excl = p808_screening(d)
    assert excl[["participant", "rule"]].values.tolist() == [["a", "admin"]]
    assert excl["detail"].iloc[0] == "excluded by an administrator: duplicate"
    assert "a" not in set(cleaned["participant"])
    summary = screening_summary(excl)
    assert summary[["rule", "participants"]].values.tolist() == [["admin", 1]]


def test_rules_without_their_columns_are_skipped():
    d = _base()[["participant", "item", "question", "condition", "score"]]
    cleaned, excl = p808_screening(d)
    assert len(cleaned) == len(d) and excl.empty
