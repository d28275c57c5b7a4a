#!/usr/bin/python3
"""A terminal's screen, as a program drew it, rendered to SVG: the README's pictures of the
live views are real captures, not mock-ups.

    scripts/term-svg.py TYPESCRIPT OUT.svg [--cols 100] [--rows 30] [--title TEXT]

TYPESCRIPT is what reached the terminal (`script -q -c CMD FILE`, or `script`'s output as
captured). It is played into a terminal emulator (pyte, Debian's python3-pyte) up to the
last time the program left the alternate screen (`ESC[?1049l`), so the picture is the last
frame the live view drew, not the report printed after it. Colours are the terminal's own
(green, red, magenta ...), drawn on a dark background.
"""

import argparse
import html
import sys

try:
    import pyte
except ImportError:
    sys.exit("term-svg.py: needs pyte (apt-get install python3-pyte; run with /usr/bin/python3)")

COLOURS = {  # xterm's defaults, a little softened
    "default": "#d0d0d0", "black": "#1c1c1c", "red": "#e05555", "green": "#5fc35f",
    "yellow": "#d7c157", "blue": "#6a9fe0", "magenta": "#c678dd", "cyan": "#56b6c2",
    "white": "#e5e5e5", "brightblack": "#7f7f7f", "brightred": "#ff6e6e",
    "brightgreen": "#8ae28a", "brightyellow": "#ffe070", "brightblue": "#8cb8ff",
    "brightmagenta": "#e09aff", "brightcyan": "#7fe0ea", "brightwhite": "#ffffff",
}
BG = "#14161a"
CW, CH = 8.4, 17  # cell size in px at 14 px DejaVu Sans Mono


def colour(name, default):
    if name == "default":
        return default
    if name in COLOURS:
        return COLOURS[name]
    if len(name) == 6 and all(c in "0123456789abcdefABCDEF" for c in name):
        return "#" + name
    return default


def render(screen, title):
    cols, rows = screen.columns, screen.lines
    top = 28 if title else 8
    w, h = int(cols * CW + 16), int(rows * CH + top + 8)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" font-family="DejaVu Sans Mono, monospace" font-size="14">',
           f'<rect width="{w}" height="{h}" rx="6" fill="{BG}"/>']
    if title:
        out.append(f'<text x="{w / 2}" y="18" fill="#9a9a9a" text-anchor="middle" '
                   f'font-family="DejaVu Sans, sans-serif" font-size="12">{html.escape(title)}</text>')
    for y in range(rows):
        line = screen.buffer[y]
        x = 0
        while x < cols:
            ch = line[x]
            fg, bg = colour(ch.fg, COLOURS["default"]), colour(ch.bg, BG)
            if ch.reverse:
                fg, bg = (BG if ch.bg == "default" else bg), (COLOURS["default"] if ch.fg == "default" else fg)
            attrs = (fg, bg, ch.bold)
            start, text = x, []
            while x < cols:
                c = line[x]
                f2, b2 = colour(c.fg, COLOURS["default"]), colour(c.bg, BG)
                if c.reverse:
                    f2, b2 = (BG if c.bg == "default" else b2), (COLOURS["default"] if c.fg == "default" else f2)
                if (f2, b2, c.bold) != attrs:
                    break
                text.append(c.data or " ")
                x += 1
            px, py = 8 + start * CW, top + y * CH
            if bg != BG:
                out.append(f'<rect x="{px:.1f}" y="{py}" width="{len(text) * CW:.1f}" '
                           f'height="{CH}" fill="{bg}"/>')
            s = "".join(text)
            if s.strip():
                weight = ' font-weight="bold"' if attrs[2] else ""
                out.append(f'<text x="{px:.1f}" y="{py + 13}" fill="{fg}"{weight} '
                           f'xml:space="preserve" textLength="{len(text) * CW:.1f}" '
                           f'lengthAdjust="spacingAndGlyphs">{html.escape(s)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("typescript")
    ap.add_argument("out")
    ap.add_argument("--cols", type=int, default=100)
    ap.add_argument("--rows", type=int, default=30)
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    with open(a.typescript, "rb") as f:
        data = f.read()
    if data.startswith(b"Script started"):  # script(1)'s own first line in its file
        data = data[data.find(b"\n") + 1:]
    leave = data.rfind(b"\x1b[?1049l")
    if leave > 0:
        data = data[:leave]
    screen = pyte.Screen(a.cols, a.rows)
    stream = pyte.ByteStream(screen)
    stream.feed(data)
    with open(a.out, "w") as f:
        f.write(render(screen, a.title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
