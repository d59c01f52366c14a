"""The course's tooling, kept apart from the library learners read (``course_lib``):

* :mod:`course_tools.student`: the student version of the notebooks (solutions replaced by a stub,
  outputs cleared): ``python3 -m course_tools.student notebooks --out student``;
* :mod:`course_tools.site`: the static site of the executed course:
  ``python3 -m course_tools.site build --out site/``.
"""

__all__: list[str] = []
