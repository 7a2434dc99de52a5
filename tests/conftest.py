"""Shared fixtures."""

import pytest

from closedloop.cli import main


@pytest.fixture
def cli(capsys):
    """Run the ``closedloop`` command in-process: ``cli(*argv) -> (exit code, stdout, stderr)``.

    Argparse usage errors (SystemExit) become return codes.
    """
    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run
