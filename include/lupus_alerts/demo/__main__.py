"""`python -m lupus_alerts.demo`: see `lupus_alerts.demo`."""

import sys

from lupus_alerts.demo.cli import main

if __name__ == "__main__":
    sys.exit(main())
