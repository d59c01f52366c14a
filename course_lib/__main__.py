"""``python3 -m course_lib doctor``: see :mod:`course_lib.doctor`."""
from .doctor import main

if __name__ == "__main__":
    raise SystemExit(main())
