"""Run the command line as ``python -m pipeline``."""

from pipeline.cli.main import main

raise SystemExit(main())
