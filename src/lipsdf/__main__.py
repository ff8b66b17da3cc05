import sys

from lipsdf.cli import main

sys.exit(main())
