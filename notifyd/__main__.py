from notifyd.cli import main

raise SystemExit(main())
