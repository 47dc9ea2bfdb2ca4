from notifyd.command import main

raise SystemExit(main())
