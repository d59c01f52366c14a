"""Print the exact versions of course-lib[test] and everything it pulls in, as installed here.

After the whole suite passes with newer releases (``python3 -m pip install -U -e ".[test]"``, then
``python3 -m pytest``), record them: ``python3 .ci/constraints.py > constraints.txt``.
Only the packages this platform installs are listed; pip ignores a constraint on a package it does
not install, so the file serves every platform.
"""
import re
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement


def closure(name: str, extras: tuple[str, ...] = (), seen: dict[str, str] | None = None) -> dict[str, str]:
    """Installed versions of ``name`` and of every requirement it has here, recursively."""
    seen = {} if seen is None else seen
    key = re.sub(r"[-_.]+", "-", name).lower()
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return seen
    if key in seen and not extras:
        return seen
    seen[key] = dist.version
    for line in dist.requires or []:
        requirement = Requirement(line)
        environments = [dict(default_environment(), extra=e) for e in (extras or ("",))]
        if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
            closure(requirement.name, tuple(requirement.extras), seen)
    return seen


if __name__ == "__main__":
    versions = closure("course-lib", ("test",))
    versions.pop("course-lib")
    print("# The exact versions the whole suite last passed with (python3 -m pytest, Python 3.11, Linux x86-64).")
    print("# Used by the README's install commands and by CI: pip install -e \".[test]\" -c constraints.txt")
    print("# To try the newest releases: pip install -U -e \".[test]\" (no -c), run the suite, and if it passes,")
    print("# record them with: python3 .ci/constraints.py > constraints.txt")
    for key in sorted(versions):
        print(f"{key}=={versions[key]}")
