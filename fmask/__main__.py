from fmask.cli import main

raise SystemExit(main())
