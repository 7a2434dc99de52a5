"""``python -m closedloop``: the ``closedloop`` command (:func:`closedloop.cli.main`)."""

from closedloop.cli import main

if __name__ == "__main__":  # worker processes import this module as __mp_main__
    raise SystemExit(main())
