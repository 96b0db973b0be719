import sys

from tickline.cli import main

sys.exit(main())
