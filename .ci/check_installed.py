"""Checks an installed keras-mobilevit (a wheel, not the checkout) is complete.

Run with the installed package's Python, from outside the checkout:
    python check_installed.py CHECKOUT

Every file the checkout's package holds must have been installed (a package-data
file missing from the wheel fails here, not on a user's machine), every public
name must import, and the label files must load.
"""

import pathlib
import subprocess
import sys

import numpy as np

import keras_mobilevit


def main(checkout):
    checkout = pathlib.Path(checkout).resolve()
    installed = pathlib.Path(keras_mobilevit.__file__).resolve().parent
    if checkout in installed.parents:
        return f"keras_mobilevit is imported from the checkout ({installed}), not the install"
    tracked = subprocess.run(
        ["git", "ls-files", "keras_mobilevit"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    missing = [
        path
        for path in tracked
        if not (installed / pathlib.Path(path).relative_to("keras_mobilevit")).is_file()
    ]
    if missing:
        return f"the install lacks {len(missing)} of the package's files: {', '.join(missing)}"
    absent = [name for name in keras_mobilevit.__all__ if not hasattr(keras_mobilevit, name)]
    if absent:
        return f"public names that do not import: {', '.join(absent)}"
    imagenet = keras_mobilevit.decode_predictions(np.eye(1000, dtype="float32")[:1], top=1)
    flowers = keras_mobilevit.decode_predictions(
        np.eye(102, dtype="float32")[:1], top=1, labels="oxford_flowers102"
    )
    print(
        f"installed {keras_mobilevit.__version__} at {installed}: {len(tracked)} files, "
        f"{len(keras_mobilevit.__all__)} public names; class 0 is {imagenet[0][0][1]!r}, "
        f"flower 0 is {flowers[0][0][1]!r}"
    )
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
