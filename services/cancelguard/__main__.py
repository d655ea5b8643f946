import sys

from cancelguard.cli import main

sys.exit(main())
