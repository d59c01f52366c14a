"""``python3 -m course_lib.exercises grade SUBMISSION... --out grades.csv``: see :mod:`.grading`."""
import sys

from .grading import main

if __name__ == "__main__":
    if sys.argv[1:2] != ["grade"]:
        print("usage: python3 -m course_lib.exercises grade SUBMISSION... [--out grades.csv] [--source FOLDER] "
              "[--time-limit SECONDS]", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(sys.argv[2:]))
