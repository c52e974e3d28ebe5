"""``mosplatform report SOURCE --out DIR``: the report of a test or of a ratings CSV.

The command object :data:`report_command` is registered on the application's click
group by ``mosplatform/cli.py``. SOURCE is a long-format ratings file (CSV, or
Parquet with pyarrow) or, when no such file exists, a test id or public id that
``mosplatform.services.export.load_ratings_from_database`` resolves (imported only
then, so that analysing a CSV needs no database or web application).
"""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd
import yaml


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    # Identifiers stay text ("007" is not 7).
    ids = {c: str for c in ("participant", "external_id", "item", "track", "source",
                            "condition", "question", "test")}
    return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype=ids)


@click.command("report")
@click.argument("source")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.html, tables/*.csv, tables.json and table.tex.")
@click.option("--ci", "ci_method", type=click.Choice(["t", "bootstrap"]), default="t",
              show_default=True, help="Confidence interval of the MOS.")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.95, show_default=True, help="Coverage of every interval.")
@click.option("--definition", "definition_path",
              type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Test definition YAML for a CSV source (kind, scales, labels, order).")
@click.option("--n-boot", type=click.IntRange(10), default=1000, show_default=True,
              help="Bootstrap replicates (with --ci bootstrap).")
@click.option("--mixed/--no-mixed", default=False, show_default=True,
              help="Also fit a linear mixed model (statsmodels; slow on large tests).")
@click.option("--ccr-from-raw", is_flag=True, default=False,
              help="CCR: score = raw_score, negated where flipped (for CSVs whose score "
                   "is the vote as answered).")
def report_command(source: str, out_dir: Path, ci_method: str, confidence: float,
                   definition_path: Path | None, n_boot: int, mixed: bool,
                   ccr_from_raw: bool) -> None:
    """Write the analysis report of SOURCE (a ratings CSV, or a test id) to --out."""
    from mosplatform.analysis.report import build_report

    path = Path(source)
    definition = None
    if path.is_file():
        try:
            df = _read_table(path)
        except Exception as exc:  # noqa: BLE001 - any read error becomes a usage error
            raise click.ClickException(f"cannot read {path}: {exc}") from exc
        sibling = path.with_name("definition.yaml")
        definition_path = definition_path or (sibling if sibling.is_file() else None)
    else:
        try:
            from mosplatform.services.export import load_ratings_from_database
        except ImportError as exc:
            raise click.ClickException(
                f"{source!r} is not a file, and tests in the database cannot be loaded here "
                f"({exc}); export the ratings to CSV first"
            ) from exc
        try:
            df, definition = load_ratings_from_database(source)
        except Exception as exc:  # noqa: BLE001 - the loader's own message is the best one
            raise click.ClickException(f"{source!r} is not a file nor a known test: {exc}") \
                from exc
    if definition_path is not None:
        definition = yaml.safe_load(definition_path.read_text(encoding="utf-8"))
    try:
        report = build_report(df, out_dir, definition=definition, confidence=confidence,
                              ci_method=ci_method, n_boot=n_boot, mixed=mixed,
                              ccr_from_raw=ccr_from_raw)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = (out_dir / "summary.txt").read_text(encoding="utf-8")
    click.echo(summary.rstrip())
    click.echo("")
    click.echo(f"report: {report}")
    click.echo(f"tables: {out_dir / 'tables'} (CSV), {out_dir / 'tables.json'}")
    click.echo(f"latex:  {out_dir / 'table.tex'}")
