"""The root of the ``tutor`` command: the research commands (:mod:`training.cli`), the service
commands (:mod:`api.cli`), and ``export-log``, the one command that needs both (it reads a
tenant's answer log from the service's database and writes it in a research format)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api import cli as service
from training import cli as research
from training import experiment_cli as experiment_research
from training import placement_cli as placement
from training import simulate_cli
from training.readers import write_csv, write_parquet
from tutor.console import fail, out

app = typer.Typer(
    name="tutor",
    help="Adaptive tutoring engine: knowledge tracing, replay and evaluation, and the API "
         "that serves it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
research.register(app)
simulate_cli.register(app)
placement.register(app)
service.register(app)
# one `experiment` group, two sides: simulate-aa (research) and report (service)
experiment_app = typer.Typer(help="Experiments (A/B tests): A/A simulations of their "
                                  "statistics, and a tenant's experiment results.",
                             no_args_is_help=True)
experiment_research.register(experiment_app)
service.register_experiment(experiment_app)
app.add_typer(experiment_app, name="experiment")

_WRITERS = {".csv": write_csv, ".parquet": write_parquet}


@app.command("export-log")
def export_log(
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    out_path: Annotated[Path, typer.Option("--out", help="File to write: .csv or .parquet.")],
    database_url: service.DbUrl = None,
) -> None:
    """Write a tenant's answer log as a generic CSV or Parquet file, for `tutor fit --format
    csv` and `tutor replay` (learners in id order, each in answer order)."""
    if out_path.suffix not in _WRITERS:
        raise fail(f"--out must end in .csv or .parquet, got {out_path.name!r}")
    log = service.tenant_log(tenant, database_url)
    if len(log) == 0:
        raise fail(f"tenant {tenant!r} has no answers yet")
    _WRITERS[out_path.suffix](log, out_path)
    out.print(f"wrote {len(log):,} answers of {log.n_learners:,} learners to {out_path}")


if __name__ == "__main__":
    app()
