from .student import main

raise SystemExit(main())
