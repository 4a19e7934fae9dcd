from oracle.demo.story import main

raise SystemExit(main())
