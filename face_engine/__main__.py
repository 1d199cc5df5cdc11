import sys

from face_engine.cli import main

sys.exit(main())
