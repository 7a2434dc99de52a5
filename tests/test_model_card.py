"""docs/model_card.md carries the generated parameter tables, in step with the code."""

from pathlib import Path

from closedloop.cli import main

CARD = Path(__file__).resolve().parents[1] / "docs" / "model_card.md"


def test_model_card_tables_match_the_code(capsys):
    assert main(["model-card"]) == 0
    generated = capsys.readouterr().out
    assert generated.strip() in CARD.read_text(encoding="utf-8"), (
        "docs/model_card.md is out of date: regenerate its tables with `closedloop model-card`"
    )
