import sys

from spiketrack.cli import main

sys.exit(main())
