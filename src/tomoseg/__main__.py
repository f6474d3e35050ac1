import sys

from tomoseg.cli.main import main

sys.exit(main())
