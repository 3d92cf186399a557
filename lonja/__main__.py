import sys

from lonja.cli import main

sys.exit(main())
