import pandas as pd
import pytest

from mosplatform.analysis import mos_table, validate_ratings
from mosplatform.analysis.validate import check_confidence, coerce_ratings


def _ok() -> pd.DataFrame:
    return pd.DataFrame({"participant": ["p"], "item": ["i"], "condition": ["c"],
                         "question": ["q"], "score": [3.0]})


def test_missing_columns_are_named_with_the_available_ones():
    df = _ok().drop(columns=["item", "question"])
    with pytest.raises(ValueError) as err:
        validate_ratings(df)
    msg = str(err.value)
    assert "missing required column(s) 'item', 'question'" in msg
    assert "'participant'" in msg and "'score'" in msg  # what the table does have


def test_non_numeric_score_shows_the_offending_value():
    df = _ok().assign(score=["good"])
    with pytest.raises(ValueError, match=r"column 'score' must be numeric; found 'good'"):
        validate_ratings(df)


def test_numeric_strings_are_accepted_and_coerced():
    df = _ok().assign(score=["4"], participant=[7])
    validate_ratings(df)
    out = coerce_ratings(df)
    assert out["score"].iloc[0] == 4.0 and out["participant"].iloc[0] == "7"


def test_not_a_dataframe_and_empty():
    with pytest.raises(ValueError, match="expected a pandas DataFrame, got list"):
        validate_ratings([1, 2])
    with pytest.raises(ValueError, match="at least 1 row"):
        validate_ratings(_ok().iloc[:0])


def test_functions_use_the_validator_with_their_column_names():
    with pytest.raises(ValueError, match="missing required column.*'listener'"):
        mos_table(_ok(), by=["condition"], subject="listener")


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.2, "0.95"])
def test_confidence_must_be_a_probability(bad):
    with pytest.raises(ValueError, match="confidence must lie strictly between 0 and 1"):
        check_confidence(bad)


def test_coerce_keeps_missing_sources_and_rejects_missing_participants():
    df = pd.concat([_ok().assign(source="bass"), _ok().assign(source=None)], ignore_index=True)
    out = coerce_ratings(df)
    assert out["source"].tolist()[0] == "bass" and pd.isna(out["source"].iloc[1])
    with pytest.raises(ValueError, match=r"column 'participant' is empty in 1 row\(s\)"):
        coerce_ratings(_ok().assign(participant=[None]))
