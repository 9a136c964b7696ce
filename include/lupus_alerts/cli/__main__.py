import sys

from lupus_alerts.cli import main

sys.exit(main())
