#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# Extracts the worked examples of Documentation/af_bus.rst: every
# ".. code-block::" that follows a ".. example: NAME" comment is written,
# dedented, to OUTDIR/NAME.  Prints the names written.
#
#   scripts/doc-examples.py Documentation/af_bus.rst OUTDIR

import os
import re
import sys


def main():
    rst, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    lines = open(rst, encoding="utf-8").read().split("\n")
    names = []
    i = 0
    while i < len(lines):
        m = re.match(r"^\.\. example: (\S+)\s*$", lines[i])
        i += 1
        if not m:
            continue
        name = m.group(1)
        while i < len(lines) and not lines[i].startswith(".. code-block::"):
            if lines[i].strip():
                sys.exit(f"{rst}: example {name}: no code block follows")
            i += 1
        i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
            body.append(lines[i][4:])
            i += 1
        while body and not body[0].strip():
            body.pop(0)
        while body and not body[-1].strip():
            body.pop()
        if not body:
            sys.exit(f"{rst}: example {name} is empty")
        with open(os.path.join(outdir, name), "w", encoding="utf-8") as f:
            f.write("\n".join(body) + "\n")
        names.append(name)
    if not names:
        sys.exit(f"{rst}: no examples")
    print(" ".join(names))


if __name__ == "__main__":
    main()
