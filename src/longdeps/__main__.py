import sys

from longdeps.cli import main

sys.exit(main())
