from bench.tools.collectives import main

raise SystemExit(main())
