import sys

from gateways.cli.main import main

sys.exit(main())
