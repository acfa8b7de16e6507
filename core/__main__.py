"""`python -m core <step>` (the same as the `curator` console script): the pipeline's command line."""

from core.cli import main

raise SystemExit(main())
