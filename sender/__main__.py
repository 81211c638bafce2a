"""`python -m sender` is the `blast` command."""

from sender.cli import main

raise SystemExit(main())
