import sys

from logspace.cli import main

sys.exit(main())
