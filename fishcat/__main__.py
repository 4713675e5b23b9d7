"""`python -m fishcat`: the command line."""

from .cli import main

raise SystemExit(main())
