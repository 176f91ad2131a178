#!/usr/bin/env python3
"""w3m-page.py OUT: writes the 20,000-row HTML table (about 2 MB) that the
libgc drop-in test (scripts/libgc-dropin-test.sh) and its benchmark
(scripts/bench-libgc.sh) have the Debian w3m binary dump, on libgc and on
gcpin's libgc.so.1."""
import sys

ROWS = 20000

with open(sys.argv[1], "w") as f:
    f.write("<html><head><title>gcpin w3m test</title></head><body>\n<h1>A generated table</h1>\n<table border=1>\n")
    for i in range(ROWS):
        f.write(f"<tr><td>{i}</td><td>row {i} of {ROWS}</td><td>{i * i}</td>"
                f"<td><a href=\"/r/{i}\">link {i}</a></td><td>{'x' * (i % 37)}</td></tr>\n")
    f.write("</table>\n<p>end of table</p></body></html>\n")
