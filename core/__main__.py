"""`python -m core <step>`: the pipeline's command line."""

from core.cli import main

raise SystemExit(main())
