"""The ``kwsos`` command line (typer). Commands stay thin and call the library."""

from __future__ import annotations

from typing import Annotated

import typer

from kwsos.cli import asd as _asd
from kwsos.cli import kws as _kws
from kwsos.cli import osc as _osc
from kwsos.cli._common import setup_logging

app = typer.Typer(
    name="kwsos",
    help=(
        "Few-shot keyword spotting: enroll a keyword from a few recorded examples (shots), then "
        "find every occurrence, with onset and offset, in long recordings.\n\n"
        "Typical session:\n\n"
        "  kwsos enroll weather w1.wav w2.wav w3.wav w4.wav w5.wav --bank my_bank\n\n"
        "  kwsos tune validation.wav --reference validation.csv --bank my_bank\n\n"
        "  kwsos detect meeting.flac --bank my_bank --format csv --output detections.csv\n\n"
        "  kwsos evaluate --reference truth.csv --estimate detections.csv\n\n"
        "Try `kwsos demo` for the bundled example."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also print the library's info messages.")
    ] = False,
) -> None:
    from kwsos.parallel import tune_malloc

    setup_logging(verbose)
    tune_malloc()  # the searches' MB-sized buffers stay in the heap (kwsos.parallel)


_kws.register(app)
app.add_typer(_osc.app, name="osc")
app.add_typer(_asd.app, name="asd")

__all__ = ["app"]
