"""`python -m mammo` runs the CLI."""

from mammo.cli import main

raise SystemExit(main())
