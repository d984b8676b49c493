"""Entry point kept for `python run_helical.py`, as the original image documented."""
from helical_runner.cli import main

raise SystemExit(main())
