import sys

from pyobs.cli import remember_signals

remember_signals()  # before the heavier imports below

from pyobs.cli.main import main  # noqa: E402

sys.exit(main())
