import sys

from pyobs.cli.main import main

sys.exit(main())
